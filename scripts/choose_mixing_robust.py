"""Choose the robust base model of the mixing stage on the calibration split, never on test points.

Bai, Anderson & Sojoudi (2024) mix an accurate model g with a robust model h; the mixture's robustness comes
from h, so h should be the most robust model available. This script reads a finished run's trained models
(no training, no test point) and runs AutoAttack with the config's `attacks.autoattack` settings at the
mixing threat on the calibration split for each candidate, then writes a Markdown table with the choice: the
candidate with the highest AutoAttack accuracy on the calibration split (ties go to the higher clean accuracy).

    python scripts/choose_mixing_robust.py --results /path/to/run/results --threat linf-0.3 \
        --candidates pgd_at trades --out docs/mixing.md

Each accuracy carries its exact (Clopper-Pearson) 95% interval, and the two best candidates' difference an
exact McNemar p-value on the same calibration points, so that a choice the points cannot resolve says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def threat_from_id(threat_id: str) -> dict:
    """``linf-0.3`` → ``{"norm": "Linf", "eps": 0.3}`` (the run's path component of a threat)."""
    norm, eps = threat_id.split("-", 1)
    return {"norm": {"linf": "Linf", "l2": "L2", "l1": "L1"}[norm.lower()], "eps": float(eps)}


def evaluate(spec: Path, data: Path, threat: dict, aa: dict, seed: int, batch_size: int
             ) -> tuple[np.ndarray, np.ndarray, dict[str, float], dict[str, bool]]:
    """(clean correct, AutoAttack correct, accuracy after each attack, flags) on the calibration split."""
    from tradeoff import data as data_mod
    from tradeoff.attacks.autoattack import run_autoattack
    from tradeoff.classifiers import load_classifier

    splits = data_mod.load(data)
    x, y = splits.x("calib"), splits.y("calib")
    model = load_classifier(spec, torch.device("cpu"))
    with torch.no_grad():
        clean = torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(y), batch_size)])
    result = run_autoattack(
        model, x, y, norm=threat["norm"], eps=threat["eps"], version=str(aa.get("version", "custom")),
        attacks=tuple(aa.get("attacks", ("apgd-ce", "apgd-t"))), n_iter=int(aa.get("n_iter", 100)),
        apgd_restarts=int(aa.get("apgd_restarts", 1)), n_target_classes=int(aa.get("n_target_classes", 9)),
        square_queries=int(aa.get("square_queries", 5000)), fab_iter=int(aa.get("fab_iter", 100)),
        fab_target_classes=None if aa.get("fab_target_classes") is None else int(aa["fab_target_classes"]),
        batch_size=batch_size, seed=seed, device="cpu")
    with torch.no_grad():
        adv = torch.cat([model(result.x_adv[i:i + batch_size]).argmax(1) for i in range(0, len(y), batch_size)])
    adv = torch.where(clean == y, adv, clean)  # clean errors stay errors, as in AutoAttack
    return ((clean == y).numpy(), (adv == y).numpy(), result.accuracy_by_attack, result.flags)


def model_json(results: Path, dataset: str, threat_id: str, name: str) -> Path:
    """A model's JSON in a run's results: per threat, or shared across threats (standard training)."""
    per_threat = results / dataset / threat_id / "models" / f"{name}.json"
    return per_threat if per_threat.is_file() else results / dataset / "models" / f"{name}.json"


def temperature_lines(results: Path, dataset: str, threat_id: str, accurate: str, robust: str, data: Path
                      ) -> list[str]:
    """Markdown: T_g and T_h chosen by temperature scaling on the calibration split (`mixing.temperatures:
    calibrate`, the `mixing-temperatures` command), with the calibration NLL before and after."""
    from tradeoff import data as data_mod
    from tradeoff.classifiers import load_classifier
    from tradeoff.mixing.calibration import calibrate_temperatures

    splits = data_mod.load(data)
    g = load_classifier(model_json(results, dataset, threat_id, accurate))
    h = load_classifier(model_json(results, dataset, threat_id, robust))
    fits = calibrate_temperatures(g, h, splits.x("calib"), splits.y("calib"))
    lines = ["", "## Temperatures on the calibration split", "",
             "With `mixing.temperatures: calibrate` the workflow's `mix_temperatures` rule scales each base model's "
             "logits by the factor T minimizing the negative log-likelihood of the calibration labels under "
             "softmax(T·logits) (temperature scaling, Guo et al. 2017; T multiplies the logits, as T_g and T_h in "
             "the mixture). For this run's models:", "",
             "| role | model | T | calibration NLL at T = 1 | at the fitted T | calibration points |",
             "|---|---|---:|---:|---:|---:|"]
    for role, name in (("g", accurate), ("h", robust)):
        fit = fits[role]
        lines.append(f"| {role} | {name} | {fit.temp:.3f} | {fit.nll_before:.4f} | {fit.nll_after:.4f} | {fit.n} |")
    return lines


def main() -> None:
    from tradeoff.claims import mcnemar_pvalue, proportion_interval

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "config.yaml"), help="its attacks.autoattack settings are used")
    parser.add_argument("--results", required=True, help="results/ folder of a finished run (models and data)")
    parser.add_argument("--dataset", default=None, help="default: the config's dataset")
    parser.add_argument("--threat", default="linf-0.3", help="threat id of the mixing stage")
    parser.add_argument("--candidates", nargs="+", default=["pgd_at", "trades"])
    parser.add_argument("--accurate", default="standard", help="the accurate model g (for the temperatures)")
    parser.add_argument("--out", default=None, help="Markdown file (default: print only)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = yaml.safe_load(Path(args.config).read_text())
    dataset = args.dataset or cfg["dataset"]
    results = Path(args.results)
    data = results / dataset / "data.pt"
    threat = threat_from_id(args.threat)
    aa = cfg["attacks"]["autoattack"]
    rows = []
    outcomes = {}
    for name in args.candidates:
        spec = results / dataset / args.threat / "models" / f"{name}.json"
        clean, robust, per_attack, flags = evaluate(spec, data, threat, aa, int(cfg["seed"]),
                                                    int(cfg["attacks"]["batch_size"]))
        outcomes[name] = robust
        n, k = len(robust), int(robust.sum())
        lo, hi = proportion_interval(k, n)
        raised = [f for f, on in flags.items() if on]
        rows.append((name, clean.mean(), k / n, (lo, hi), n, per_attack, raised))
        print(f"{name}: clean {clean.mean():.3f}, AutoAttack {k / n:.3f} [{lo:.3f}, {hi:.3f}] on {n} calibration "
              f"points; after each attack {per_attack}; flags {raised or 'none'}", file=sys.stderr)
    ranked = sorted(rows, key=lambda r: (r[2], r[1]), reverse=True)
    chosen = ranked[0][0]
    verdict = ""
    if len(ranked) > 1:
        best, second = ranked[0][0], ranked[1][0]
        p = mcnemar_pvalue(outcomes[best], outcomes[second])
        diff = ranked[0][2] - ranked[1][2]
        verdict = (f" It leads {second} by {100 * diff:.1f} points of AutoAttack accuracy on the same calibration "
                   f"points (exact McNemar p = {p:.2g}" + ("; significant at 5%)." if p < 0.05
                                                          else "; the points cannot resolve the difference)."))
    aa_desc = (f"version {aa.get('version', 'custom')}: {', '.join(aa.get('attacks', []))}, {aa.get('n_iter')} "
               f"APGD iterations, {aa.get('n_target_classes')} APGD-T targets, {aa.get('square_queries')} Square "
               "queries" if aa.get("version", "custom") == "custom" else "standard")
    cmd = (f"python scripts/choose_mixing_robust.py --results {args.results} --threat {args.threat} "
           f"--candidates {' '.join(args.candidates)}" + (f" --out {args.out}" if args.out else ""))
    lines = ["# The mixing stage's robust base model, chosen on the calibration split", "",
             f"`{cmd}` (config: `{Path(args.config).name}`, dataset `{dataset}`). The trained models of a finished "
             f"run are attacked with AutoAttack ({aa_desc}) at {threat['norm']} ε = {threat['eps']:g} on the "
             "calibration split; no test point is used. Intervals are exact (Clopper-Pearson) 95% intervals.", "",
             "| candidate | clean accuracy | AutoAttack accuracy | 95% interval | accuracy after each attack "
             "| AutoAttack flags | calibration points |",
             "|---|---:|---:|---|---|---|---:|"]
    for name, c, r, (lo, hi), n, per_attack, raised in rows:
        steps = ", ".join(f"{a} {100 * v:.1f}%" for a, v in per_attack.items()) or "–"
        lines.append(f"| {name} | {100 * c:.1f}% | {100 * r:.1f}% | [{100 * lo:.1f}%, {100 * hi:.1f}%] | {steps} "
                     f"| {', '.join(raised) or 'none'} | {n} |")
    lines += ["", f"Chosen: the highest AutoAttack accuracy on the calibration split: **{chosen}** "
              f"(config `mixing.robust: {chosen}`).{verdict}"]
    lines += temperature_lines(results, dataset, args.threat, args.accurate, chosen, data)
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    print(json.dumps({"chosen": chosen}), file=sys.stderr)


if __name__ == "__main__":
    main()
