# The probabilistic stage's constants, paths and helpers (its rules: workflow/rules/probabilistic.smk).


PROB = config["probabilistic"]
PROB_CLASSIFIERS = list(PROB["classifiers"])
PROB_TESTS = list(PROB["tests"])
PROB_SHARDS = int(PROB["shards"])
PROB_THREATS = threat_ids(PROB["threats"])
PROB_KEYS = [k for k in PROB if k not in ("classifiers", "threats", "tests", "points", "shards")]


def prob_settings(threat):
    """The sampling and test settings at `threat` (its ball is the vicinity)."""
    return {**{k: PROB[k] for k in PROB_KEYS}, **THREATS[threat]}


def prob_records(seed, threat, classifier, test, dataset=DATASET):
    return f"results/{dataset}{seed}/{threat}/certify/{classifier}/prob-{test}.csv"


def prob_shards(seed, threat, classifier, dataset=DATASET):
    return expand(
        "results/{dataset}{seed}/{threat}/certify/{classifier}/shards/prob-{shard}-of-{shards}.csv",
        dataset=dataset,
        seed=seed,
        threat=threat,
        classifier=classifier,
        shard=range(PROB_SHARDS),
        shards=PROB_SHARDS,
    )


def prob_plan(seed):
    """The items of the merge job of training seed `seed` (its path segment), one per threat and classifier: one
    light job for all of them, since each merge is a join of small CSVs and one process start costs more."""
    return [
        {
            "shards": prob_shards(seed, th, c),
            "pgd": eval_path(DATASET, seed, th, c, "pgd"),
            "out": {t: prob_records(seed, th, c, t) for t in PROB_TESTS},
        }
        for th in PROB_THREATS
        for c in PROB_CLASSIFIERS
    ]


def probabilistic_records(seed):
    return [p for item in prob_plan(seed) for p in item["out"].values()]


def prob_kappa_args(w):
    records = {c: {t: prob_records(FIGURE_SEED, w.threat, c, t) for t in PROB_TESTS} for c in PROB_CLASSIFIERS}
    return J({"records": records, "dataset": DATASET})


def prob_samples_args(w):
    records = {c: prob_records(FIGURE_SEED, w.threat, c, "sequential") for c in PROB_CLASSIFIERS}
    return J({"records": records, "dataset": DATASET})


STAGE_RECORDS.append(probabilistic_records)


# certified robust accuracy against κ at one threat, per training method and test
FIGURES["prob_kappa"] = dict(
    cli="prob-kappa",
    out="results/figures/{threat}/prob_kappa.png",
    threats=PROB_THREATS,
    inputs=lambda w: {
        "records": [prob_records(FIGURE_SEED, w.threat, c, t) for c in PROB_CLASSIFIERS for t in PROB_TESTS]
    },
    args=prob_kappa_args,
    caption="prob_kappa.rst",
    category="Probabilistic robustness",
)


if "sequential" in PROB_TESTS:
    # histogram of the samples the sequential test used per input, against the fixed test's
    FIGURES["prob_samples"] = dict(
        cli="prob-samples",
        out="results/figures/{threat}/prob_samples.png",
        threats=PROB_THREATS,
        inputs=lambda w: {"records": [prob_records(FIGURE_SEED, w.threat, c, "sequential") for c in PROB_CLASSIFIERS]},
        args=prob_samples_args,
        caption="prob_samples.rst",
        category="Probabilistic robustness",
    )
