"""Attack speed, side by side in one run: the pipeline's PGD vs torchattacks' PGD vs the floor of
steps × (forward + backward), and AutoAttack through the pipeline vs pyautoattack called directly.

    python benchmarks/attacks.py [--repeats 5] [--n 200] [--train-epochs 30 | --model results/digits/models/pgd_at.json]

The attacked model is robust, as in the pipeline: a small CNN adversarially trained here for
``--train-epochs`` epochs (PGD-AT at the benchmark's ε), or a classifier JSON of a pipeline run. On an
untrained model AutoAttack stops after a few iterations and fixed costs dominate. Prints markdown tables of
median seconds, ratios (what to compare across machines) and the robust accuracy each attack leaves (the
attacks must do the same work). Needs the `bench` extra (torchattacks) for the torchattacks row.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from tradeoff.attacks.autoattack import run_autoattack
from tradeoff.attacks.pgd import Threat, attack_model
from tradeoff.classifiers import load_classifier
from tradeoff.data import make_digits
from tradeoff.models import build_model
from tradeoff.objectives import build_objective
from tradeoff.train import TrainConfig, train


def interleaved(fns: dict[str, Callable[[], None]], repeats: int) -> list[tuple[str, float]]:
    """Median seconds of each function, run in turn ``repeats`` times (a drift of the machine's speed hits
    every function alike)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return [(name, statistics.median(t)) for name, t in times.items()]


def robust_model(data: dict[str, torch.Tensor], threat: Threat, epochs: int, workdir: Path) -> torch.nn.Module:
    """A small CNN adversarially trained (PGD-7) on the digits' training split."""
    model = build_model("small_cnn", "digits", 10, (1, 8, 8))
    objective = build_objective("pgd_at", {"steps": 7, "step_rel": 0.357}, threat)
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=0.002, seed=0)
    train(model, objective, data["x_train"], data["y_train"], cfg, workdir / "ckpt.pt", "bench",
          torch.device("cpu"), progress=False)
    return model


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n", type=int, default=200, help="test points")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--train-epochs", type=int, default=30, help="PGD-AT epochs of the attacked model")
    parser.add_argument("--model", default=None, help="attack this classifier JSON instead (digits)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = make_digits(300, args.n, seed=0)
    x, y = data["x_test"], data["y_test"]
    threat = Threat("Linf", args.eps, (0.0, 1.0))
    if args.model:
        model, what = load_classifier(args.model), args.model
    else:
        with tempfile.TemporaryDirectory() as tmp:
            model = robust_model(data, threat, args.train_epochs, Path(tmp))
        what = f"small CNN, PGD-AT {args.train_epochs} epochs"
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    step = args.eps / 4
    advs: dict[str, torch.Tensor] = {}

    def floor() -> None:
        for _ in range(args.steps):
            z = x.clone().requires_grad_(True)
            loss = F.cross_entropy(model(z), y, reduction="sum")
            torch.autograd.grad(loss, z)

    def ours() -> None:
        advs["tradeoff PGD"] = attack_model(model, x, y, threat, steps=args.steps, step_size=step)

    pgd_fns = {"steps × (fwd+bwd) floor": floor, "tradeoff PGD": ours}
    try:
        import torchattacks

        ta = torchattacks.PGD(model, eps=args.eps, alpha=step, steps=args.steps, random_start=True)

        def theirs() -> None:
            advs["torchattacks PGD"] = ta(x, y)

        pgd_fns["torchattacks PGD"] = theirs
    except ImportError:
        print("torchattacks is not installed (pip install -e '.[bench]'): its row is missing")
    rows = interleaved(pgd_fns, args.repeats)

    def aa_pipeline() -> None:
        advs["AutoAttack through tradeoff"] = run_autoattack(
            model, x, y, norm="Linf", eps=args.eps, version="custom", attacks=("apgd-ce", "apgd-t"), n_iter=100,
            apgd_restarts=1, n_target_classes=9, batch_size=500, seed=0).x_adv

    def aa_direct() -> None:
        from pyautoattack import AutoAttack

        adversary = AutoAttack(model, norm="Linf", eps=args.eps, version="custom", attacks=["apgd-ce", "apgd-t"],
                               seed=0)
        adversary.apgd.n_restarts = 1
        advs["pyautoattack direct (APGD-CE + APGD-T)"] = adversary.run_standard_evaluation(x, y, batch_size=500)[0]

    aa = interleaved({"pyautoattack direct (APGD-CE + APGD-T)": aa_direct, "AutoAttack through tradeoff": aa_pipeline},
                     max(1, args.repeats // 2))
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}, "
          f"threads {args.threads}; {args.n} digits, {what}, clean accuracy {accuracy(model, x, y):.3f}; "
          f"PGD-{args.steps}, eps {args.eps}\n")
    print("| attack | median s | ratio to floor | robust accuracy |")
    print("|---|---|---|---|")
    for name, sec in rows:
        acc = f"{accuracy(model, advs[name], y):.3f}" if name in advs else "–"
        print(f"| {name} | {sec:.4f} | {sec / rows[0][1]:.3f} | {acc} |")
    print("\n| AutoAttack | median s | ratio to direct | robust accuracy |")
    print("|---|---|---|---|")
    for name, sec in aa:
        print(f"| {name} | {sec:.3f} | {sec / aa[0][1]:.3f} | {accuracy(model, advs[name], y):.3f} |")


if __name__ == "__main__":
    main()
