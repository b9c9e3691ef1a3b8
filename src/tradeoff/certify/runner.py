"""The certification stage over a test set: point selection, resumable sharded sampling, merged records.

One Monte-Carlo pass per test point (n0 selection + n estimation draws of the base classifier under
N(0, sigma^2 I), :meth:`Smooth.certify_counts`) yields the class counts from which BOTH Cohen et al.'s
certificate and the mixed classifier's certificates (Theorems 1 and 2, for every mixing weight) are
computed; the counts are kept in the per-sample shard records, so the mixed certificates cost no extra
forward pass.

Per-point randomness comes from :func:`point_generator` ``(seed, index, STREAM)``, so a point's counts do
not depend on the shard it falls in, on the batch size or on whether its shard was killed and resumed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import TradeoffError
from ..io import ResumableCSV
from ..progress import Progress
from ..shards import shard_items
from .bounds import certified_accuracy
from .cohen import ABSTAIN, Smooth, certify_from_counts
from .mixed import certify_mixed
from .sampling import point_generator

log = logging.getLogger("tradeoff")

STREAM = 1
"""Generator stream of the certification draws (other uses of the same point use other streams)."""

SHARD_COLUMNS = ["index", "label", "prediction", "radius", "p_lower", "samples", "seconds", "selected",
                 "counts"]
RS_COLUMNS = ["index", "label", "prediction", "correct", "radius", "p_lower", "samples", "seconds"]
MIXED_COLUMNS = ["index", "label", "alpha", "prediction", "correct", "radius_rs", "radius_lipschitz",
                 "radius_lipschitz_sharp",
                 "p_y_lower", "p_other_upper", "mixed_clean_prediction", "standard_prediction",
                 "samples", "seconds"]


def select_points(n_test: int, points: int | None, seed: int) -> np.ndarray:
    """Sorted test-split indices to certify: all of them if ``points`` is None or ≥ ``n_test``, else a
    subset of size ``points`` drawn without replacement from a generator seeded by ``seed`` alone."""
    if points is None or points >= n_test:
        return np.arange(n_test)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20190208]))
    return np.sort(rng.choice(n_test, size=int(points), replace=False))


def encode_class_counts(values: Sequence[int]) -> str:
    """Class counts as a shard record's ``counts`` column: space-separated integers, one per class."""
    return " ".join(str(int(v)) for v in values)


def decode_class_counts(text: str) -> np.ndarray:
    """Inverse of :func:`encode_class_counts`: the class counts (int64, one per class) of a shard row."""
    return np.array([int(v) for v in str(text).split()], dtype=np.int64)


def certify_shard(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    indices: Sequence[int] | np.ndarray,
    *,
    num_classes: int,
    sigma: float,
    n0: int,
    n: int,
    alpha: float,
    seed: int,
    batch_size: int,
    out: ResumableCSV,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """CERTIFY (Cohen et al.) every test point ``indices`` of ``(x, y)`` not yet recorded in ``out``.

    Appends one row per point (index, label, prediction, radius, p_lower, samples, seconds, selected
    class of the n0 draws, counts of the n draws) and fsyncs it, so a killed run resumes at the first
    unrecorded point.  Per point the guarantee is CERTIFY's: with probability ≥ 1 − alpha, a
    prediction other than ABSTAIN (−1) is the smoothed classifier's and holds on the l2 ball of the
    recorded radius.  Returns the number of points certified by this call.
    """
    done = {int(k) for k in out.done_keys("index")}
    todo = [int(i) for i in indices if int(i) not in done]
    logged = Progress(len(todo) * (n0 + n), f"certify sigma={sigma:g} ({len(todo)} points)", unit="samples")
    smooth = Smooth(model, num_classes, sigma, batch_size, on_batch=logged.update)
    for k, index in enumerate(todo):
        start = time.perf_counter()
        generator = point_generator(seed, index, STREAM)
        counts0, counts = smooth.certify_counts(x[index].to(device), n0, n, generator)
        res = certify_from_counts(counts0, counts, sigma, alpha)
        out.append({
            "index": index, "label": int(y[index]), "prediction": res.prediction, "radius": res.radius,
            "p_lower": res.p_lower, "samples": int(n0 + n), "seconds": time.perf_counter() - start,
            "selected": int(np.argmax(counts0)), "counts": encode_class_counts(counts),
        })
        logged.set_postfix(f"({k + 1}/{len(todo)} points done)")
        if progress is not None:
            progress(k + 1, len(todo))
    logged.close()
    return len(todo)


def rs_records(shard_rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Cohen's per-sample records (sorted by index) from the shard rows."""
    rows = []
    for r in sorted(shard_rows, key=lambda r: int(r["index"])):
        pred, label = int(r["prediction"]), int(r["label"])
        rows.append({"index": int(r["index"]), "label": label, "prediction": pred,
                     "correct": int(pred == label), "radius": float(r["radius"]),
                     "p_lower": float(r["p_lower"]), "samples": int(r["samples"]),
                     "seconds": float(r["seconds"])})
    return rows


def mixed_records(
    shard_rows: Sequence[Mapping[str, Any]],
    standard_probs: Mapping[int, np.ndarray],
    mix_alphas: Sequence[float],
    sigma: float,
    alpha: float,
) -> list[dict[str, Any]]:
    """Certificates of the mixed classifier (1 − a)·softmax(g) + a·p for each a in ``mix_alphas``.

    Uses the SAME counts as Cohen's certificate: y = the class selected by the n0 draws, a lower bound
    on p_y and an upper bound on max_{i≠y} p_i from the n draws (:func:`confidence_bounds`, error α split
    between them), then Theorem 2's radius (``radius_rs``) and Theorem 1's with the smoothed model's
    Lipschitz constant (``radius_lipschitz``: Bai et al.'s constant; ``radius_lipschitz_sharp``: the sharp
    constant sqrt(2/pi)/sigma, twice the radius, see :mod:`.mixed`).  Guarantee per point: with probability
    ≥ 1 − alpha, for every mixing weight at once (the bounds do not depend on the weight, so one event covers
    them all), a prediction other than ABSTAIN is the exact mixed classifier's prediction on the whole l2 ball
    of any of the three radii, for ANY standard model g.  A point is also counted as abstained when the
    implemented mixed classifier — softmax of g's logits ``standard_probs[index]`` mixed with the
    Monte-Carlo frequencies counts/n — predicts another class at x (``mixed_clean_prediction``), so
    every certified point is one the deployed classifier gets right.
    """
    rows = []
    for r in sorted(shard_rows, key=lambda r: int(r["index"])):
        index, label = int(r["index"]), int(r["label"])
        counts = decode_class_counts(r["counts"])
        counts0 = np.zeros_like(counts)
        counts0[int(r["selected"])] = 1
        g = np.asarray(standard_probs[index], dtype=np.float64)
        freq = counts / counts.sum()
        for a in mix_alphas:
            mixed_pred = int(np.argmax((1.0 - a) * g + a * freq))
            cert = certify_mixed(counts0, counts, float(a), sigma, alpha, mixed_pred=mixed_pred)
            rows.append({
                "index": index, "label": label, "alpha": float(a), "prediction": cert.prediction,
                "correct": int(cert.prediction == label), "radius_rs": cert.radius_rs,
                "radius_lipschitz": cert.radius_lipschitz,
                "radius_lipschitz_sharp": cert.radius_lipschitz_sharp,
                "p_y_lower": cert.p_y_lower,
                "p_other_upper": cert.p_other_upper, "mixed_clean_prediction": mixed_pred,
                "standard_prediction": int(np.argmax(g)), "samples": int(r["samples"]),
                "seconds": float(r["seconds"]),
            })
    return rows


SHARD_SETTINGS = ("classifier_sha256", "data_sha256", "sigma", "n0", "n", "alpha", "seed", "stream")
"""Sidecar keys that every shard of one certification run must share."""


def load_shard_rows(paths: Sequence[str | Path]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of finished shard records (checked against their sidecars), concatenated, and the settings
    the shards share (:data:`SHARD_SETTINGS`); :class:`~tradeoff.errors.TradeoffError` if two shards were made
    differently."""
    from ..io import read_records

    rows: list[dict[str, Any]] = []
    settings: dict[str, Any] | None = None
    for path in paths:
        frame, meta = read_records(path)
        mine = {k: meta.get(k) for k in SHARD_SETTINGS}
        if settings is not None and mine != settings:
            diff = sorted(k for k in SHARD_SETTINGS if mine[k] != settings[k])
            raise TradeoffError(f"{path}: made with other settings than {paths[0]} ({', '.join(diff)})")
        settings = mine
        rows.extend(frame.astype({"counts": str}).to_dict("records"))
    return rows, settings or {}


def _l2(radius: float) -> Any:
    from ..attacks.pgd import Threat

    return Threat("L2", float(radius), None)


def mixed_id(alpha_mix: float, smoothed: str) -> str:
    """Summary id of the mixed classifier of the standard model and the smoothed model ``smoothed``:
    ``mix-prob-<a>-<smoothed>`` (a printed as in the config), e.g. ``mix-prob-0.8-gauss_aug-0.25``."""
    return f"mix-prob-{alpha_mix:g}-{smoothed}"


def rs_summary_rows(dataset: str, classifier: str, records: Sequence[Mapping[str, Any]],
                    radii: Sequence[float]) -> list[dict[str, Any]]:
    """``certify-rs`` rows: certified_accuracy at each radius (norm L2, eps = radius), abstain_rate and
    mean_samples (eps 0)."""
    from ..records import summary_row

    pred = np.array([r["prediction"] for r in records])
    label = np.array([r["label"] for r in records])
    radius = np.array([r["radius"] for r in records], dtype=np.float64)
    n = len(records)
    rows = [summary_row(dataset, classifier, "certify-rs", _l2(r), "certified_accuracy",
                        certified_accuracy(pred, label, radius, r), n) for r in radii]
    rows.append(summary_row(dataset, classifier, "certify-rs", _l2(0.0), "abstain_rate",
                            float(np.mean(pred == ABSTAIN)) if n else float("nan"), n))
    rows.append(summary_row(dataset, classifier, "certify-rs", _l2(0.0), "mean_samples",
                            float(np.mean([r["samples"] for r in records])) if n else float("nan"), n))
    return rows


def mixed_summary_rows(dataset: str, smoothed: str, records: Sequence[Mapping[str, Any]],
                       radii: Sequence[float]) -> list[dict[str, Any]]:
    """Per mixing weight a: ``certify-mixed-rs``, ``certify-mixed-lipschitz`` (Bai et al.'s Lipschitz constant) and
    ``certify-mixed-lipschitz-sharp`` (the sharp constant, see :mod:`.mixed`) certified_accuracy at each
    radius (norm L2), plus ``certify-mixed-rs`` clean_accuracy (the implemented mixed classifier's clean
    prediction, a point estimate) and abstain_rate at eps 0; classifier id :func:`mixed_id`."""
    from ..records import summary_row

    rows: list[dict[str, Any]] = []
    for a in sorted({float(r["alpha"]) for r in records}):
        sel = [r for r in records if float(r["alpha"]) == a]
        name, n = mixed_id(a, smoothed), len(sel)
        pred = np.array([r["prediction"] for r in sel])
        label = np.array([r["label"] for r in sel])
        for evaluation, column in (("certify-mixed-rs", "radius_rs"),
                                   ("certify-mixed-lipschitz", "radius_lipschitz"),
                                   ("certify-mixed-lipschitz-sharp", "radius_lipschitz_sharp")):
            if column not in sel[0]:  # records written before the sharp radius existed
                continue
            radius = np.array([r[column] for r in sel], dtype=np.float64)
            rows.extend(summary_row(dataset, name, evaluation, _l2(r), "certified_accuracy",
                                    certified_accuracy(pred, label, radius, r), n) for r in radii)
        clean = float(np.mean([r["mixed_clean_prediction"] == r["label"] for r in sel]))
        rows.append(summary_row(dataset, name, "certify-mixed-rs", _l2(0.0), "clean_accuracy", clean, n))
        rows.append(summary_row(dataset, name, "certify-mixed-rs", _l2(0.0), "abstain_rate",
                                float(np.mean(pred == ABSTAIN)), n))
    return rows


def _progress(total: int, enabled: bool) -> Callable[[int, int], None]:
    """A callback (done, todo) that logs every ~10% and drives a tqdm bar when enabled."""
    bar = None
    if enabled:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="pt")
    step = max(1, total // 10)

    def update(done: int, todo: int) -> None:
        if bar is not None:
            bar.update(1)
        if done % step == 0 or done == todo:
            log.info("certified %d / %d points", done, todo)

    return update


def run_shard(data: str | Path, classifier: str | Path, *, sigma: float, params: Mapping[str, Any], shard: int,
              shards: int, seed: int, out: str | Path, device: torch.device | str = "cpu",
              stop_after: int | None = None, progress: bool = False) -> dict[str, Any] | None:
    """The ``certify`` stage: CERTIFY (:func:`certify_shard`) on shard ``shard`` of ``shards`` of the
    selected test points of the dataset artifact ``data``, for the base classifier JSON ``classifier`` smoothed
    at ``sigma``; ``params`` is the config's certify section (n0, n, alpha, points, batch_size).

    Rows go to the resumable ``out`` (:data:`SHARD_COLUMNS`), keyed by a fingerprint of the classifier, data,
    sigma, n0, n, alpha, seed and the shard's points (not the batch size: the rows do not depend on it), so a
    killed job resumes from its finished points and a job with other settings starts afresh. ``stop_after``
    certifies at most that many new points and keeps the progress file (to test resumption). Returns the
    metadata written next to ``out`` once every point of the shard is done, None when stopped early.
    """
    from .. import data as data_mod
    from ..classifiers import load_classifier, load_spec
    from ..fingerprint import fingerprint
    from ..io import provenance

    splits = data_mod.load(data)
    x, y = splits.x("test"), splits.y("test")
    indices = shard_items(select_points(splits.size("test"), params.get("points"), seed), shard, shards)
    spec = load_spec(classifier)
    model = load_classifier(classifier, device, probe=x[torch.as_tensor(indices[:100])])
    run = {"classifier_sha256": spec.get("sha256"), "data_sha256": splits.meta["sha256"], "sigma": sigma,
           "n0": int(params["n0"]), "n": int(params["n"]), "alpha": float(params["alpha"]), "seed": seed,
           "stream": STREAM, "indices": [int(i) for i in indices]}
    # A progress file made with other settings (or another model) is never resumed: its key differs.
    # The batch size is not part of the key: results do not depend on it.
    records = ResumableCSV(out, SHARD_COLUMNS, key=fingerprint(run))
    done = {int(k) for k in records.done_keys("index")}
    todo = [int(i) for i in indices if int(i) not in done]
    if done:
        log.info("resuming: %d of %d points already certified", len(indices) - len(todo), len(indices))
    if stop_after is not None:
        todo = todo[:stop_after]
    log.info("shard %d/%d: %d points, sigma=%g, n0=%d, n=%d, alpha=%g", shard, shards,
             len(indices), sigma, run["n0"], run["n"], run["alpha"])
    certify_shard(model, x, y, todo, num_classes=splits.num_classes, sigma=sigma, n0=run["n0"],
                  n=run["n"], alpha=run["alpha"], seed=seed, batch_size=int(params["batch_size"]),
                  out=records, device=device, progress=_progress(len(todo), progress))
    if len(records.rows) < len(indices):
        records.close()
        log.info("stopped after %d of %d points as asked; progress kept in %s", len(records.rows),
                 len(indices), records.partial)
        return None
    meta = {"dataset": splits.name, "shard": shard, "shards": shards, **run,
            **provenance({"sigma": sigma, **params}, seed)}
    records.finalize(meta, sort_key="index")
    seconds = sum(float(r["seconds"]) for r in records.rows)
    samples = sum(int(r["samples"]) for r in records.rows)
    log.info("shard done: %d points, %.1f s of sampling, %.0f noisy samples/s", len(records.rows), seconds,
             samples / seconds if seconds else float("nan"))
    return meta


@torch.no_grad()
def standard_probs(spec_path: str | Path, x: torch.Tensor, indices: np.ndarray, device: torch.device | str,
                   batch_size: int = 500) -> dict[int, np.ndarray]:
    """softmax (float64) of the logits of the classifier ``spec_path`` at the clean test points ``indices``."""
    from ..classifiers import load_classifier

    model = load_classifier(spec_path, device)
    out: dict[int, np.ndarray] = {}
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        probs = torch.softmax(model(x[torch.as_tensor(chunk)].to(device)).double(), dim=1).cpu().numpy()
        out.update({int(i): p for i, p in zip(chunk, probs, strict=True)})
    return out


def run_merge(data: str | Path, name: str, standard: str | Path, *, sigma: float, params: Mapping[str, Any],
              seed: int, shard_records: Sequence[str | Path], out_rs: str | Path, out_mixed: str | Path,
              device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """The ``merge certify`` stage: Cohen et al.'s records (``out_rs``, :data:`RS_COLUMNS`) and the mixed
    classifier's (``out_mixed``, :data:`MIXED_COLUMNS`; standard model g = the classifier JSON ``standard``)
    from the finished shards of the smoothed classifier ``name``; ``params`` is the config's certify section
    (n0, n, alpha, points, radii, mix_alphas). Returns the summary rows written into both sidecars.

    Guarantee: the shards cover exactly the selected test points and were sampled at this ``sigma``,
    ``alpha``, ``seed``, n0 and n (the certificates are only valid for the settings the noise was drawn
    with), else :class:`~tradeoff.errors.TradeoffError` naming the shard.
    """
    from .. import data as data_mod
    from ..classifiers import load_spec
    from ..io import provenance, write_records

    splits = data_mod.load(data)
    expected = select_points(splits.size("test"), params.get("points"), seed)
    rows, settings = load_shard_rows(shard_records)
    got = sorted(int(r["index"]) for r in rows)
    if got != [int(i) for i in expected]:
        raise TradeoffError(f"{shard_records[0]}: shards cover {len(got)} points, expected the {len(expected)} "
                            "selected test points")
    alpha, radii = float(params["alpha"]), [float(r) for r in params["radii"]]
    # the certificates below are only valid for the sigma the noise was drawn with
    ours = {"sigma": sigma, "alpha": alpha, "seed": seed, "n0": params.get("n0"), "n": params.get("n")}
    wrong = sorted(k for k, v in ours.items() if v is not None and settings.get(k) != v)
    if wrong:
        raise TradeoffError(f"{shard_records[0]}: shards were made with other {', '.join(wrong)} "
                            f"({', '.join(f'{k}={settings.get(k)}' for k in wrong)})")
    rs = rs_records(rows)
    probs = standard_probs(standard, splits.x("test"), expected, device)
    mixed = mixed_records(rows, probs, [float(a) for a in params["mix_alphas"]], sigma, alpha)
    base_meta = {
        "dataset": splits.name, "classifier": name, "sigma": sigma, "alpha": alpha,
        "points": f"{len(expected)} of {splits.size('test')} test points"
                  + ("" if len(expected) == splits.size("test") else f" (seeded subset, seed {seed})"),
        "shard_records": [str(p) for p in shard_records], "standard_sha256": load_spec(standard).get("sha256"),
        "shard_settings": settings,
        **provenance({"sigma": sigma, **params}, seed),
    }
    rs_rows = rs_summary_rows(splits.name, name, rs, radii)
    write_records(out_rs, rs, {**base_meta, "method": "cohen", "summary_rows": rs_rows}, RS_COLUMNS)
    mixed_rows = mixed_summary_rows(splits.name, name, mixed, radii)
    write_records(out_mixed, mixed, {**base_meta, "method": "mixed", "summary_rows": mixed_rows}, MIXED_COLUMNS)
    for row in rs_rows + mixed_rows:
        if row["metric"] in ("certified_accuracy", "clean_accuracy"):
            log.info("%s %s %s r=%g: %.4f (n=%d)", row["classifier"], row["evaluation"], row["metric"],
                     row["eps"], row["value"], row["n"])
    return rs_rows + mixed_rows
