"""Certification throughput (noisy samples per second) against the raw batched forward pass of the same model.

Compares, on the digits CNN (or any classifier JSON given with --classifier):

* raw forward     -- ``model(batch)`` on pre-computed noisy batches: the ceiling of any Monte-Carlo
                     certifier;
* tradeoff        -- :meth:`tradeoff.certify.Smooth.certify_counts` (per-point generator, inverse-CDF normals
                     that make results batch-size invariant, chunked counting);
* reference style -- the loop of Cohen et al.'s ``core.Smooth._sample_noise``: one test image at a time,
                     ``x.repeat`` + ``torch.randn_like`` per batch, predictions counted by a Python loop
                     (``_count_arr``);
* one at a time   -- one noisy copy per forward pass (what an unbatched loop costs), on fewer samples.

Run:  python benchmarks/certify_throughput.py [--points 20 --n 2000 --batch-size 1000 --threads 1]
Prints a markdown table. Rates are per CPU second of this process (``time.process_time``), which other
jobs on a shared machine disturb far less than wall time; each method's best of --repeats interleaved runs.
With --threads > 1 the CPU time adds up over threads: use 1 thread for the comparison.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from tradeoff.certify import Smooth, point_generator
from tradeoff.classifiers import load_classifier, load_spec
from tradeoff.models import build_model


def raw_forward(model: torch.nn.Module, batches: list[torch.Tensor]) -> float:
    with torch.no_grad():
        for b in batches:
            model(b).argmax(1)
    return float(sum(b.shape[0] for b in batches))


def ours(model: torch.nn.Module, x: torch.Tensor, n0: int, n: int, sigma: float, batch_size: int,
         classes: int) -> float:
    smooth = Smooth(model, classes, sigma, batch_size)
    for i in range(x.shape[0]):
        smooth.certify_counts(x[i], n0, n, point_generator(0, i, 1))
    return float(x.shape[0] * (n0 + n))


def reference_style(model: torch.nn.Module, x: torch.Tensor, n0: int, n: int, sigma: float, batch_size: int,
                    classes: int) -> float:
    def count_arr(arr: np.ndarray) -> np.ndarray:
        counts = np.zeros(classes, dtype=int)
        for idx in arr:
            counts[idx] += 1
        return counts

    def sample_noise(xi: torch.Tensor, num: int) -> np.ndarray:
        with torch.no_grad():
            counts = np.zeros(classes, dtype=int)
            for _ in range(int(np.ceil(num / batch_size))):
                this_batch_size = min(batch_size, num)
                num -= this_batch_size
                batch = xi.repeat((this_batch_size, 1, 1, 1))
                noise = torch.randn_like(batch) * sigma
                predictions = model(batch + noise).argmax(1)
                counts += count_arr(predictions.cpu().numpy())
            return counts

    for i in range(x.shape[0]):
        sample_noise(x[i], n0)
        sample_noise(x[i], n)
    return float(x.shape[0] * (n0 + n))


def one_at_a_time(model: torch.nn.Module, x: torch.Tensor, num: int, sigma: float) -> float:
    with torch.no_grad():
        for i in range(x.shape[0]):
            for _ in range(num):
                model(x[i:i + 1] + sigma * torch.randn_like(x[i:i + 1])).argmax(1)
    return float(x.shape[0] * num)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classifier", default=None,
                        help="classifier JSON (default: an untrained digits CNN)")
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--single-samples", type=int, default=200,
                        help="noisy copies per point in the unbatched loop")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.classifier:
        spec = load_spec(args.classifier)
        model = load_classifier(args.classifier)
        shape, classes = tuple(spec["input_shape"]), int(spec["num_classes"])
    else:
        shape, classes = (1, 8, 8), 10
        model = build_model("small_cnn", "digits", classes, shape, {"width": 32}).eval()
    x = torch.rand(args.points, *shape)
    total = args.points * (args.n0 + args.n)
    # raw forward on the same number of noisy inputs, in the same batch sizes, noise made beforehand
    sizes = []
    for _ in range(args.points):
        for num in (args.n0, args.n):
            full, rest = divmod(num, args.batch_size)
            sizes += [args.batch_size] * full + ([rest] if rest else [])
    batches = [torch.rand(s, *shape) + args.sigma * torch.randn(s, *shape) for s in sizes]
    assert sum(sizes) == total
    methods = {
        "raw batched forward": lambda: raw_forward(model, batches),
        "tradeoff (Smooth.certify_counts)":
            lambda: ours(model, x, args.n0, args.n, args.sigma, args.batch_size, classes),
        "reference style (Cohen et al. loop)":
            lambda: reference_style(model, x, args.n0, args.n, args.sigma, args.batch_size, classes),
        "one noisy copy per forward": lambda: one_at_a_time(model, x[:2], args.single_samples, args.sigma),
    }
    best: dict[str, float] = {name: 0.0 for name in methods}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            start = time.process_time()
            samples = fn()
            best[name] = max(best[name], samples / (time.process_time() - start))
    raw = best["raw batched forward"]
    print(f"points={args.points} n0={args.n0} n={args.n} batch={args.batch_size} threads={args.threads} "
          f"torch={torch.__version__} (best of {args.repeats})\n")
    print("| method | noisy samples / CPU s | ratio to raw forward |")
    print("|---|---:|---:|")
    for name, rate in best.items():
        print(f"| {name} | {rate:,.0f} | {rate / raw:.2f} |")


if __name__ == "__main__":
    main()
