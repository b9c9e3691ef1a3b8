"""Per-sample (eps, kappa)-probabilistic certification of a test set, and its metrics (Zhang et al. 2023).

For each test input x the reference label c = G(x) (the clean prediction) is fixed BEFORE any sample is
drawn; samples t = clip(x + delta), delta ~ U(B_p(0, eps)), come from the input's own generator
``point_generator(seed, index, STREAM)``, so a record does not depend on sharding, batch size or order,
and the fixed and sequential tests of an input see the same stream (the sequential one a prefix of it).

One sampling pass per input serves both tests and a whole kappa sweep.  The raw record of an input keeps
the cumulative success counts at every look of every kappa's :class:`SequentialTest` design (and at n_max),
from which :mod:`tradeoff.probabilistic.decisions` (free of torch) decides every test at every kappa:

* ``fixed``: the count at n_max decides every kappa with :func:`fixed_test`;
* ``sequential``: :func:`replay_sequential` recovers each kappa's decision and samples used exactly as a
  separate run on the same stream would (a design only sees the counts at its own looks up to its own
  stopping look), each with its own per-input guarantee at level alpha.

When the fixed test is requested the pass draws n_max samples (the sequential test's samples are a prefix
of the same stream, so running it separately would only repeat work); when only the sequential test is,
the pass stops as soon as every kappa's design has decided (:func:`run_sequential_many`).  ``samples`` in
the decided records is what the test itself used; ``samples_drawn`` what the pass evaluated.

Metrics (Zhang et al. 2023; the paper's definitions could not be checked, these are the ones used here):

* certified robust accuracy: fraction of inputs certified ROBUST whose reference label is correct;
* certified robustness rate: fraction certified ROBUST, regardless of correctness;
* not-robust / undecided rates and mean / median samples used;
* defense success rate under PGD: among inputs classified correctly without attack, the fraction still
  classified correctly under the PGD attack of the evaluation stage (records of ``tradeoff attacks``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from ..attacks.pgd import Threat
from ..certify.sampling import ball_sampler, iter_predictions, point_generator
from ..errors import TradeoffError
from ..io import ResumableCSV, provenance, read_records, write_records
from ..progress import Progress
from ..records import summary_row
from ..shards import shard_items
from .decisions import TESTS, decide, decisions, decode_counts, encode_counts, metrics
from .sequential import run_sequential_many
from .settings import ProbSettings, check_settings

log = logging.getLogger("tradeoff")

__all__ = [
    "COLUMNS",
    "RAW_COLUMNS",
    "STREAM",
    "TESTS",
    "ProbSettings",
    "certify_points",
    "check_settings",
    "decide_records",
    "decisions",
    "decode_counts",
    "defense_success_rate",
    "encode_counts",
    "metrics",
    "run_prob_merge",
    "run_prob_shard",
    "settings_from",
    "summary_rows",
]

STREAM = 5
"""``point_generator`` stream of this certificate (other certificates of the same point use others)."""
RAW_COLUMNS = ["index", "label", "reference", "samples_drawn", "counts", "seconds"]
"""Columns of a sampling pass (one shard): ``reference`` = clean prediction, fixed before sampling;
``samples_drawn`` = samples evaluated; ``counts`` = cumulative successes at every look reached, as
``n:k;n:k;...``; ``seconds`` = time of the pass."""
COLUMNS = ["index", "label", "reference", "outcome", "successes", "samples", "samples_drawn", "counts", "seconds"]
"""Columns of a test's decided records: the raw columns plus ``outcome`` (robust / not_robust / undecided),
``successes`` and ``samples`` (used by the test) at the summary's kappa."""


def _sample_counts(model: torch.nn.Module, x: torch.Tensor, reference: int, tests: Sequence[str],
                   settings: ProbSettings, generator: torch.Generator,
                   on_batch: Callable[[int], None] | None = None) -> dict[int, int]:
    sampler = ball_sampler(settings.eps, settings.norm)

    def draw(m: int) -> int:
        s = 0
        for preds in iter_predictions(model, x, m, sampler, settings.batch_size, generator, clamp=settings.clamp,
                                      on_batch=on_batch):
            s += int((preds == reference).sum().item())
        return s

    designs = [settings.design(k) for k in settings.kappas]
    if "fixed" not in tests:
        return run_sequential_many(draw, designs)
    counts: dict[int, int] = {}
    k = n = 0
    for look in sorted({settings.n_max, *(m for d in designs for m in d.looks)}):
        k += draw(look - n)
        n = look
        counts[n] = k
    return counts


def certify_points(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    indices: Sequence[int],
    tests: Sequence[str],
    settings: ProbSettings,
    seed: int,
    writer: ResumableCSV,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> int:
    """One sampling pass over the test inputs ``x[i]``, i in ``indices``, not yet in ``writer`` (raw records,
    :data:`RAW_COLUMNS`); returns how many inputs were sampled.

    One row per input is appended (and fsynced) as soon as it is finished, so a killed run resumes where it
    stopped and gives the same rows as an uninterrupted one.  The rows allow deciding every test in
    ``tests`` at every kappa of ``settings`` (:func:`decide_records`); guarantee per input and per
    (test, kappa): with probability at least 1 - alpha over that input's samples, ``robust`` means
    P_t[G(t) = reference] >= 1 - kappa and ``not_robust`` means the opposite.
    """
    unknown = set(tests) - set(TESTS)
    if unknown or not tests:
        raise ValueError(f"tests must be a non-empty subset of {TESTS}, got {list(tests)}")
    done = {int(v) for v in writer.done_keys("index")}
    todo = [int(i) for i in indices if int(i) not in done]
    model.eval()
    # Log lines with an ETA (the rule's log); the sequential test stops early, so the unit is the test input,
    # and the sampling loop's chunks keep the lines coming during a long input.
    logged = Progress(len(todo), "probabilistic certification", unit="points")
    for i in tqdm(todo, desc="prob-certify", disable=not progress, mininterval=5.0):
        start = time.perf_counter()
        xi = x[i].to(device)
        with torch.no_grad():
            reference = int(model(xi.unsqueeze(0)).argmax(1).item())  # fixed before any sample is drawn
        counts = _sample_counts(model, xi, reference, tests, settings, point_generator(seed, i, STREAM),
                                on_batch=lambda _m: logged.tick())
        writer.append({"index": i, "label": int(y[i]), "reference": reference, "samples_drawn": max(counts),
                       "counts": encode_counts(counts), "seconds": round(time.perf_counter() - start, 6)})
        logged.update(1)
    logged.close()
    return len(todo)


def decide_records(raw: pd.DataFrame, test: str, settings: ProbSettings) -> pd.DataFrame:
    """The decided records (:data:`COLUMNS`) of ``test`` at the summary's kappa, from raw records."""
    out = [decide(decode_counts(c), test, settings.kappa, settings) for c in raw["counts"]]
    frame = raw.copy()
    frame["outcome"] = [o.value for o, _, _ in out]
    frame["successes"] = [k for _, _, k in out]
    frame["samples"] = [n for _, n, _ in out]
    return frame[COLUMNS]


def defense_success_rate(pgd: pd.DataFrame) -> tuple[float, int]:
    """(rate, n): among the rows of PGD records whose clean prediction is correct, the fraction whose
    prediction under attack is still correct; n = number of such rows."""
    clean_ok = pgd["clean_prediction"].to_numpy() == pgd["label"].to_numpy()
    n = int(clean_ok.sum())
    if n == 0:
        return float("nan"), 0
    return float(pgd["correct"].to_numpy()[clean_ok].mean()), n


def summary_rows(dataset: str, classifier: str, test: str, frame: pd.DataFrame, settings: ProbSettings,
                 pgd: pd.DataFrame | None = None, pgd_threat: Threat | None = None) -> list[dict[str, Any]]:
    """summary.csv rows of evaluation ``certify-prob-<test>`` at the summary's kappa: the :func:`metrics`,
    the ``kappa`` and ``alpha`` they were computed at, and the PGD defense success rate (with the attack's
    own threat) when PGD records are given."""
    evaluation = f"certify-prob-{test}"
    n = len(frame)
    values = {**metrics(frame, test, settings.kappa, settings), "kappa": settings.kappa, "alpha": settings.alpha}
    rows = [summary_row(dataset, classifier, evaluation, settings.threat, name, value, n)
            for name, value in values.items()]
    if pgd is not None:
        value, n_ok = defense_success_rate(pgd)
        rows.append(summary_row(dataset, classifier, evaluation, pgd_threat, "defense_success_rate", value, n_ok))
    return rows


def settings_from(section: Mapping[str, Any], where: str = "--settings") -> ProbSettings:
    """The :class:`ProbSettings` of a config's ``probabilistic`` section (with the threat's eps and norm),
    checked by :func:`check_settings`; :class:`~tradeoff.errors.TradeoffError` naming ``where`` and the key
    when a key is missing or a value is unusable."""
    try:
        settings = ProbSettings.from_mapping(section)
    except KeyError as exc:
        raise TradeoffError(f"{where}: missing key {exc.args[0]!r} of the probabilistic section") from None
    except (TypeError, ValueError) as exc:
        raise TradeoffError(f"{where}: {exc}") from None
    try:
        check_settings(settings)
    except ValueError as exc:
        raise TradeoffError(f"{where}: {exc}") from None
    return settings


def run_prob_shard(data: str | Path, classifier: str | Path, name: str, *, tests: Sequence[str],
                   section: Mapping[str, Any], seed: int, shard: int, shards: int, n_points: int,
                   out: str | Path, device: torch.device | str = "cpu", stop_after: int | None = None,
                   progress: bool = False) -> dict[str, Any] | None:
    """The ``probabilistic`` stage: one sampling pass (:func:`certify_points`) of the classifier JSON
    ``classifier`` (id ``name``) over shard ``shard`` of ``shards`` of the first ``n_points`` test points of the
    dataset artifact ``data`` (0 = all), allowing every test of ``tests`` to be decided; ``section`` is the
    config's probabilistic section (:func:`settings_from`).

    Raw rows go to the resumable ``out`` (:data:`RAW_COLUMNS`), keyed by a fingerprint of the tests, settings,
    seed, points, shard, classifier and data, so a changed setting starts afresh. ``stop_after`` samples at most
    that many new points and keeps the progress file (to test resumption). Returns the metadata written next
    to ``out`` once every point of the shard is done, None when stopped early.
    """
    from .. import data as data_mod
    from ..classifiers import load_classifier, load_spec
    from ..fingerprint import fingerprint

    settings = settings_from(section)
    tests = sorted(set(tests))
    splits = data_mod.load(data)
    x, y = splits.x("test"), splits.y("test")
    n_points = x.shape[0] if n_points <= 0 else min(n_points, x.shape[0])
    indices = shard_items(range(n_points), shard, shards)
    spec = load_spec(classifier)
    model = load_classifier(classifier, device, probe=x[torch.as_tensor(indices[:100])])
    run = {"tests": tests, "settings": asdict(settings), "seed": seed, "n_points": n_points,
           "shard": shard, "shards": shards, "classifier_sha256": spec.get("sha256"),
           "data_sha256": splits.meta.get("sha256")}
    # A progress file is only resumed by the same run: a changed setting starts afresh.
    run_id = fingerprint(run)
    writer = ResumableCSV(out, RAW_COLUMNS, key=run_id)
    if writer.rows:
        log.info("resuming %s: %d of %d points already sampled", writer.partial, len(writer.rows), len(indices))
    log.info("probabilistic %s on %s: %d points, %s", "+".join(tests), name, len(indices), settings)
    todo = indices
    if stop_after is not None:
        done = {int(v) for v in writer.done_keys("index")}
        todo = [i for i in indices if i not in done][:stop_after]
    sampled = certify_points(model, x, y, todo, tests, settings, seed, writer, device, progress=progress)
    if len(writer.rows) < len(indices):
        writer.close()
        log.info("stopped after %d of %d points as asked; progress kept in %s", len(writer.rows), len(indices),
                 writer.partial)
        return None
    meta = {"dataset": splits.name, "classifier": name, "run_id": run_id, **run,
            **provenance({"probabilistic": dict(section), "tests": tests}, seed)}
    writer.finalize(meta, sort_key="index")
    log.info("sampled %d points (%d resumed) -> %s", len(indices), len(indices) - sampled, out)
    return meta


SHARD_KEYS = ("settings", "tests", "seed", "n_points", "shards", "classifier_sha256", "dataset", "classifier")
"""Sidecar keys every sampling shard of one classifier must share."""


def run_prob_merge(shards: Sequence[str | Path], pgd_path: str | Path | None,
                   outputs: Mapping[str, str | Path]) -> dict[str, list[dict[str, Any]]]:
    """The ``merge probabilistic`` stage for one classifier: join its sampling shards and write, for each test
    in ``outputs`` (test -> CSV), the decided records (:data:`COLUMNS`) with their summary rows; PGD records
    ``pgd_path`` (of the same classifier) add the defense success rate. Returns the summary rows per test.

    Guarantee: the shards come from one run (same :data:`SHARD_KEYS`), cover the test points 0..n_points-1
    exactly once, were sampled for every requested test, and the PGD records are of the same classifier
    version, else :class:`~tradeoff.errors.TradeoffError` naming the file.
    """
    shards = [str(p) for p in shards]
    frames, metas = [], []
    for path in shards:
        frame, meta = read_records(path)
        frames.append(frame)
        metas.append(meta)
    first = metas[0]
    for path, meta in zip(shards, metas, strict=True):
        for key in SHARD_KEYS:
            if meta.get(key) != first.get(key):
                raise TradeoffError(f"{path}: {key} differs from {shards[0]} (shards of different runs)")
    raw = pd.concat(frames, ignore_index=True).sort_values("index", kind="stable").reset_index(drop=True)
    expected = list(range(int(first["n_points"])))
    if raw["index"].tolist() != expected:
        raise TradeoffError(f"shards {shards} do not cover test points 0..{len(expected) - 1} exactly once")
    settings = ProbSettings.from_mapping(first["settings"])
    pgd = pgd_threat = None
    if pgd_path:
        pgd, pgd_meta = read_records(pgd_path)
        if pgd_meta.get("classifier_sha256") != first["classifier_sha256"]:
            raise TradeoffError(f"{pgd_path}: PGD records of another version of {first['classifier']}")
        pgd = pgd[pgd["index"] < len(expected)]
        pgd_threat = Threat(str(pgd_meta["norm"]), float(pgd_meta["eps"]))
    summaries: dict[str, list[dict[str, Any]]] = {}
    for test, out in outputs.items():
        if test not in first["tests"]:
            raise TradeoffError(f"{shards[0]}: sampled for tests {first['tests']}, cannot decide {test!r}")
        frame = decide_records(raw, test, settings)
        rows = summary_rows(first["dataset"], first["classifier"], test, frame, settings, pgd, pgd_threat)
        meta = {key: first[key] for key in ("dataset", "classifier", "settings", "seed", "n_points",
                                            "classifier_sha256")}
        write_records(out, frame.to_dict("records"), {
            **meta, "test": test, "shards": list(shards), "pgd_records": pgd_path, "summary_rows": rows,
            **provenance({"probabilistic": first["config"].get("probabilistic"), "test": test}, first["seed"]),
        }, columns=COLUMNS)
        for row in rows:
            log.info("%s %s %s = %.4g (n=%d)", row["classifier"], row["evaluation"], row["metric"], row["value"],
                     row["n"])
        summaries[test] = rows
    return summaries
