"""The paper presets' DAGs: `snakemake -n` with each preset (in a temp copy of the workflow) plans every
stage — training of each base model, AutoAttack of every classifier, sharded certification, mixing, the
mixing network and its adaptive attack, probabilistic certification, ERA — with the preset's GPU resources;
the zoo rule appears exactly when the config names a RobustBench model (here for CIFAR-100, as the robust
model of the mixing stage). The three dry runs run in parallel."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from preset_helpers import PRESETS, merge, preset_config, preset_files
from workflow_helpers import copy_workflow, parse_plan, snakemake

from tradeoff.config import threat_id

ZOO_OVERLAY = {"zoo": {"models": {"wang2023": {"name": "Wang2023Better_WRN-28-10", "threat_model": "Linf",
                                               "sha256": None, "features": None}}},
               "mixing": {"robust": "wang2023"}}


# ------------------------------------------------------------------------------------------------------
# Dry runs, all three at once
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def dry_runs(tmp_path_factory):
    """Text of `snakemake -n` for each preset (cifar100 with a zoo model as the robust mixing model)."""

    def run(name: str) -> str:
        work = copy_workflow(tmp_path_factory.mktemp(f"wf-{name}"))
        args = ["--configfile", *preset_files(work, name)]
        if name == "cifar100":
            (work / "zoo.yaml").write_text(yaml.safe_dump(ZOO_OVERLAY))
            args.append("zoo.yaml")
        proc = snakemake(work, "-n", *args, timeout=600)
        return proc.stdout + proc.stderr

    pool = ThreadPoolExecutor(max_workers=len(PRESETS))
    futures = {name: pool.submit(run, name) for name in PRESETS}
    yield futures
    pool.shutdown(wait=True)


def _paths(plan: dict[str, list[str]], rule: str) -> set[str]:
    return set(plan.get(rule, []))


def _point_paths(plan: dict[str, list[str]], rule: str, shards: int) -> set[str]:
    """The records a per-point stage's merge writes, after checking that each merged record has its ``shards``
    shard jobs (``<folder>/shards/<stem>-<k>-of-<shards>.csv``; one when ``shards`` is 1)."""
    merged, shard_jobs = _paths(plan, f"{rule}_merge"), _paths(plan, f"{rule}_shard")
    for path in merged:
        folder, _, name = path.rpartition("/")
        if name.endswith(".csv"):
            stem = name.removesuffix(".csv")
            assert {f"{folder}/shards/{stem}-{k}-of-{shards}.csv" for k in range(shards)} <= shard_jobs, path
    assert not _paths(plan, rule), f"{rule}: one unsharded job although attacks.shards = {shards}"
    return merged


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESETS)
def test_preset_plans_every_stage(root, dry_runs, name):
    cfg = preset_config(root, name)
    if name == "cifar100":
        merge(cfg, copy.deepcopy(ZOO_OVERLAY))
    text = dry_runs[name].result()
    plan = parse_plan(text)
    ds = cfg["dataset"]
    assert ds == name
    sigmas = [f"{s:g}" for s in cfg["certify"]["sigmas"]]
    base = [*cfg["models"], *(f"gauss_aug-{s}" for s in sigmas)]
    every = [threat_id(t) for t in cfg["threats"]]

    def at(section):  # the threat ids a stage (a config section with a `threats` key) runs at
        chosen = section.get("threats")
        return every if chosen is None else [threat_id(t) for t in chosen]

    model_threats = {m: at(cfg["models"][m]) for m in cfg["models"]}
    model_threats.update({f"gauss_aug-{s}": at(cfg["certify"]) for s in sigmas})
    shared = {m for m in base if m.startswith("gauss_aug-") or cfg["models"][m]["objective"] == "standard"}
    assert f"results/{ds}/data.pt" in _paths(plan, "data")
    assert {f"results/{ds}/models/{m}.pt" for m in shared} <= _paths(plan, "train_shared")
    assert {f"results/{ds}/{t}/models/{m}.pt" for m in base if m not in shared for t in model_threats[m]} \
        <= _paths(plan, "train")
    # every base model (and zoo model) under standard AutoAttack, end to end, at each of its budgets
    zoo = list(cfg["zoo"]["models"] or {})
    evaluated = _paths(plan, "attacks_merge")
    assert {f"results/{ds}/{t}/eval/{m}/autoattack.csv" for m in base for t in model_threats[m]} <= evaluated
    assert {f"results/{ds}/{t}/eval/{z}/autoattack.csv" for z in zoo for t in every} <= evaluated
    # a base model's worst case is written by the merge of its suite (no adaptive attack of its own)
    assert {f"results/{ds}/{t}/eval/{m}/worst.csv" for m in base for t in model_threats[m]} <= evaluated
    # every classifier's evaluation at each budget is attacks.shards separate jobs (one when it is 1)
    n_shards = cfg["attacks"]["shards"]
    group = "+".join(a for a in cfg["attacks"]["run"] if a != "eps-sweep")
    shard_jobs = _paths(plan, "attacks_shard")
    for m in base:
        for t in model_threats[m]:
            mine = {p for p in shard_jobs if p.startswith(f"results/{ds}/{t}/eval/{m}/shards/{group}-")
                    and p.endswith(".csv")}
            assert mine == {f"results/{ds}/{t}/eval/{m}/shards/{group}-{k}-of-{n_shards}.csv"
                            for k in range(n_shards)}, (m, t, sorted(mine))
    # certification: every σ, in more than one resumable shard (ℓ2 certificates: no budget in the path)
    shards = cfg["certify"]["shards"]
    assert shards > 1
    assert {f"results/{ds}/certify/gauss_aug-{s}/shards/{i}-of-{shards}.csv" for s in sigmas
            for i in range(shards)} <= _paths(plan, "certify_shard")
    assert {f"results/{ds}/certify/gauss_aug-{s}/rs.csv" for s in sigmas} <= _paths(plan, "certify_merge")
    # mixing: every fixed α and mode, the mixing network, its adaptive attack, the robust model's margins
    mix = cfg["mixing"]
    for t in at(mix):
        assert {f"results/{ds}/{t}/models/mix-{m}-{a:g}.json" for m in mix["modes"] for a in mix["alphas"]} \
            <= _paths(plan, "mixing_spec")
        assert {f"results/{ds}/{t}/eval/mix-prob-{a:g}/autoattack.csv" for a in mix["alphas"]} <= evaluated
        # one shard job per mixing mode attacks all its fixed-α mixtures; the mixing network's worst case waits
        # for its adaptive attack
        assert {f"results/{ds}/{t}/eval/mix-{m}-{a:g}/shards/{group}-{k}-of-{n_shards}.csv" for m in mix["modes"]
                for a in mix["alphas"] for k in range(n_shards)} <= _paths(plan, "attacks_mixtures_shard")
        assert f"results/{ds}/{t}/eval/mixnet/worst.csv" in _paths(plan, "attacks_worst")
        assert f"results/{ds}/{t}/models/mixnet.pt" in _paths(plan, "mixing_fit")
        assert f"results/{ds}/{t}/eval/mixnet/adaptive.csv" in _point_paths(plan, "mixing_adaptive", n_shards)
        assert f"results/{ds}/{t}/eval/{mix['robust']}/confidence.csv" in _paths(plan, "mixing_margins")
    # probabilistic certification and ERA (the composite with each robust branch), at their own budgets
    prob = cfg["probabilistic"]
    assert len([p for p in _paths(plan, "probabilistic_shard") if p.endswith(".csv")]) \
        == len(prob["classifiers"]) * prob["shards"] * len(at(prob))
    era = cfg["era"]
    composites = ["era-composite", *(f"era-composite-{b}" for b in era["composite"]["compare"])]
    for t in at(era):
        assert {f"results/{ds}/{t}/eval/{m}/robustness.csv" for m in era["models"]} \
            <= _point_paths(plan, "era_robustness", n_shards)
        assert {f"results/{ds}/{t}/eval/{c}/adaptive.csv" for c in composites} \
            <= _point_paths(plan, "era_composite", n_shards)
    assert "results/summary.csv" in _paths(plan, "summary")
    # the zoo rule exists only when the config names zoo models
    assert ("zoo" in plan) == bool(zoo)
    if zoo:
        assert {f"results/{ds}/models/{z}.json" for z in zoo} <= _paths(plan, "zoo")
    # heavy jobs ask for the preset's GPU and threads
    res = cfg["resources"]
    assert res["gpu"] >= 1
    assert f"tradeoff train --threads {res['threads']} --device auto --gpus {res['gpu']}" in text
