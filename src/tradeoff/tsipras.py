"""Tsipras et al. (ICLR 2019) on their own distribution: trained linear models next to the closed forms.

The closed forms live in :mod:`tradeoff.theory` (numpy, population values). This module connects them to
the pipeline's artifacts:

* :func:`linear_params` reads ``(w, b)`` of a trained :class:`~tradeoff.models.LinearBinary` in the
  convention of :mod:`tradeoff.theory` (``sign(w . x + b)`` predicts ``y`` in ``{-1, +1}``; class index
  1 is ``y = +1``), and :func:`linear_model` builds the torch model of given ``(w, b)`` so that the
  reference classifiers of the paper (averaging, Bayes, ``sign(x_1)``) go through the same PGD core as
  the trained ones;
* :func:`exact_records` evaluates a linear classifier on test points under the *exact* worst-case
  l_inf perturbation (closed form per sample, no search);
* :func:`closed_form_rows` tabulates the population accuracy of each classifier on a grid of budgets,
  with the Theorem 2.1 bound where it applies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .models import LinearBinary
from .theory import averaging_weights, bayes_weights, check_bound, linear_accuracy, tradeoff_bound

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
    ``y (w . x + b) - eps ||w||_1 > 0`` (a zero margin is an error, as in :mod:`tradeoff.theory`).
    No attack can do better, so the mean of ``correct`` is the exact robust accuracy on these points
    (it equals :func:`tradeoff.theory.empirical_linear_accuracy`). Columns: :data:`EXACT_COLUMNS`
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


def exact_accuracy_curve(margin: np.ndarray, l1: float, eps_values: Sequence[float]) -> np.ndarray:
    """Exact worst-case accuracy on the points with clean margins ``margin`` for each budget in
    ``eps_values`` (``mean(margin - eps l1 > 0)``), from per-sample records alone."""
    m = np.asarray(margin, dtype=np.float64)
    return np.array([float(np.mean(m - float(e) * float(l1) > 0)) for e in eps_values])


def closed_form_rows(classifiers: Mapping[str, tuple[np.ndarray, float]], p: float, eta: float, d: int,
                     eps_values: Sequence[float]) -> list[dict[str, Any]]:
    """Population accuracy of every classifier at every budget of ``eps_values`` (closed forms).

    One row per (classifier, eps): ``accuracy`` is :func:`tradeoff.theory.linear_accuracy` at the
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
