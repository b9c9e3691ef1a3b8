"""Per-sample evaluation of a classifier: clean, PGD, margin-loss PGD with restarts, AutoAttack, ε-sweep.

Each evaluation returns one record per test point (index into the test split, label, clean prediction,
prediction on the attacked input, correctness, size of the perturbation found). Accuracy under attack is
the fraction of points whose attacked prediction equals the label; a point misclassified clean counts as
an error (the attack is not run on it, as in AutoAttack).

The evaluation runs batch by batch: every batch of ``batch_size`` consecutive test points is attacked by
every evaluation of the job in turn, with randomness seeded from (seed, evaluation, first index of the
batch) only. A batch's records therefore do not depend on which other batches share the job, so shards made
of whole batches merge into exactly the records of one unsharded job, and a killed job resumes after its
last finished batch (:func:`evaluate_batches`). AutoAttack runs on the points PGD and the margin attack left
standing (when they run before it): its cost falls on the surviving points, as its own attacks do on each
other (Croce & Hein 2020, Sec. 5).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..io import ResumableCSV
from ..predict import predict
from ..progress import Progress
from ..records import (  # noqa: F401  (re-exported: the evaluation's record helpers)
    ATTACKS,
    LABEL_ATTACKS,
    PROGRESS_COLUMNS,
    RECORD_COLUMNS,
    SWEEP_COLUMNS,
    accuracy_rows,
    clean_records,
    evaluation_rows,
    suite_results,
    summary_row,
)
from ..seeding import derive_seed
from ..shards import check_shard, shard_chunks
from .autoattack import run_autoattack
from .pgd import Threat, attack_model
from .suite import MarginSuite, margin_attack

log = logging.getLogger("tradeoff")
DEFAULT_EPS_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
Model = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def perturbation_size(x: torch.Tensor, x_adv: torch.Tensor, norm: str) -> torch.Tensor:
    d = (x_adv - x).flatten(1)
    return d.abs().max(1).values if norm == "Linf" else d.norm(dim=1)


def _records(start: int, y: torch.Tensor, clean: torch.Tensor, adv: torch.Tensor,
             size: torch.Tensor) -> list[dict[str, Any]]:
    # Tensors become Python lists once: indexing a tensor element by element costs microseconds per call.
    ys, cs, ads, sizes = y.tolist(), clean.tolist(), adv.tolist(), size.tolist()
    return [
        {"index": start + i, "label": int(ys[i]), "clean_prediction": int(cs[i]), "prediction": int(ads[i]),
         "correct": int(ads[i] == ys[i]), "perturbation": float(sizes[i])}
        for i in range(len(ys))
    ]


def sweep_factors(threat: Threat, params: Mapping[str, Any]) -> list[float]:
    """The ε-sweep's budgets in units of ε: ``eps_factors`` and, for ℓ∞ on a bounded input box, the box's
    width, where every image is one perturbation away and only masked gradients can keep the accuracy above
    0 (Carlini et al. 2019, Sec. 5.2)."""
    factors = [float(f) for f in params.get("eps_factors", DEFAULT_EPS_FACTORS)]
    if any(f < 0 for f in factors):
        raise ValueError(f"eps factors must be non-negative, got {factors}")
    if threat.norm == "Linf" and threat.bounds is not None and threat.eps > 0:
        box = (threat.bounds[1] - threat.bounds[0]) / threat.eps
        if max(factors, default=0.0) < box:
            factors.append(box)
    return factors


def _generator(device: torch.device, seed: int, *keys: int | str) -> torch.Generator | None:
    # CPU generators only: a CUDA run draws from the global stream (torch has no portable device generator)
    return torch.Generator(device="cpu").manual_seed(derive_seed(seed, *keys)) if device.type == "cpu" else None


def evaluate_batch(model: Model, x: torch.Tensor, y: torch.Tensor, start: int, attacks: Sequence[str],
                   threat: Threat, params: Mapping[str, Mapping[str, Any]], seed: int,
                   device: torch.device) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """Every evaluation of ``attacks`` on one batch (test indices ``start``, ``start + 1``, …).

    Returns per evaluation its records and the batch's metadata. Guarantees: randomness comes from
    (``seed``, evaluation, ``start``) only; ``pgd`` and ``margin`` attack every point classified correctly;
    ``autoattack`` attacks only the points every earlier evaluation of ``LABEL_ATTACKS`` in ``attacks`` left
    standing, and its records give the worst case so far for the others (so its accuracy is never above
    theirs); ``eps-sweep`` records carry an ``eps`` column, one block of points per budget.
    """
    xd, yd = x.to(device), y.to(device)
    clean = predict(model, xd, x.shape[0], device)
    records: dict[str, list[dict[str, Any]]] = {}
    metas: dict[str, dict[str, Any]] = {}
    zero = torch.zeros(y.shape[0])
    worst_pred, worst_size = clean.clone(), zero.clone()  # worst case so far over the label attacks
    for attack in attacks:
        p = params.get(attack, {})
        meta: dict[str, Any] = {}
        if attack == "clean" or (threat.eps == 0 and attack != "eps-sweep"):
            pred, size = clean, zero
        elif attack == "pgd":
            steps = int(p.get("steps", 20))
            adv = attack_model(model, xd, yd, threat, steps=steps,
                               step_size=float(p.get("step_rel", 2.5 / steps)) * threat.eps,
                               restarts=int(p.get("restarts", 1)), loss=str(p.get("loss", "ce")),
                               generator=_generator(device, seed, attack, start))
            pred = predict(model, adv, x.shape[0], device)
            pred = torch.where(clean == y, pred, clean)  # clean errors stay errors, as in AutoAttack
            size = perturbation_size(x, adv.cpu(), threat.norm)
        elif attack == "margin":
            res = margin_attack(model, xd, yd, threat, MarginSuite.from_mapping(p),
                                generator=_generator(device, seed, attack, start), batch_size=x.shape[0])
            pred, size = res.prediction, perturbation_size(x, res.x_adv, threat.norm)
            meta["broken_by"] = res.counts()
        elif attack == "autoattack":
            alive = torch.nonzero(worst_pred == y).flatten()
            pred, size = worst_pred.clone(), worst_size.clone()
            meta = {"attacked": len(alive), "robust_after": {}, "flags": {}, "warnings": []}
            if len(alive):
                res = _autoattack(model, x[alive], y[alive], threat, p, derive_seed(seed, attack, start), device)
                pred[alive] = predict(model, res.x_adv, x.shape[0], device)
                size[alive] = perturbation_size(x[alive], res.x_adv, threat.norm)
                # pyautoattack logs percentages of the points it was given: back to counts of points
                meta.update(robust_after={k: round(v * len(alive)) for k, v in res.accuracy_by_attack.items()},
                            flags=res.flags, warnings=res.messages)
        elif attack == "eps-sweep":
            suite = MarginSuite.from_mapping(p)
            rows: list[dict[str, Any]] = []
            for k, f in enumerate(sweep_factors(threat, p)):
                res = margin_attack(model, xd, yd, threat.scaled(f), suite, generator=_generator(
                    device, seed, attack, k, start), batch_size=x.shape[0])
                rows += [{"eps": f * threat.eps, **r} for r in _records(
                    start, y, clean, res.prediction, perturbation_size(x, res.x_adv, threat.norm))]
            records[attack], metas[attack] = rows, {"eps_grid": sorted({r["eps"] for r in rows})}
            continue
        else:
            raise ValueError(f"unknown evaluation '{attack}' ({', '.join(ATTACKS)})")
        records[attack], metas[attack] = _records(start, y, clean, pred, size), meta
        if attack in LABEL_ATTACKS:
            hit = (pred != y) & (worst_pred == y)
            worst_pred[hit], worst_size[hit] = pred[hit], size[hit]
    return records, metas


def _autoattack(model: Model, x: torch.Tensor, y: torch.Tensor, threat: Threat, p: Mapping[str, Any],
                seed: int, device: torch.device) -> Any:
    return run_autoattack(
        model, x, y, norm=threat.norm, eps=threat.eps, version=str(p.get("version", "custom")),
        attacks=tuple(p.get("attacks", ("apgd-ce", "apgd-t"))), n_iter=int(p.get("n_iter", 100)),
        apgd_restarts=int(p.get("apgd_restarts", 1)), n_target_classes=int(p.get("n_target_classes", 9)),
        square_queries=int(p.get("square_queries", 5000)), fab_iter=int(p.get("fab_iter", 100)),
        fab_target_classes=None if p.get("fab_target_classes") is None else int(p["fab_target_classes"]),
        batch_size=x.shape[0], seed=seed, device=device,
    )


def evaluate_batches(model: Model, x: torch.Tensor, y: torch.Tensor, attacks: Sequence[str], threat: Threat,
                     params: Mapping[str, Mapping[str, Any]], seed: int, device: torch.device,
                     batch_size: int, starts: Iterable[int], progress: ResumableCSV,
                     stop_after: int | None = None, label: str = "") -> int:
    """Run :func:`evaluate_batch` on each batch of ``starts`` not yet in ``progress`` and append its rows
    (:data:`PROGRESS_COLUMNS`) and one closing row carrying the batch's metadata, with one flush per batch.

    Guarantee: a batch counts as done only once its closing row is on disk; rows of a batch cut off by a
    kill are dropped on the next start, so every finished batch is kept and no batch is recorded twice.
    Stops after ``stop_after`` new batches (a deterministic interruption for tests). Returns the number of
    batches still to do.
    """
    closed = {int(r["index"]) for r in progress.rows if r["attack"] == ""}
    progress.retain(lambda r: int(r["batch"]) in closed)
    todo = [s for s in starts if s not in closed]
    if closed:
        log.info("%sresuming after %d finished batches, %d to do", label, len(closed), len(todo))
    bar = Progress(len(todo), f"{label}{'+'.join(attacks)}", unit="batches")
    for k, start in enumerate(todo):
        if stop_after is not None and k >= stop_after:
            bar.close()
            return len(todo) - k
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        records, metas = evaluate_batch(model, xb, yb, start, attacks, threat, params, seed, device)
        rows = [{"batch": start, "attack": a, "eps": r.get("eps", threat.eps), **r, "meta": ""}
                for a in attacks for r in records[a]]
        rows.append({"batch": start, "attack": "", "eps": threat.eps, "index": start, "label": -1,
                     "clean_prediction": -1, "prediction": -1, "correct": 0, "perturbation": 0.0,
                     "meta": json.dumps(metas, sort_keys=True)})
        progress.append_many(rows)
        bar.update(1)
    bar.close()
    return 0


def progress_path(out_dir: str | Path, attacks: Sequence[str], shard: int, shards: int | None) -> Path:
    """Where an evaluation job running ``attacks`` keeps its progress: as shard ``shard`` of ``shards`` the
    shard's records ``shards/<attacks joined by +>-<shard>-of-<shards>.csv``; as the whole job (``shards``
    None) a ``progress-`` file next to the per-evaluation records (gone once they are written)."""
    group = "+".join(attacks)
    if shards is not None:
        return Path(out_dir) / "shards" / f"{group}-{shard}-of-{shards}.csv"
    return Path(out_dir) / f"progress-{group}.csv"


def evaluation_job(data: str | Path, classifiers: Sequence[tuple[str, str, str]], attacks: Sequence[str],
                   threat_spec: Mapping[str, Any], params: Mapping[str, Mapping[str, Any]], *, seed: int,
                   device: torch.device, batch_size: int, shard: int = 0, shards: int | None = None,
                   stop_after: int | None = None, split: str = "test") -> bool:
    """The ``attacks`` stage: every evaluation of ``attacks`` on the test split of ``data`` for each
    ``(classifier JSON, classifier id, output folder)`` of ``classifiers`` in turn, batch by batch
    (:func:`evaluate_batches`), resumable from :func:`progress_path`.

    As the whole job (``shards`` None), writes ``<folder>/<attack>.csv`` per evaluation
    (:func:`~tradeoff.records.write_evaluations`); as shard ``shard`` of ``shards`` (even of 1), the shard's
    records (:data:`PROGRESS_COLUMNS`, closed with the run's description that
    :func:`~tradeoff.records.merge_evaluation_shards` checks). Returns False when ``stop_after`` stopped
    a classifier with batches left (its progress is kept and later classifiers are not started), else True.

    ``split="all"`` evaluates the whole official test set instead (:meth:`~tradeoff.data.Splits.whole_test`:
    clean and PGD accuracy on every test image when the attacked test split is a seeded subsample); its summary
    rows carry the evaluation ids ``<attack>-all``.
    """
    from .. import data as data_mod
    from ..classifiers import load_classifier, load_spec
    from ..fingerprint import fingerprint
    from ..io import provenance
    from ..records import batch_metas, write_evaluations

    splits = data_mod.load(data)
    threat = Threat(str(threat_spec["norm"]), float(threat_spec["eps"]), splits.bounds)
    if split not in ("test", "all"):
        raise ValueError(f"split must be test or all, got {split!r}")
    part = "test" if split == "test" else splits.whole_test()
    x, y = splits.x(part), splits.y(part)
    sharded = shards is not None
    shards = shards if sharded else 1
    check_shard(shard, shards)
    starts = shard_chunks(x.shape[0], batch_size, shard, shards)
    params = {a: params.get(a, {}) for a in attacks}
    for spec_path, name, out_dir in classifiers:
        spec = load_spec(spec_path)
        run = {"classifier_sha256": spec.get("sha256"), "data_sha256": splits.meta.get("sha256"),
               "attacks": list(attacks), "threat": threat_spec, "params": params, "seed": seed,
               "batch_size": batch_size, "shard": shard, "shards": shards,
               **({"split": split} if split != "test" else {})}
        model = load_classifier(spec_path, device, probe=x[:batch_size])  # refuses a non-finite classifier
        progress = ResumableCSV(progress_path(out_dir, attacks, shard, shards if sharded else None), PROGRESS_COLUMNS,
                                key=fingerprint(run), closes=lambda row: row["attack"] == "")
        left = evaluate_batches(model, x, y, attacks, threat, params, seed, device, batch_size, starts, progress,
                                stop_after=stop_after, label=f"{name}: ")
        if left:
            progress.close()
            log.info("%s: stopped with %d batches to do as asked; progress kept in %s", name, left,
                     progress.partial)
            return False
        context = {"classifier_sha256": spec.get("sha256"), "batch_size": batch_size}
        if sharded:
            progress.finalize({"dataset": splits.name, "classifier": name, **run, **context,
                               **provenance(run, seed)}, sort_key="batch")
        else:
            write_evaluations(out_dir, splits.name, name, threat, progress.rows, batch_metas(progress.rows),
                              list(attacks), params, {**context, **({"split": split} if split != "test" else {})},
                              seed, suffix="" if split == "test" else "-all")
            progress.discard()
    return True


def run_attack(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: str,
    threat: Threat,
    params: Mapping[str, Any],
    seed: int,
    device: torch.device,
    batch_size: int = 500,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Evaluate ``model`` on ``(x, y)`` under one ``attack`` ∈ :data:`ATTACKS`, in memory.

    Returns the per-sample records and metadata exactly as an ``attacks`` job running only ``attack``
    writes them (same per-batch seeds). The attacked model is the full ``model`` (for composites: end to
    end). ``margin``: :func:`~tradeoff.attacks.suite.margin_attack` (params steps, step_rel, restarts, loss,
    targets, target_restarts). ``eps-sweep``: the margin attack at each budget of :func:`sweep_factors`.
    """
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack '{attack}' ({', '.join(ATTACKS)})")
    rows: list[dict[str, Any]] = []
    metas: list[dict[str, Any]] = []
    for start in range(0, x.shape[0], batch_size):
        records, batch_meta = evaluate_batch(model, x[start:start + batch_size], y[start:start + batch_size],
                                             start, [attack], threat, {attack: params}, seed, device)
        rows += [{"attack": attack, "eps": r.get("eps", threat.eps), **r} for r in records[attack]]
        metas.append(batch_meta)
    results = suite_results(rows, metas, [attack], threat, {attack: params})
    return results[attack]
