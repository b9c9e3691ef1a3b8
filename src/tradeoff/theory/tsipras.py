"""Tsipras et al. (ICLR 2019) on their own distribution: trained linear models next to the closed forms.

The closed forms live in :mod:`tradeoff.theory.closed_forms` (numpy, population values). This module connects them to
the pipeline's artifacts:

* :func:`linear_params` reads ``(w, b)`` of a trained :class:`~tradeoff.models.LinearBinary` in the
  convention of :mod:`tradeoff.theory.closed_forms` (``sign(w . x + b)`` predicts ``y`` in ``{-1, +1}``; class index
  1 is ``y = +1``), and :func:`linear_model` builds the torch model of given ``(w, b)`` so that the
  reference classifiers of the paper (averaging, Bayes, ``sign(x_1)``) go through the same PGD core as
  the trained ones;
* :func:`exact_records` evaluates a linear classifier on test points under the *exact* worst-case
  l_inf perturbation (closed form per sample, no search);
* :func:`closed_form_rows` tabulates the population accuracy of each classifier on a grid of budgets,
  with the Theorem 2.1 bound where it applies.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models import LinearBinary
from .closed_forms import averaging_weights, bayes_weights, check_bound, linear_accuracy, tradeoff_bound
from .closed_forms import exact_accuracy_curve as exact_accuracy_curve  # re-exported: it needs numpy only

log = logging.getLogger("tradeoff")

EXACT_COLUMNS = ["index", "label", "clean_prediction", "clean_correct", "prediction", "correct", "perturbation",
                 "margin"]
"""Columns of an ``exact`` record: the evaluation records' columns, whether the clean prediction is right,
and the clean margin ``y (w . x + b)`` (from which the exact accuracy at any budget follows)."""

REFERENCES = ("averaging", "bayes", "robust")
"""The paper's reference classifiers: ``sign(mean(x_2..x_{d+1}))``, the Bayes-optimal standard
classifier, and the robust classifier ``sign(x_1)``."""


def linear_params(model: LinearBinary) -> tuple[np.ndarray, float]:
    """``(w, b)`` (float64) such that ``model`` predicts class 1 (``y = +1``) iff ``w . x + b > 0``.

    Guarantee: ``LinearBinary`` returns logits ``(-s/2, s/2)`` with ``s = w . x + b``, so its argmax is
    class 1 exactly when ``s > 0`` (a tie ``s = 0`` goes to class 0, a measure-zero event on this
    distribution). The returned pair therefore describes the same classifier as the model.
    """
    if not isinstance(model, LinearBinary):
        raise TypeError(f"expected a LinearBinary model, got {type(model).__name__}")
    w = model.linear.weight.detach().double().cpu().numpy().reshape(-1).copy()
    b = float(model.linear.bias.detach().double().cpu().item())
    return w, b


def linear_model(w: Sequence[float] | np.ndarray, b: float) -> LinearBinary:
    """A frozen :class:`LinearBinary` computing ``sign(w . x + b)`` (float32 weights), in eval mode."""
    w = np.asarray(w, dtype=np.float64)
    model = LinearBinary(int(w.shape[0]))
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor(w, dtype=torch.float32).view(1, -1))
        model.linear.bias.fill_(float(b))
    model.eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    return model


def reference_classifiers(p: float, eta: float, d: int) -> dict[str, tuple[np.ndarray, float]]:
    """``(w, b)`` of the paper's reference classifiers on ``D(p, eta, d)``, keyed by :data:`REFERENCES`."""
    robust = np.zeros(d + 1, dtype=np.float64)
    robust[0] = 1.0
    return {
        "averaging": (averaging_weights(d), 0.0),
        "bayes": (bayes_weights(p, eta, d), 0.0),
        "robust": (robust, 0.0),
    }


def labels_to_signs(y: torch.Tensor | np.ndarray) -> np.ndarray:
    """Class indices (0 ↔ ``y = -1``, 1 ↔ ``y = +1``, as :func:`tradeoff.data.make_tsipras` stores them)
    to signs in ``{-1, +1}`` (float64)."""
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("tsipras labels must be class indices 0 or 1")
    return 2.0 * y.astype(np.float64) - 1.0


def margins(w: np.ndarray, b: float, x: torch.Tensor | np.ndarray,
            y: torch.Tensor | np.ndarray) -> np.ndarray:
    """Clean margins ``y (w . x + b)`` in float64 (``y`` as class indices)."""
    xx = np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    return labels_to_signs(y) * (xx @ np.asarray(w, dtype=np.float64) + float(b))


def exact_records(w: np.ndarray, b: float, x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray,
                  eps: float) -> list[dict[str, Any]]:
    """Per-sample records of ``sign(w . x + b)`` under the exact worst-case l_inf attack of budget ``eps``.

    Guarantee: for a linear classifier the perturbation ``delta = -eps sign(w) y`` minimizes the margin
    over the whole ball, lowering it by exactly ``eps ||w||_1``; a point is ``correct`` iff
    ``y (w . x + b) - eps ||w||_1 > 0`` (a zero margin is an error, as in :mod:`tradeoff.theory.closed_forms`).
    No attack can do better, so the mean of ``correct`` is the exact robust accuracy on these points
    (it equals :func:`tradeoff.theory.closed_forms.empirical_linear_accuracy`). Columns: :data:`EXACT_COLUMNS`
    (``clean_prediction``/``prediction`` as class indices; ``perturbation`` is the ℓ∞ size ``eps`` of
    the optimal perturbation).
    """
    if eps < 0:
        raise ValueError(f"eps must be non-negative, got {eps}")
    labels = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y).astype(np.int64)
    m = margins(w, b, x, labels)
    clean_ok = m > 0
    ok = m - float(eps) * float(np.sum(np.abs(w))) > 0
    clean_pred = np.where(clean_ok, labels, 1 - labels).tolist()
    pred = np.where(ok, labels, 1 - labels).tolist()
    return [
        {"index": i, "label": lab, "clean_prediction": cp, "clean_correct": int(cc), "prediction": pr,
         "correct": int(c), "perturbation": float(eps), "margin": mm}
        for i, (lab, cp, cc, pr, c, mm) in enumerate(
            zip(labels.tolist(), clean_pred, clean_ok.tolist(), pred, ok.tolist(), m.tolist(), strict=True))
    ]


def closed_form_rows(classifiers: Mapping[str, tuple[np.ndarray, float]], p: float, eta: float, d: int,
                     eps_values: Sequence[float]) -> list[dict[str, Any]]:
    """Population accuracy of every classifier at every budget of ``eps_values`` (closed forms).

    One row per (classifier, eps): ``accuracy`` is :func:`tradeoff.theory.closed_forms.linear_accuracy` at the
    classifier's weights; ``bound`` is Theorem 2.1's ``p / (1 - p) * (1 - standard accuracy)`` where it
    applies (``eps >= 2 eta``) and NaN below. Raises ``AssertionError`` if a robust accuracy exceeds its
    bound (impossible for any classifier, so it would reveal a bug in the closed forms).
    """
    rows: list[dict[str, Any]] = []
    for name, (w, b) in classifiers.items():
        std = linear_accuracy(w, b, p, eta, d, 0.0)
        bound = tradeoff_bound(p, std)
        for e in eps_values:
            acc = linear_accuracy(w, b, p, eta, d, float(e))
            applies = float(e) >= 2.0 * eta
            if applies and acc > bound + 1e-9:
                raise AssertionError(f"{name}: robust accuracy {acc} > bound {bound} at eps={e}")
            rows.append({"classifier": name, "eps": float(e), "accuracy": acc,
                         "bound": bound if applies else math.nan})
    return rows


def eps_grid(eps_max: float, points: int, extra: Sequence[float] = ()) -> list[float]:
    """``points`` evenly spaced budgets in ``[0, eps_max]`` plus ``extra`` ones, sorted, no duplicates."""
    grid = {round(float(v), 12) for v in np.linspace(0.0, float(eps_max), int(points))}
    grid.update(round(float(v), 12) for v in extra)
    return sorted(grid)


def empirical_bound_holds(p: float, eta: float, eps: float, clean: float, robust: float, n: int,
                          z: float = 3.0) -> bool:
    """Whether test-set accuracies are consistent with Theorem 2.1 up to sampling error.

    The theorem bounds population values: ``robust <= p / (1 - p) * (1 - clean)`` at ``eps >= 2 eta``.
    On ``n`` test points both sides carry binomial noise, so the check allows ``z`` standard errors of
    the robust accuracy plus ``p / (1 - p)`` times ``z`` standard errors of the clean accuracy.
    """
    se_rob = math.sqrt(max(robust * (1 - robust), 0.0) / n) + 1.0 / n
    se_clean = math.sqrt(max(clean * (1 - clean), 0.0) / n) + 1.0 / n
    tol = z * (se_rob + p / (1 - p) * se_clean)
    return check_bound(p, eta, clean, robust, eps, tol=tol)


PGD_TOLERANCE = 0.005
"""The PGD core must reach the closed-form worst case within 0.5 points (else a warning is logged)."""


def run_theory(data: str | Path, models: Mapping[str, str | Path], *, threat: Mapping[str, Any],
               pgd: Mapping[str, Any], curve: Mapping[str, Any], seed: int, eval_dir: str | Path,
               theory_dir: str | Path, batch_size: int = 5000,
               device: torch.device | str = "cpu") -> dict[str, dict[str, float]]:
    """The ``theory`` stage: the reference classifiers (:func:`reference_classifiers`) and the trained
    linear models ``models`` (name -> classifier JSON) on the ``tsipras`` test split of the dataset artifact
    ``data``, at the ℓ∞ budget ``threat`` (``{norm, eps}``).

    Writes, per classifier, ``<eval_dir>/<name>/exact.csv`` (clean and exact worst case from one per-sample
    record, :func:`exact_records`) and ``<eval_dir>/<name>/pgd.csv`` (the PGD core with parameters ``pgd``, as a
    check that it reaches the exact worst case), and ``<theory_dir>/closed_forms.csv`` (population accuracies
    on the ε grid ``curve`` = ``{eps_max, points}``, with the Theorem 2.1 summary rows) and
    ``<theory_dir>/weights.csv``. Returns, per classifier name, its clean / exact / pgd accuracies on the test
    points and its closed-form standard and robust accuracies and bound (``theory_std``, ``theory_rob``,
    ``bound``). :class:`~tradeoff.errors.TradeoffError` if the data are not ``tsipras``, the norm is not Linf or
    a model name collides with a reference classifier.
    """
    from .. import data as data_mod
    from ..attacks.evaluate import run_attack
    from ..classifiers import load_classifier, load_spec
    from ..errors import TradeoffError
    from ..io import provenance, write_records
    from ..records import RECORD_COLUMNS, accuracy_rows, summary_row
    from ..threat import Threat

    splits = data_mod.load(data)
    if splits.name != "tsipras":
        raise TradeoffError(f"{data}: theory needs the tsipras dataset, got '{splits.name}'")
    prm = splits.meta["params"]
    p, eta, d = float(prm["p"]), float(prm["eta"]), int(prm["d"])
    thr = Threat(str(threat["norm"]), float(threat["eps"]), splits.bounds)
    if thr.norm != "Linf":
        raise TradeoffError(f"--threat norm {thr.norm}: the closed forms are for an l_inf adversary: use norm Linf")
    x, y = splits.x("test"), splits.y("test")
    n = int(y.shape[0])
    section = {"data": prm, "threat": threat, "pgd": pgd, "curve": curve}
    prov = provenance(section, seed)
    ds = splits.name

    classifiers: dict[str, tuple[np.ndarray, float]] = dict(reference_classifiers(p, eta, d))
    torch_models = {name: linear_model(w, b) for name, (w, b) in classifiers.items()}
    sources: dict[str, Any] = {name: "closed form" for name in classifiers}
    for name, path in models.items():
        if name in classifiers:
            raise TradeoffError(f"--model {name}={path}: model name '{name}' collides with a reference classifier")
        model = load_classifier(path, device)
        classifiers[name] = linear_params(model)
        torch_models[name] = model
        sources[name] = {"path": path, "sha256": load_spec(path).get("sha256")}

    table: dict[str, dict[str, float]] = {}
    eval_dir = Path(eval_dir)
    for name, (w, b) in classifiers.items():
        cid = f"tsipras-{name}"
        model = torch_models[name].to(device)
        common = {"dataset": ds, "classifier": cid, "source": sources[name], "p": p, "eta": eta, "d": d}
        # One per-sample record holds the clean margin y (w.x + b), hence both the clean prediction and
        # the exact worst-case one: the clean row and the exact row are both computed from it.
        exact = exact_records(w, b, x, y, thr.eps)
        clean_rows = accuracy_rows(ds, cid, "clean", None, exact, column="clean_correct")
        exact_rows = accuracy_rows(ds, cid, "exact", thr, exact)
        l1 = float(np.sum(np.abs(w)))
        write_records(eval_dir / name / "exact.csv", exact,
                      {**common, "attack": "exact", "norm": thr.norm, "eps": thr.eps, "weight_l1": l1,
                       "bias": b, "summary_rows": clean_rows + exact_rows, **prov}, columns=EXACT_COLUMNS)

        pgd_records, pgd_meta = run_attack(model, x, y, "pgd", thr, pgd, seed, device, batch_size)
        pgd_rows = accuracy_rows(ds, cid, "pgd", thr, pgd_records)
        gap = pgd_rows[0]["value"] - exact_rows[0]["value"]
        if abs(gap) > PGD_TOLERANCE:
            log.warning("%s: PGD accuracy %.4f is %.4f away from the exact worst case %.4f",
                        cid, pgd_rows[0]["value"], gap, exact_rows[0]["value"])
        write_records(eval_dir / name / "pgd.csv", pgd_records,
                      {**pgd_meta, **common, "exact_accuracy": exact_rows[0]["value"], "gap_to_exact": gap,
                       "summary_rows": pgd_rows, **prov}, columns=RECORD_COLUMNS)
        table[name] = {"clean": clean_rows[0]["value"], "exact": exact_rows[0]["value"],
                       "pgd": pgd_rows[0]["value"]}

    grid = eps_grid(float(curve["eps_max"]), int(curve["points"]), extra=[0.0, thr.eps])
    curves = closed_form_rows(classifiers, p, eta, d, grid)
    theory_rows: list[dict[str, Any]] = []
    for name, (w, b) in classifiers.items():
        cid = f"tsipras-{name}"
        std = linear_accuracy(w, b, p, eta, d, 0.0)
        rob = linear_accuracy(w, b, p, eta, d, thr.eps)
        bound = tradeoff_bound(p, std)
        # n = 0 marks a population value (closed form), not an average over test points.
        theory_rows += [summary_row(ds, cid, "theory", None, "accuracy", std, 0),
                        summary_row(ds, cid, "theory", thr, "accuracy", rob, 0),
                        summary_row(ds, cid, "theory", thr, "robust_bound", bound, 0)]
        table[name].update(theory_std=std, theory_rob=rob, bound=bound)
        emp = table[name]
        if not empirical_bound_holds(p, eta, thr.eps, emp["clean"], emp["exact"], n):
            log.warning("%s: empirical robust accuracy %.4f above the bound %.4f beyond sampling error",
                        cid, emp["exact"], tradeoff_bound(p, emp["clean"]))
    theory_dir = Path(theory_dir)
    write_records(theory_dir / "closed_forms.csv", curves,
                  {"dataset": ds, "p": p, "eta": eta, "d": d, "eps": thr.eps, "norm": thr.norm,
                   "summary_rows": theory_rows, **prov}, columns=["classifier", "eps", "accuracy", "bound"])
    weights = [{"classifier": name, "coordinate": i, "weight": float(v)}
               for name, (w, _) in classifiers.items() for i, v in enumerate(w)]
    write_records(theory_dir / "weights.csv", weights,
                  {"dataset": ds, "p": p, "eta": eta, "d": d, "eps": thr.eps,
                   "bias": {name: b for name, (_, b) in classifiers.items()}, **prov},
                  columns=["classifier", "coordinate", "weight"])

    log.info("tsipras p=%g eta=%g d=%d, eps=%g, %d test points", p, eta, d, thr.eps, n)
    log.info("%-12s %8s %8s | %8s %8s %8s | %8s", "classifier", "theory", "clean", "theory", "exact", "pgd",
             "bound")
    for name, r in table.items():
        log.info("%-12s %8.4f %8.4f | %8.4f %8.4f %8.4f | %8.4f", name, r["theory_std"], r["clean"],
                 r["theory_rob"], r["exact"], r["pgd"], r["bound"])
    return table
