# Probabilistic (ε, κ) certification (Zhang et al.; spec §5): one sampling job per (classifier, shard) whose
# records decide every configured test at every κ (the sequential test's samples are a prefix of the fixed
# test's stream, so one pass serves both); one light merge writes each test's decided records with the
# metrics (and the PGD defense success rate) for summary.csv; two figures.

PROB = config["probabilistic"]
PROB_CLASSIFIERS = list(PROB["classifiers"])
PROB_TESTS = list(PROB["tests"])
PROB_SHARDS = int(PROB["shards"])
PROB_DIR = "results/{dataset}/certify/{classifier}"
PROB_SHARD = PROB_DIR + "/shards/prob-{shard}-of-{shards}"
PROB_SETTINGS = {k: PROB[k] for k in ("eps", "norm", "kappa", "kappa_sweep", "alpha", "n_max", "growth", "clamp",
                                      "batch_size")}
for _name in PROB_CLASSIFIERS:
    try:
        classifier_inputs(DATASET, _name)
    except ValueError:
        raise WorkflowError(f"config error at probabilistic.classifiers: unknown classifier '{_name}'") from None

localrules: certify_prob_merge, figure_prob_kappa, figure_prob_samples


def prob_records(classifier, test, dataset=DATASET):
    return f"results/{dataset}/certify/{classifier}/prob-{test}.csv"


def prob_shards(classifier, dataset=DATASET):
    return expand(PROB_SHARD + ".csv", dataset=dataset, classifier=classifier, shard=range(PROB_SHARDS),
                  shards=PROB_SHARDS)


rule certify_prob_shard:
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, w.classifier),
    output:
        records=PROB_SHARD + ".csv",
        meta=PROB_SHARD + ".json",
    wildcard_constraints:
        dataset=re.escape(DATASET),
        classifier="|".join(re.escape(c) for c in PROB_CLASSIFIERS),
        shard=r"\d+",
        shards=r"\d+",
    params:
        settings=J(PROB_SETTINGS),
        tests=" ".join(sorted(PROB_TESTS)),
        points=PROB["points"] or 0,
        seed=SEED,
    log:
        "logs/{dataset}/certify/{classifier}/prob-{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/{dataset}/certify/{classifier}/prob-{shard}-of-{shards}.tsv"
    threads: THREADS
    resources:
        **HEAVY,
    shell:
        "tradeoff certify-prob {RUNTIME_ARGS} --seed {params.seed} --data {input.data} "
        "--classifier {input.classifier[0]} --name {wildcards.classifier} --tests {params.tests} "
        "--settings {params.settings:q} --shard {wildcards.shard} --shards {wildcards.shards} "
        "--n-points {params.points} --out {output.records} 2> {log}"


# One light job for every classifier: each merge is a join of small CSVs, and one process start costs more.
PROB_PLAN = [{"shards": prob_shards(c), "pgd": eval_path(DATASET, c, "pgd"),
              "out": {t: prob_records(c, t) for t in PROB_TESTS}} for c in PROB_CLASSIFIERS]


rule certify_prob_merge:
    input:
        shards=[p for item in PROB_PLAN for p in item["shards"]],
        pgd=[item["pgd"] for item in PROB_PLAN],
    output:
        records=[p for item in PROB_PLAN for p in item["out"].values()],
        meta=[str(Path(p).with_suffix(".json")) for item in PROB_PLAN for p in item["out"].values()],
    params:
        plan=J(PROB_PLAN),
    log:
        f"logs/{DATASET}/certify/prob-merge.log",
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff certify-prob-merge --plan {params.plan:q} 2> {log}"


PROB_RECORDS = {c: {t: prob_records(c, t) for t in PROB_TESTS} for c in PROB_CLASSIFIERS}
SUMMARY_INPUTS.extend(p for by_test in PROB_RECORDS.values() for p in by_test.values())
# the variance-trained model's own clean / attack rows, next to the other base models' (attack.smk)
if "variance" in BASE_MODELS:
    SUMMARY_INPUTS.extend(p for p in (eval_path(DATASET, "variance", a) for a in config["attacks"]["run"])
                          if p not in SUMMARY_INPUTS)


rule figure_prob_kappa:
    input:
        [p for by_test in PROB_RECORDS.values() for p in by_test.values()],
    output:
        png=report("results/figures/prob_kappa.png", caption="../report/prob_kappa.rst",
                   category="Probabilistic robustness"),
        pdf="results/figures/prob_kappa.pdf",
    params:
        args=J({"records": PROB_RECORDS, "dataset": DATASET}),
    log:
        "logs/figures/prob_kappa.log",
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff figure prob-kappa --out {output.png} --args {params.args:q} 2> {log}"


rule figure_prob_samples:
    input:
        [prob_records(c, "sequential") for c in PROB_CLASSIFIERS],
    output:
        png=report("results/figures/prob_samples.png", caption="../report/prob_samples.rst",
                   category="Probabilistic robustness"),
        pdf="results/figures/prob_samples.pdf",
    params:
        args=J({"records": {c: prob_records(c, "sequential") for c in PROB_CLASSIFIERS}, "dataset": DATASET}),
    log:
        "logs/figures/prob_samples.log",
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff figure prob-samples --out {output.png} --args {params.args:q} 2> {log}"


FIGURES.append("results/figures/prob_kappa.png")
if "sequential" in PROB_TESTS:
    FIGURES.append("results/figures/prob_samples.png")
