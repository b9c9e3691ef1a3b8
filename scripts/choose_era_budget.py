"""Choose the small threat budget of the ERA stage on the calibration split, never on test points.

Merkli et al. (2023) compose a robust branch with a standard model behind a robustness-indicator selector;
the composition can only help where points are soundly selected: the branch is robust at 2ε around them
(Section 3.3), so that every point of their ε-ball is accepted with the same answer. At a budget where no
point is robust at 2ε the composite is the standard model. For each candidate ε this script trains the
config's TRADES model and its ERA fine-tuning at ε on the training split (the same commands and settings as
the DAG's `train` rule), and measures on the calibration split the share of points that the runtime selector
accepts at ε and that the strong robustness test (config `era.robustness`: random starts, restarts, margin
loss, targeted runs) cannot flip within 2ε. It writes that table as Markdown.

    python scripts/choose_era_budget.py --eps 0.05 0.1 0.15 0.2 --out docs/threats.md

The embedded default takes the largest candidate whose calibration share is at least ``--target`` (the
larger the budget, the more the robust models differ from the standard one); a share of 0.3 on test points is
what the composition needs to show anything.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "tradeoff", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def train(cfg: dict, work: Path, data: Path, name: str, eps: float, init: Path | None) -> Path:
    entry = cfg["models"][name]
    out = work / f"{name}-{eps:g}.json"
    run("train", "--no-progress", "--threads", "1", "--device", "cpu", "--seed", str(cfg["seed"]), "--data",
        str(data), "--name", name, "--arch", cfg["model"]["arch"],
        "--arch-options", json.dumps(cfg["model"]["options"]),
        "--objective", entry["objective"], "--objective-params", json.dumps(entry["params"]),
        "--threat", json.dumps({"norm": "Linf", "eps": eps}),
        "--train-params", json.dumps({**cfg["train"], **entry.get("train", {})}),
        "--checkpoint", str(work / f"{name}-{eps:g}.ckpt"), "--out", str(out),
        *(["--init", str(init)] if init else []))
    return out


def sound_share(cfg: dict, spec: Path, data: Path, eps: float) -> tuple[float, float, int]:
    """(runtime selection rate at ε, sound selection rate at 2ε under the strong test, points) on calib."""
    from tradeoff import data as data_mod
    from tradeoff.abstain import RobustnessAttack, build_selector, robustness_test
    from tradeoff.attacks.pgd import Threat
    from tradeoff.classifiers import load_classifier

    splits = data_mod.load(data)
    x = splits.x("calib")
    model = load_classifier(str(spec), torch.device("cpu"))
    threat = Threat("Linf", eps, splits.bounds)
    selector_cfg = {**cfg["era"]["composite"]["selector"], "seed": cfg["seed"]}
    selector = build_selector(selector_cfg, model, splits.num_classes, threat)
    selected = selector.indicator(x, selector.scale)
    strong = RobustnessAttack.from_mapping({k: v for k, v in cfg["era"]["robustness"].items() if k != "combine"})
    wide = robustness_test(model, x, threat.scaled(selector.scale + 1.0), strong,
                           generator=torch.Generator().manual_seed(int(cfg["seed"])), seed=int(cfg["seed"]))
    sound = selected & selector.indicator(x, selector.scale + 1.0) & wide.robust
    return float(selected.float().mean()), float(sound.float().mean()), int(x.shape[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "config.yaml"))
    parser.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.1, 0.15, 0.2])
    parser.add_argument("--target", type=float, default=0.4, help="share of sound selection to reach on calib")
    parser.add_argument("--out", default=None, help="Markdown table (default: print)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = yaml.safe_load(Path(args.config).read_text())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "digits.pt"
        run("data", "--dataset", cfg["dataset"], "--params", json.dumps(cfg["data"][cfg["dataset"]]),
            "--seed", str(cfg["seed"]), "--out", str(data))
        for eps in args.eps:
            trades = train(cfg, work, data, "trades", eps, None)
            era = train(cfg, work, data, "era", eps, trades)
            selected, sound, n = sound_share(cfg, era, data, eps)
            rows.append((eps, selected, sound, n))
            print(f"eps {eps:g}: selected {selected:.3f}, sound at 2eps {sound:.3f} ({n} calibration points)")
    chosen = max((r[0] for r in rows if r[2] >= args.target), default=None)
    lines = ["# The ERA stage's budget, chosen on the calibration split", "",
             f"`python scripts/choose_era_budget.py --eps {' '.join(f'{e:g}' for e in args.eps)} "
             f"--target {args.target:g} --out docs/threats.md` (config: `{Path(args.config).name}`). The ERA model "
             "(TRADES fine-tuned with L_ERA) is trained at each ε on the training split; on the calibration "
             "split, *selected* is the share the runtime selector accepts at ε and *sound* the share it accepts "
             "that the strong robustness test (`era.robustness`) cannot flip within 2ε (Merkli et al. 2023, "
             "Section 3.3). No test point is used.", "",
             "| ε | selected at ε | sound at 2ε | calibration points |", "|---:|---:|---:|---:|"]
    lines += [f"| {e:g} | {100 * s:.1f}% | {100 * d:.1f}% | {n} |" for e, s, d, n in rows]
    lines += ["", f"Chosen: the largest ε whose sound share reaches {100 * args.target:.0f}%: "
              + (f"**{chosen:g}**." if chosen is not None else "none of the candidates.")]
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
