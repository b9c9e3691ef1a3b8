"""Sharded evaluation and light-job start-up, side by side in one run.

    python benchmarks/shards.py [--repeats 5] [--train-epochs 30 | --model results/digits/linf-0.3/models/pgd_at.json]

Part 1 times the same AutoAttack evaluation (``tradeoff attacks --attacks clean autoattack`` with
config.yaml's ``attacks.autoattack`` settings, the 360 test digits at ℓ∞ ε = 0.3, batches of 180 points so
that there are two batches) run as

* one job with one thread, and
* two shard jobs (``--shard k --shards 2``) with one thread each, run at once as two processes, then the
  light ``merge attacks`` job,

and asserts that the merged records equal the unsharded ones (records, summary rows, per-attack
accuracies). The wall-time ratio is what sharding buys where the two jobs get a core each; the merge's
share is the price of splitting.

Part 2 times the start-up of light jobs (``tradeoff summary``, ``tradeoff attacks-worst`` and
``tradeoff merge attacks`` on the records of part 1) against ``python -c 'import torch'`` and a heavy
job (a real ``tradeoff attacks --attacks clean`` on the same points: torch, the data and the model
loaded, one forward pass), and checks with ``python -X importtime`` that the light jobs never import torch.

Every process runs with ``OMP_NUM_THREADS=1``. The methods run in turn, ``--repeats`` times; medians are
reported (the order of part 1's two set-ups alternates between repeats, so a drift of the machine's load
hits both alike). Prints markdown.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from tradeoff.io import read_records

ROOT = Path(__file__).resolve().parents[1]
TRADEOFF = str(Path(sys.executable).with_name("tradeoff"))
RT = ["--threads", "1", "--device", "cpu", "--no-progress", "--seed", "0"]
ATTACKS = ["clean", "autoattack"]


def env() -> dict[str, str]:
    """The environment of every timed process: one OpenMP / MKL thread."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run(cmd: Sequence[str]) -> float:
    """Wall seconds of ``cmd`` run to completion; raises with its stderr when it fails."""
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), capture_output=True, text=True, env=env())
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def run_together(cmds: Sequence[Sequence[str]]) -> float:
    """Wall seconds from starting every command of ``cmds`` at once to the end of the last one."""
    start = time.perf_counter()
    procs = [subprocess.Popen(list(c), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env())
             for c in cmds]
    errors = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - start
    for cmd, proc, err in zip(cmds, procs, errors, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return wall


def imports_torch(cmd: Sequence[str]) -> bool:
    """True when the Python command ``cmd`` (``[python, script, args…]``) imports the module ``torch``,
    from the ``-X importtime`` log of one run."""
    proc = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, env=env())
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return any(line.startswith("import time:") and line.rsplit("|", 1)[-1].strip() == "torch"
               for line in proc.stderr.splitlines())


def machine_line() -> str:
    mem = next((int(line.split()[1]) / 2**20 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), float("nan")) if Path("/proc/meminfo").exists() else float("nan")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"machine: {platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB; Python "
            f"{platform.python_version()}, torch {importlib.metadata.version('torch')}; one thread per process; "
            f"load average {load:.1f} at the start")


def same_records(a: Path, b: Path) -> None:
    """Assert that the evaluations written to folders ``a`` and ``b`` are the same records and summaries."""
    for attack in ATTACKS:
        fa, ma = read_records(a / f"{attack}.csv")
        fb, mb = read_records(b / f"{attack}.csv")
        assert fa.equals(fb), f"{attack}: merged records differ from the unsharded ones"
        for key in ("summary_rows", "accuracy_by_attack", "attacked", "robust_after"):
            assert ma.get(key) == mb.get(key), f"{attack}: {key} differs after the merge"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each timing (medians reported; ≥ 5)")
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--batch-size", type=int, default=180, help="points per batch (360 test points: 2 batches)")
    parser.add_argument("--train-epochs", type=int, default=30, help="PGD-AT epochs of the attacked model")
    parser.add_argument("--model", default=None, help="attack this classifier JSON (digits) instead of training one")
    parser.add_argument("--workdir", default=None, help="keep the data, model and records here (default: a temp dir)")
    args = parser.parse_args()
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    threat = json.dumps({"norm": "Linf", "eps": args.eps})
    params = json.dumps({"clean": {}, "autoattack": cfg["attacks"]["autoattack"]})
    machine = machine_line()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = work / "data.pt"
        run([TRADEOFF, "data", "--dataset", "digits", "--params", json.dumps(cfg["data"]["digits"]),
             "--seed", "0", "--out", str(data)])
        if args.model:
            model, what = args.model, args.model
        else:
            entry = cfg["models"]["pgd_at"]
            train = {**cfg["train"], **entry.get("train", {}), "epochs": args.train_epochs}
            model = str(work / "pgd_at.json")
            run([TRADEOFF, "train", *RT, "--data", str(data), "--name", "pgd_at", "--arch", cfg["model"]["arch"],
                 "--arch-options", json.dumps(cfg["model"]["options"]), "--objective", "pgd_at",
                 "--objective-params", json.dumps(entry["params"]), "--threat", threat, "--train-params",
                 json.dumps(train), "--checkpoint", str(work / "ck.pt"), "--out", model])
            what = f"{cfg['model']['arch']}, PGD-AT {args.train_epochs} epochs (config.yaml's recipe)"

        def evaluate(out: Path, attacks: Sequence[str] = ATTACKS, *extra: str) -> list[str]:
            return [TRADEOFF, "attacks", *RT, "--data", str(data), "--classifier", model, "--name", "pgd_at",
                    "--out-dir", str(out), "--attacks", *attacks, "--threat", threat, "--params", params,
                    "--batch-size", str(args.batch_size), *extra]

        group = "+".join(ATTACKS)
        times: dict[str, list[float]] = {"one": [], "shards": [], "merge": []}
        for r in range(args.repeats):
            one, sharded = work / f"one-{r}", work / f"sharded-{r}"
            for out in (one, sharded):
                shutil.rmtree(out, ignore_errors=True)

            def single(one: Path = one) -> None:
                times["one"].append(run(evaluate(one)))

            def split(sharded: Path = sharded) -> None:
                times["shards"].append(run_together([evaluate(sharded, ATTACKS, "--shard", str(k), "--shards", "2")
                                                     for k in range(2)]))
                times["merge"].append(run([TRADEOFF, "merge", "attacks", "--name", "pgd_at", "--attacks", *ATTACKS,
                                           "--threat", threat, "--params", params, "--out-dir", str(sharded),
                                           *(str(sharded / "shards" / f"{group}-{k}-of-2.csv") for k in range(2))]))

            for fn in ((single, split) if r % 2 == 0 else (split, single)):
                fn()
            same_records(sharded, one)
        ref = work / "one-0"
        _, aa_meta = read_records(ref / "autoattack.csv")
        _, clean_meta = read_records(ref / "clean.csv")
        acc = {k: float(m["summary_rows"][0]["value"]) for k, m in (("clean", clean_meta), ("autoattack", aa_meta))}
        n_points = int(clean_meta["summary_rows"][0]["n"])

        # Part 2: start-up of light and heavy jobs
        summary_out, worst_out = work / "startup-summary.csv", work / "startup-worst.csv"
        startup: dict[str, list[str]] = {
            "`python -c pass`": [sys.executable, "-c", "pass"],
            "`python -c 'import torch'`": [sys.executable, "-c", "import torch"],
            "`tradeoff summary` (2 records)": [TRADEOFF, "summary", "--out", str(summary_out),
                                                 str(ref / "clean.csv"), str(ref / "autoattack.csv")],
            "`tradeoff attacks-worst` (2 records)": [TRADEOFF, "attacks-worst", "--name", "pgd_at", "--threat", threat,
                                                     "--out", str(worst_out), str(ref / "clean.csv"),
                                                     str(ref / "autoattack.csv")],
            "`tradeoff merge attacks` (2 shards)": [
                TRADEOFF, "merge", "attacks", "--name", "pgd_at", "--attacks", *ATTACKS, "--threat", threat, "--params",
                params, "--out-dir", str(work / "startup-merge"),
                *(str(work / "sharded-0" / "shards" / f"{group}-{k}-of-2.csv") for k in range(2))],
            f"`tradeoff attacks --attacks clean` ({n_points} points)": evaluate(work / "startup-eval", ["clean"]),
        }
        start_times: dict[str, list[float]] = {name: [] for name in startup}
        for _ in range(args.repeats):
            for name, cmd in startup.items():
                start_times[name].append(run(cmd))
        torch_flags = {name: imports_torch([sys.executable, *cmd] if cmd[0] == TRADEOFF else cmd)
                       for name, cmd in startup.items() if name != "`python -c pass`"}
        heavy = {"`python -c 'import torch'`", f"`tradeoff attacks --attacks clean` ({n_points} points)"}
        for name, flag in torch_flags.items():
            assert flag == (name in heavy), f"{name} {'imports' if flag else 'does not import'} torch"

    med = {k: statistics.median(v) for k, v in times.items()}
    total = med["shards"] + med["merge"]
    print(machine)
    print(f"\n{n_points} test digits, {what}: clean accuracy {acc['clean']:.3f}, accuracy under AutoAttack "
          f"{acc['autoattack']:.3f}; AutoAttack {cfg['attacks']['autoattack']['version']} "
          f"{'+'.join(cfg['attacks']['autoattack']['attacks'])} (config.yaml) at ℓ∞ ε = {args.eps}, batches of "
          f"{args.batch_size}; medians of {args.repeats} runs.\n")
    print("| evaluation of `clean autoattack` | median wall s | ratio to 1 job |")
    print("|---|---:|---:|")
    print(f"| 1 job, 1 thread | {med['one']:.2f} | 1.000 |")
    print(f"| 2 shard jobs at once, 1 thread each | {med['shards']:.2f} | {med['shards'] / med['one']:.3f} |")
    print(f"| `merge attacks` (light job) | {med['merge']:.2f} | {med['merge'] / med['one']:.3f} |")
    print(f"| 2 shards + merge | {total:.2f} | {total / med['one']:.3f} |")
    print(f"\nSpeedup of 2 shards + merge over 1 job: **{med['one'] / total:.2f}×**; the merge is "
          f"**{med['merge'] / total:.1%}** of the sharded stage's wall time. Merged records equal the unsharded "
          f"ones in every repeat (asserted).\n")
    s = {k: statistics.median(v) for k, v in start_times.items()}
    torch_s = s["`python -c 'import torch'`"]
    print("| command | median wall s | ratio to `import torch` | imports torch |")
    print("|---|---:|---:|:---:|")
    for name, sec in s.items():
        flag = "–" if name not in torch_flags else ("yes" if torch_flags[name] else "**no**")
        print(f"| {name} | {sec:.3f} | {sec / torch_s:.2f} | {flag} |")


if __name__ == "__main__":
    main()
