"""Attack speed, side by side in one run: the pipeline's PGD vs torchattacks' PGD vs the floor of
steps × (forward + backward), and AutoAttack through the pipeline vs pyautoattack called directly.

    python benchmarks/attacks.py [--repeats 5] [--n 200]

Prints a markdown table of median seconds and ratios (ratios are what to compare across machines).
Needs the `bench` extra (torchattacks) for the torchattacks column.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from tradeoff.attacks.autoattack import run_autoattack
from tradeoff.attacks.pgd import Threat, attack_model
from tradeoff.data import make_digits
from tradeoff.models import build_model


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n", type=int, default=200, help="test points")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eps", type=float, default=0.3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = make_digits(300, args.n, seed=0)
    x, y = data["x_test"], data["y_test"]
    model = build_model("small_cnn", "digits", 10, (1, 8, 8)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    threat = Threat("Linf", args.eps, (0.0, 1.0))
    step = args.eps / 4

    def floor() -> None:
        for _ in range(args.steps):
            z = x.clone().requires_grad_(True)
            loss = F.cross_entropy(model(z), y)
            torch.autograd.grad(loss, z)

    def ours() -> None:
        attack_model(model, x, y, threat, steps=args.steps, step_size=step)

    rows = [("steps × (fwd+bwd) floor", timed(floor, args.repeats)), ("tradeoff PGD", timed(ours, args.repeats))]
    try:
        import torchattacks

        ta = torchattacks.PGD(model, eps=args.eps, alpha=step, steps=args.steps, random_start=True)
        rows.append(("torchattacks PGD", timed(lambda: ta(x, y), args.repeats)))
    except ImportError:
        rows.append(("torchattacks PGD (not installed)", float("nan")))

    def aa_pipeline() -> None:
        run_autoattack(model, x, y, norm="Linf", eps=args.eps, version="custom", attacks=("apgd-ce", "apgd-t"),
                       n_iter=100, apgd_restarts=1, n_target_classes=9, batch_size=500, seed=0)

    def aa_direct() -> None:
        from pyautoattack import AutoAttack

        adversary = AutoAttack(model, norm="Linf", eps=args.eps, version="custom", attacks=["apgd-ce", "apgd-t"],
                               seed=0)
        adversary.apgd.n_restarts = 1
        adversary.run_standard_evaluation(x, y, batch_size=500)

    aa_repeats = max(1, args.repeats // 2)
    aa = [("pyautoattack direct (APGD-CE + APGD-T)", timed(aa_direct, aa_repeats)),
          ("AutoAttack through tradeoff", timed(aa_pipeline, aa_repeats))]
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}, "
          f"threads {args.threads}; {args.n} digits, small CNN, PGD-{args.steps}, eps {args.eps}\n")
    print("| attack | median s | ratio to floor |")
    print("|---|---|---|")
    for name, sec in rows:
        print(f"| {name} | {sec:.4f} | {sec / rows[0][1]:.3f} |")
    print("\n| AutoAttack | median s | ratio to direct |")
    print("|---|---|---|")
    for name, sec in aa:
        print(f"| {name} | {sec:.3f} | {sec / aa[0][1]:.3f} |")


if __name__ == "__main__":
    main()
