"""Cost of the presets: measured per-point costs on this machine × the jobs a dry run plans.

    python benchmarks/preset_cost.py [--device cpu|cuda] [--points 4] [--repeats 3] [--presets cifar10 ...]

(a) Per-point costs. For every architecture of the presets (``model.arch`` and ``model.options``,
built with :func:`tradeoff.models.build_model` untrained) the script times, on ``--points`` random inputs
of the dataset's shape, the project's own code paths: the clean prediction and PGD
(:func:`tradeoff.attacks.evaluate.evaluate_batch`), APGD-CE, APGD-T, FAB-T and Square
(:func:`tradeoff.attacks.autoattack.run_autoattack`, one attack at a time), and the noisy forward passes of
certification (Gaussian noise) and of probabilistic certification (uniform ℓ∞ noise)
(:func:`tradeoff.certify.sampling.count_classes`). Each attack runs at two small iteration counts; its cost
is extrapolated linearly per iteration (per query for Square, per noisy sample for the certificates) to the
preset's settings. Labels are the model's own clean predictions and ε is tiny (1e-5), so no point is broken
and every attack runs on every point: the AutoAttack and margin figures are **upper bounds** (every point
stands every attack). On a robust model AutoAttack's later attacks run only on the points still standing
(Croce & Hein 2020, Sec. 5): multiply their share by the robust accuracy for an estimate.

(b) Job counts. Each preset (config.yaml with the preset merged over it, as ``--configfile`` does) is
dry-run (``snakemake -n``) in a temporary copy of the workflow; the planned outputs give the
(threat, classifier) pairs of the attack suite and the ε-sweep, the σ's of certification and the
classifiers of probabilistic certification. Device-hours = points × evaluations × classifiers × per-point
cost (composites of two networks count twice). Training is estimated roughly (see ``training_passes``);
other heavy rules are listed with their job counts only.

Prints markdown. On a GPU run the same command with ``--device cuda --points 500`` (a GPU's per-point cost
depends on the batch; the presets attack batches of 500–1000).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from tradeoff.attacks.autoattack import run_autoattack
from tradeoff.attacks.evaluate import evaluate_batch
from tradeoff.attacks.pgd import Threat
from tradeoff.certify.sampling import GaussianNoise, UniformLinfBall, count_classes
from tradeoff.models import build_model
from tradeoff.predict import predict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from preset_helpers import preset_config, preset_files  # noqa: E402
from workflow_helpers import copy_workflow, parse_plan, snakemake  # noqa: E402

SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "digits": (1, 8, 8)}
CLASSES = {"mnist": 10, "cifar10": 10, "cifar100": 100, "digits": 10}
N_TRAIN = {"mnist": 60000, "cifar10": 50000, "cifar100": 50000}
TINY_EPS = 1e-5
# standard AutoAttack (Croce & Hein 2020): APGD-CE 100 iterations; APGD-T and FAB-T 9 targets × 100
# iterations; Square 5000 queries; one restart each
STANDARD_AA = {"apgd-ce": (1, 100), "apgd-t": (9, 100), "fab-t": (9, 100), "square": (1, 5000)}
OTHER_HEAVY = ["mixing_margins", "mixing_fit", "mixing_temperatures", "era_gauss3_train",
               "era_gauss3_robustness", "theory_train", "theory_evaluate", "era_robustness_shard",
               "era_composite_shard", "mixing_adaptive_shard"]


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@dataclass
class Linear:
    """Seconds per point: ``fixed + per_iter × iterations`` (fitted on two small iteration counts)."""

    fixed: float
    per_iter: float

    def at(self, iterations: float) -> float:
        return self.fixed + self.per_iter * iterations


def fit(fn: Callable[[int], Any], k1: int, k2: int, n: int, repeats: int) -> Linear:
    """Per-point cost of ``fn(k)`` (k iterations on n points), linear in k through the medians at k1, k2,
    after one untimed warm-up call (imports, first allocations); a negative intercept from timing noise is
    clipped to 0."""
    fn(k1)
    t1, t2 = median_time(lambda: fn(k1), repeats), median_time(lambda: fn(k2), repeats)
    slope = max(t2 - t1, 0.0) / (k2 - k1) / n
    return Linear(max(t1 / n - slope * k1, 0.0), slope)


def measure(arch: str, options: dict, dataset: str, n: int, repeats: int, device: torch.device,
            samples: int, queries: tuple[int, int]) -> dict[str, Any]:
    """Per-point cost components of one architecture (see the module docstring)."""
    torch.manual_seed(0)
    model = build_model(arch, dataset, CLASSES[dataset], SHAPES[dataset], options).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(n, *SHAPES[dataset], device=device)
    y = predict(model, x, n, device).to(device)
    threat = Threat("Linf", TINY_EPS, (0.0, 1.0))
    standing: dict[str, float] = {}

    def pgd(k: int) -> None:
        records, _ = evaluate_batch(model, x, y, 0, ["clean", "pgd"], threat, {
            "pgd": {"steps": k, "step_rel": 0.25, "restarts": 1, "loss": "ce"}}, 0, device)
        standing["pgd"] = sum(r["correct"] for r in records["pgd"]) / n

    def aa(name: str, **kw: Any) -> Callable[[int], None]:
        def run(k: int) -> None:
            it = {"apgd-ce": "n_iter", "apgd-t": "n_iter", "fab-t": "fab_iter", "square": "square_queries"}[name]
            res = run_autoattack(model, x, y, norm="Linf", eps=TINY_EPS, version="custom", attacks=(name,),
                                 batch_size=n, device=device, **{it: k}, **kw)
            standing[name] = float((res.prediction.cpu() == y.cpu()).float().mean())
        return run

    predict(model, x, n, device)
    clean = median_time(lambda: predict(model, x, n, device), repeats) / n
    out: dict[str, Any] = {"clean": clean, "pgd": fit(pgd, 1, 3, n, repeats)}
    out["apgd-ce"] = fit(aa("apgd-ce", apgd_restarts=1), 2, 4, n, repeats)
    out["apgd-t"] = fit(aa("apgd-t", n_target_classes=1), 2, 4, n, repeats)
    out["fab-t"] = fit(aa("fab-t", fab_target_classes=1), 2, 4, n, repeats)
    out["square"] = fit(aa("square"), *queries, n, repeats)
    gen = torch.Generator().manual_seed(0)
    x0 = x[0]
    out["gauss_sample"] = median_time(lambda: count_classes(
        model, x0, samples, GaussianNoise(0.25), CLASSES[dataset], samples, gen), repeats) / samples
    out["ball_sample"] = median_time(lambda: count_classes(
        model, x0, samples, UniformLinfBall(8 / 255), CLASSES[dataset], samples, gen, clamp=True),
        repeats) / samples
    # one training step's forward + backward with parameter gradients, per sample
    trainable = build_model(arch, dataset, CLASSES[dataset], SHAPES[dataset], options).to(device).train()
    labels = torch.randint(0, CLASSES[dataset], (n,), device=device)

    def step() -> None:
        trainable.zero_grad()
        torch.nn.functional.cross_entropy(trainable(x), labels).backward()

    out["train_pass"] = median_time(step, repeats) / n
    out["standing"] = dict(standing)
    return out


def pgd_cost(c: dict[str, Any], p: dict[str, Any]) -> float:
    return c["pgd"].at(int(p.get("steps", 20))) * int(p.get("restarts", 1))


def margin_cost(c: dict[str, Any], p: dict[str, Any]) -> float:
    # upper bound: every untargeted restart and every targeted run on every point
    runs = int(p.get("restarts", 1)) + int(p.get("targets", 0)) * int(p.get("target_restarts", 1))
    return c["pgd"].at(int(p.get("steps", 20))) * runs


def autoattack_cost(c: dict[str, Any], p: dict[str, Any], classes: int) -> float:
    if p.get("version", "custom") == "standard":
        plan = STANDARD_AA
    else:
        targets = min(int(p.get("n_target_classes", 9)), classes - 1)
        fab_targets = p.get("fab_target_classes")
        plan = {"apgd-ce": (int(p.get("apgd_restarts", 1)), int(p.get("n_iter", 100))),
                "apgd-t": (targets, int(p.get("n_iter", 100))),
                "fab-t": (targets if fab_targets is None else int(fab_targets), int(p.get("fab_iter", 100))),
                "square": (1, int(p.get("square_queries", 5000)))}
        plan = {k: v for k, v in plan.items() if k in p.get("attacks", ["apgd-ce", "apgd-t"])}
    return sum(runs * c[name].at(iters) for name, (runs, iters) in plan.items())


def sweep_cost(c: dict[str, Any], p: dict[str, Any], eps: float) -> float:
    budgets = len(p.get("eps_factors", [0.25, 0.5, 1.0, 2.0, 4.0]))
    budgets += 1 if max(p.get("eps_factors", [4.0])) < 1.0 / eps else 0  # the whole-box budget
    return budgets * margin_cost(c, p)


def training_passes(objective: str, params: dict[str, Any]) -> int:
    """Rough forward+backward passes per training sample and epoch: the update's one, plus one per inner
    attack step (PGD-AT, TRADES, ERA) or per perturbation (variance); TRADES' and ERA's extra clean
    forward passes and the optimizer step are not counted."""
    if objective in ("pgd_at", "trades", "era"):
        return 1 + int(params.get("steps", 10))
    if objective == "variance":
        return int(params.get("n", 4))
    return 1


def plan_of(name: str) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Planned outputs per rule and the job-count table of a dry run of preset ``name``."""
    with tempfile.TemporaryDirectory() as tmp:
        work = copy_workflow(Path(tmp) / "wf")
        proc = snakemake(work, "-n", "--configfile", *preset_files(work, name))
    text = proc.stdout + proc.stderr
    table = text[text.index("Job stats:"):].split("\n\n")[0]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}
    return parse_plan(text), counts


def eval_pairs(plan: dict[str, list[str]], rules: list[str], pattern: str) -> set[tuple[str, str]]:
    """(threat, classifier) pairs whose records matching ``pattern`` the given rules write."""
    pairs = set()
    for rule in rules:
        for out in plan.get(rule, []):
            m = re.match(rf"results/[^/]+/([^/]+)/eval/([^/]+)/{pattern}$", out)
            if m:
                pairs.add((m.group(1), m.group(2)))
    return pairs


def networks(classifier: str) -> int:
    """Networks one forward pass of ``classifier`` runs: two for the mixtures and the mixing network
    (both base models; the mixing head is small), one otherwise."""
    return 2 if classifier.startswith(("mix-", "mixnet")) else 1


def arch_name(arch: str, options: dict[str, Any]) -> str:
    if arch.startswith("wrn"):
        return f"WRN-{options.get('depth', 34)}-{options.get('widen', 10)}"
    return f"{arch} (width {options.get('width', 32)})" if arch == "small_cnn" else arch


def hours(seconds: float) -> str:
    h = seconds / 3600
    return f"{h:,.0f}" if h >= 10 else f"{h:,.1f}" if h >= 0.1 else f"{h:,.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["mnist", "cifar10", "cifar100"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--points", type=int, default=None,
                        help="stand-in points per timing (default: 4 for WRNs on CPU, 20 otherwise)")
    parser.add_argument("--samples", type=int, default=None, help="noisy samples per certification timing")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per timing (medians)")
    parser.add_argument("--heavy-repeats", type=int, default=1, help="repeats per timing of the WRNs on CPU")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    configs = {name: preset_config(ROOT, name) for name in args.presets}
    costs: dict[tuple, dict[str, Any]] = {}
    lines: list[str] = []
    for cfg in configs.values():
        key = (cfg["model"]["arch"], yaml.safe_dump(cfg["model"]["options"]), cfg["dataset"])
        if key in costs:
            continue
        heavy = cfg["model"]["arch"].startswith("wrn") and device.type == "cpu"
        n = args.points or (4 if heavy else 20)
        samples = args.samples or (8 if heavy else 200)
        repeats = args.heavy_repeats if heavy else args.repeats
        start = time.perf_counter()
        costs[key] = measure(cfg["model"]["arch"], cfg["model"]["options"], cfg["dataset"], n, repeats,
                             device, samples, (4, 16) if heavy else (10, 50))
        c = costs[key]
        lines.append(
            f"| {cfg['dataset']} | {arch_name(cfg['model']['arch'], cfg['model']['options'])} | {n} | "
            f"{c['clean'] * 1e3:.2f} | "
            f"{c['pgd'].per_iter * 1e3:.2f} | {c['apgd-ce'].per_iter * 1e3:.2f} | {c['apgd-t'].per_iter * 1e3:.2f} | "
            f"{c['fab-t'].per_iter * 1e3:.2f} | {c['square'].per_iter * 1e3:.2f} | {c['gauss_sample'] * 1e3:.2f} | "
            f"{c['ball_sample'] * 1e3:.2f} | {c['train_pass'] * 1e3:.2f} | "
            f"{min(c['standing'].values()):.2f} | {repeats} | {time.perf_counter() - start:.0f} |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}, torch "
          f"{importlib.metadata.version('torch')}; device {args.device}, {args.threads} thread(s); load average "
          f"{load:.1f} at the end\n")
    print("Measured per-point costs, milliseconds (per iteration, query or noisy sample; untrained stand-in, "
          "random inputs):\n")
    print("| dataset | architecture | points | clean fwd | PGD step | APGD-CE iter | APGD-T iter (1 target) | "
          "FAB-T iter (1 target) | Square query | Gaussian sample | ℓ∞-ball sample | training pass | "
          "share standing | repeats (median) | measured in s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(lines))
    print("\nCost of the presets on this device (device-hours; upper bounds for the attacks, see below):\n")
    print("| preset | stage | jobs | classifiers × threats | points | per point and classifier | device-hours | "
          "on a GPU |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    others: dict[str, dict[str, int]] = {}
    for name, cfg in configs.items():
        c = costs[(cfg["model"]["arch"], yaml.safe_dump(cfg["model"]["options"]), cfg["dataset"])]
        plan, counts = plan_of(name)
        ds = cfg["dataset"]
        gpu = f"`--device cuda --points 500 --presets {name}`"
        n_test = int(cfg["data"][ds]["n_test"])
        att = cfg["attacks"]
        run = list(att["run"])
        suite_rules = ["attacks_merge"]
        first = "clean" if "clean" in run else run[0]
        pairs = eval_pairs(plan, suite_rules, rf"{re.escape(first)}\.csv")
        sweep = eval_pairs(plan, ["attacks_sweep_merge"], r"eps-sweep\.csv")
        eps_of = {t: float(t.split("-", 1)[1]) for t, _ in pairs | sweep}
        shard_jobs = counts.get("attacks_shard", 0)
        jobs = f"{shard_jobs} shards + {counts.get('attacks_merge', 0)} merges"
        per = {"clean": c["clean"], "pgd": pgd_cost(c, att.get("pgd", {})),
               "margin": margin_cost(c, att.get("margin", {})),
               "autoattack": autoattack_cost(c, att.get("autoattack", {}), CLASSES[ds])}
        weight = sum(networks(cl) for _, cl in pairs)
        total = 0.0
        for ev in run:
            sec = per[ev] * n_test * weight
            total += sec
            label = {"clean": "clean", "pgd": f"PGD-{att['pgd'].get('steps', 20)}", "margin": "margin suite (bound)",
                     "autoattack": f"AutoAttack {att['autoattack'].get('version')} (bound)"}[ev]
            print(f"| {name} | {label} | {jobs if ev == run[0] else '〃'} | {len(pairs)} ({weight} networks) | "
                  f"{n_test:,} | {per[ev]:.3g} s | {hours(sec)} | {gpu} |")
        sweep_sec = sum(sweep_cost(c, att.get("eps-sweep", {}), eps_of[t]) * networks(cl) * n_test for t, cl in sweep)
        total += sweep_sec
        if sweep:
            print(f"| {name} | ε-sweep (bound) | 〃 | {len(sweep)} | {n_test:,} | "
                  f"{sweep_sec / n_test / len(sweep):.3g} s | {hours(sweep_sec)} | {gpu} |")
        cert = cfg["certify"]
        sig = {re.search(r"certify/gauss_aug-([^/]+)/", o).group(1) for o in plan.get("certify_shard", [])}
        per_cert = (int(cert["n0"]) + int(cert["n"])) * c["gauss_sample"]
        cert_sec = per_cert * int(cert["points"]) * len(sig)
        total += cert_sec
        print(f"| {name} | certify (n0 + n = {int(cert['n0']) + int(cert['n']):,} samples) | "
              f"{counts.get('certify_shard', 0)} shards | {len(sig)} σ | {int(cert['points']):,} | {per_cert:.3g} s | "
              f"{hours(cert_sec)} | {gpu} |")
        prob = cfg["probabilistic"]
        pcl = {tuple(re.search(r"/([^/]+)/certify/([^/]+)/shards/", o).groups())
               for o in plan.get("probabilistic_shard", [])}
        per_prob = int(prob["n_max"]) * c["ball_sample"]
        prob_sec = per_prob * int(prob["points"]) * sum(networks(cl) for _, cl in pcl)
        total += prob_sec
        print(f"| {name} | probabilistic (n_max = {int(prob['n_max']):,} samples, bound) | "
              f"{counts.get('probabilistic_shard', 0)} shards | {len(pcl)} | {int(prob['points']):,} | "
              f"{per_prob:.3g} s | {hours(prob_sec)} | {gpu} |")
        print(f"| {name} | **evaluation total** | | | | | **{hours(total)}** | {gpu} |")
        trained = []
        for rule in ("train", "train_shared"):
            for out in plan.get(rule, []):
                m = re.match(r"results/[^/]+/(?:[^/]+/)?models/([^/]+)\.json$", out)
                if m:
                    trained.append(m.group(1))
        n_train = N_TRAIN[ds] - int(cfg["data"][ds]["n_calib"])
        train_sec = 0.0
        for model_id in trained:
            entry = cfg["models"].get(model_id.split("-")[0] if model_id.startswith("gauss_aug") else model_id, {})
            epochs = int({**cfg["train"], **entry.get("train", {})}["epochs"])
            passes = training_passes(entry.get("objective", "standard"), entry.get("params", {}))
            train_sec += epochs * n_train * passes * c["train_pass"]
        print(f"| {name} | training (rough) | {counts.get('train', 0) + counts.get('train_shared', 0)} | "
              f"{len(trained)} models | {n_train:,} | | {hours(train_sec)} | {gpu} |")
        others[name] = {r: counts[r] for r in OTHER_HEAVY if counts.get(r)}
    print("\nOther heavy jobs (not estimated): " + "; ".join(
        f"{name}: " + ", ".join(f"{r} {k}" for r, k in o.items()) for name, o in others.items()))


if __name__ == "__main__":
    main()
