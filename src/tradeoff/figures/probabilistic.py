"""Probabilistic (eps, kappa) certification: certified robust accuracy vs kappa, and samples used.

Both figures read the merged per-sample records of ``tradeoff merge probabilistic`` only; every kappa's
decision is replayed from the success counts stored in them (:mod:`tradeoff.probabilistic.decisions`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..io import read_records
from ..probabilistic.decisions import decisions, metrics
from ..probabilistic.settings import ProbSettings
from . import register
from .style import new_figure, save

_STYLE = {"sequential": "-", "fixed": "--"}


def _settings(meta: Mapping) -> ProbSettings:
    return ProbSettings.from_mapping(meta["settings"])


@register("prob-kappa")
def prob_kappa(out: str, records: Mapping[str, Mapping[str, str]], dataset: str) -> None:
    """Certified robust accuracy (%) vs kappa, one colour per training method, one line style per test.

    ``records`` maps classifier -> test ('fixed' / 'sequential') -> merged record CSV.
    """
    from matplotlib.lines import Line2D

    fig, ax = new_figure(5.5, 4.0)
    colors: dict[str, str] = {}
    title = ""
    for name, by_test in records.items():
        for test, path in sorted(by_test.items()):
            frame, meta = read_records(path)
            settings = _settings(meta)
            kappas = sorted(settings.kappa_sweep)
            acc = [100 * metrics(frame, test, k, settings)["certified_accuracy"] for k in kappas]
            kwargs = {"color": colors[name]} if name in colors else {}
            (line,) = ax.plot(kappas, acc, _STYLE.get(test, ":"), marker="o", ms=3, **kwargs)
            colors.setdefault(name, line.get_color())
            title = (f"{dataset}: {settings.norm} ε={settings.eps:g}, α={settings.alpha:g}, "
                     f"n_max={settings.n_max}, {len(frame)} points")
    ax.set_xscale("log")
    ax.set_xlabel("κ (tolerated fraction of the vicinity predicted differently)")
    ax.set_ylabel("certified robust accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    methods = ax.legend([Line2D([], [], color=c) for c in colors.values()], list(colors), fontsize=7,
                        loc="center right", title="training", title_fontsize=7)
    ax.add_artist(methods)
    tests = sorted({t for by_test in records.values() for t in by_test})
    ax.legend([Line2D([], [], color="k", linestyle=_STYLE.get(t, ":")) for t in tests], tests, fontsize=7,
              loc="upper left", title="test", title_fontsize=7)
    save(fig, Path(out))


@register("prob-samples")
def prob_samples(out: str, records: Mapping[str, str], dataset: str) -> None:
    """Histogram of the samples the sequential test used per input (summary kappa), against the fixed
    test's n = n_max.  The test only stops at its planned looks, so the histogram has one bar group per look
    (one bar per training method).

    ``records`` maps classifier -> merged record CSV of the sequential test.
    """
    used: dict[str, np.ndarray] = {}
    settings = None
    for name, path in records.items():
        frame, meta = read_records(path)
        settings = _settings(meta)
        used[name] = decisions(frame, "sequential", settings.kappa, settings)["samples"].to_numpy()
    fig, ax = new_figure(5.5, 4.0)
    if settings is None:
        save(fig, Path(out))
        return
    looks = settings.design(settings.kappa).looks
    width = 0.8 / max(len(used), 1)
    for j, (name, values) in enumerate(used.items()):
        counts = [int(np.sum(values == look)) for look in looks]
        ax.bar(np.arange(len(looks)) + (j - (len(used) - 1) / 2) * width, counts, width,
               label=f"{name}: mean {values.mean():.0f} ({values.mean() / settings.n_max:.2f} of n_max)")
    ax.set_xticks(np.arange(len(looks)), [f"{look}" + (" = n_max" if look == settings.n_max else "")
                                          for look in looks])
    points = max(len(v) for v in used.values())
    ax.bar(len(looks) - 1, points, 0.9, fill=False, edgecolor="k", linestyle="--", linewidth=1,
           label=f"fixed test: all {points} inputs use n = n_max = {settings.n_max}")
    ax.set_ylim(0, points * 1.45)
    ax.set_xlabel("samples used per input by the sequential test (its planned looks)")
    ax.set_ylabel("test inputs")
    levels = settings.design(settings.kappa).levels
    ax.set_title(f"{dataset}: sequential test at κ={settings.kappa:g}, α={settings.alpha:g} "
                 f"(α per look: {', '.join(f'{a / settings.alpha:.2g}α' for a in levels)})", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="upper right")
    save(fig, Path(out))
