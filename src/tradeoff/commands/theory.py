"""``tradeoff theory``: Tsipras et al.'s linear classifiers, closed forms next to experiments.

One call evaluates the paper's reference classifiers (averaging, Bayes, ``sign(x_1)``) and the trained
linear models on the ``tsipras`` test split: clean and exact worst case (closed form per sample; one
record ``exact.csv`` carries both) and PGD (the one PGD core, as a check that it reaches the exact worst
case; ``pgd.csv``), and tabulates the closed-form (population) accuracies on a grid of budgets.
Everything is cheap (linear models), so one process does it all: starting a Python process with torch
costs more than the work itself.
"""

from __future__ import annotations

import argparse

from .common import add_runtime_args, json_arg, runtime


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("theory",
                       help="Tsipras et al.: closed forms vs clean / exact / PGD accuracy of linear models")
    add_runtime_args(p)
    p.add_argument("--data", required=True, help="the tsipras dataset artifact")
    p.add_argument("--model", action="append", default=[], metavar="NAME=JSON", type=_model_arg,
                   help="a trained linear classifier (repeatable), e.g. standard=<models>/standard.json")
    p.add_argument("--threat", type=json_arg, required=True, help='{"norm": "Linf", "eps": 2η}')
    p.add_argument("--pgd", type=json_arg, required=True, help="PGD parameters: steps, step_rel, restarts")
    p.add_argument("--curve", type=json_arg, required=True,
                   help="ε grid of the closed forms: {eps_max, points}")
    p.add_argument("--batch-size", type=int, default=5000)
    p.add_argument("--eval-dir", required=True, help="records go to <eval-dir>/<name>/{exact,pgd}.csv")
    p.add_argument("--theory-dir", required=True, help="closed_forms.csv and weights.csv go here")
    p.set_defaults(func=cmd_theory_evaluate)


def _model_arg(text: str) -> tuple[str, str]:
    """argparse type: ``NAME=JSON`` as ``(name, path)``."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=JSON, got '{text}'")
    return name, path


def cmd_theory_evaluate(args: argparse.Namespace) -> None:
    from ..theory.tsipras import run_theory

    run_theory(args.data, dict(args.model), threat=args.threat, pgd=args.pgd, curve=args.curve, seed=args.seed,
               eval_dir=args.eval_dir, theory_dir=args.theory_dir, batch_size=args.batch_size, device=runtime(args))
