"""Memory layout of the small CNN: contiguous (NCHW) vs channels-last weights, side by side in one process.

    python benchmarks/layout.py --repeats 7 --batch 360

Times what every attack iteration costs: a forward pass and the gradient with respect to the input (parameters
frozen, as in evaluation), and one training step (forward and backward with parameter gradients, batch 64), for
the default digits model (8×8, width 32) and the MNIST preset's (28×28). Both layouts load the same weights;
the script checks that they return the same logits and input gradients before timing. Medians of ``--repeats``;
the ratio is contiguous time / channels-last time (above 1: channels-last is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tradeoff.models import build_model


def _input_gradient(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z = x.clone().requires_grad_(True)
    out = model(z)
    (grad,) = torch.autograd.grad(out.logsumexp(1).sum(), z)
    return out.detach(), grad


def _train_step(model: torch.nn.Module, x: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    model(x).logsumexp(1).sum().backward()


def _median_seconds(fn, repeats: int, inner: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=360, help="points per attack iteration (the digits test set)")
    parser.add_argument("--inner", type=int, default=20, help="calls per timing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, 1 thread, medians of {args.repeats} × {args.inner} calls\n")
    print("| model | work | contiguous ms | channels-last ms | ratio |")
    print("|---|---|---:|---:|---:|")
    for dataset, side in (("digits", 8), ("mnist", 28)):
        fast = build_model("small_cnn", dataset, 10, (1, side, side), {"width": 32})
        plain = build_model("small_cnn", dataset, 10, (1, side, side), {"width": 32})
        for p in plain.parameters():
            p.data = p.data.clone(memory_format=torch.contiguous_format)
        plain.load_state_dict(fast.state_dict())
        x = torch.rand(args.batch, 1, side, side)
        for model in (fast, plain):
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
        (out_f, grad_f), (out_p, grad_p) = _input_gradient(fast, x), _input_gradient(plain, x)
        # relative norm, not elementwise: a max-pool window whose two largest inputs are within float rounding
        # may route one pixel's gradient differently in the two layouts
        for a, b in ((out_f, out_p), (grad_f, grad_p)):
            if (a - b).norm() > 1e-3 * b.norm():
                raise SystemExit("the two layouts disagree beyond float rounding: not the same function")
        xb = torch.rand(64, 1, side, side)
        attack = [_median_seconds(lambda m=m, x=x: _input_gradient(m, x), args.repeats, args.inner)
                  for m in (plain, fast)]
        for model in (fast, plain):
            model.train()
            for p in model.parameters():
                p.requires_grad_(True)
        step = [_median_seconds(lambda m=m, xb=xb: _train_step(m, xb), args.repeats, args.inner)
                for m in (plain, fast)]
        rows = [(f"forward + input gradient, batch {args.batch}", attack), ("training step, batch 64", step)]
        for work, (t_plain, t_fast) in rows:
            print(f"| small_cnn {side}×{side} | {work} | {1e3 * t_plain:.2f} | {1e3 * t_fast:.2f} | "
                  f"**{t_plain / t_fast:.2f}** |", flush=True)


if __name__ == "__main__":
    main()
