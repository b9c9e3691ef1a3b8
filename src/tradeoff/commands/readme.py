"""``tradeoff readme``: regenerate the README's results section (and its figure copies) from a run's records."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("tradeoff")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("readme", help="rewrite the README's results section from a finished run")
    p.add_argument("--results", default="results", help="the run's results folder")
    p.add_argument("--readme", default="README.md", help="the page to rewrite (another page: docs/results-mnist.md)")
    p.add_argument("--figures", default="docs/figures",
                   help="where the figure copies go, relative to the page's repository (the folder above "
                        "it holding the Snakefile): one folder per page; \"\" for none")
    p.add_argument("--section", choices=["results", "seeds"], default="results",
                   help="results: the run's results section | seeds: a multi-seed run's claims, pooled over seeds")
    p.add_argument("--baseline", default=None,
                   help="(--section seeds) a one-seed run's results folder, whose verdicts are shown side by side")
    p.add_argument("--link", default="", help="(--section seeds) the page with the whole table, linked from it")
    p.set_defaults(func=cmd_readme)


def cmd_readme(args: argparse.Namespace) -> None:
    from ..io import write_text
    from ..readme import SEEDS_BEGIN, SEEDS_END, seeds_section, stale_figures, update_readme, write_readme

    readme = Path(args.readme).resolve()
    if args.section == "seeds":
        section = seeds_section(Path(args.results), Path(args.baseline) if args.baseline else None, args.link)
        write_text(readme, update_readme(readme, section, (SEEDS_BEGIN, SEEDS_END)))
        log.info("%s: seeds section rewritten", readme)
        return
    # --figures is relative to the page's repository: the nearest folder above it holding a Snakefile (else the
    # page's own folder), never the working directory, so that no other checkout's figures are touched
    root = next((p for p in readme.parents if (p / "Snakefile").is_file()), readme.parent)
    copied = write_readme(Path(args.results), readme, root, args.figures)
    for path in stale_figures(root / args.figures, copied) if args.figures else ():
        path.unlink()
        log.info("removed %s (no longer shown)", path)
    log.info("%s: results section rewritten, %d figures copied", readme, len(copied))
