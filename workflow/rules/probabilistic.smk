# Probabilistic (ε, κ) certification (Zhang et al. 2023), at each threat of `probabilistic.threats` (the vicinity
# B(x, ε) is the threat's ball): one sampling job per (threat, classifier, shard) whose
# records decide every configured test at every κ (the sequential test's samples are a prefix of the fixed
# test's stream, so one pass serves both); one light merge writes each test's decided records with the
# metrics (and the PGD defense success rate) for summary.csv; two figures.


include: "helpers/probabilistic.smk"


localrules:
    probabilistic_merge,


rule probabilistic_shard:
    """Sample the vicinity of the test points of one shard; the records decide every test at every κ."""
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, w.seed, w.threat, w.classifier),
    output:
        records="results/{dataset}{seed}/{threat}/certify/{classifier}/shards/prob-{shard}-of-{shards}.csv",
        meta="results/{dataset}{seed}/{threat}/certify/{classifier}/shards/prob-{shard}-of-{shards}.json",
    log:
        "logs/{dataset}{seed}/{threat}/certify/{classifier}/prob-{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/certify/{classifier}/prob-{shard}-of-{shards}.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=alternatives(PROB_THREATS),
        classifier=alternatives(PROB_CLASSIFIERS),
        shard=r"\d+",
        shards=r"\d+",
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        settings=lambda w: J(prob_settings(w.threat)),
        tests=" ".join(sorted(PROB_TESTS)),
        points=PROB["points"] or 0,
        seed=seed_param,
    shell:
        tradeoff_shell(
            "probabilistic",
            "--seed {params.seed} --data {input.data} "
            "--classifier {input.classifier[0]} --name {wildcards.classifier} --tests {params.tests} "
            "--settings {params.settings:q} --shard {wildcards.shard} --shards {wildcards.shards} "
            "--n-points {params.points} --out {output.records} 2> {log}",
        )


rule probabilistic_merge:
    """Decide every test for every classifier and threat of one seed from the shards, with the PGD defense success
    rate."""
    input:
        shards=[p for item in prob_plan("{seed}") for p in item["shards"]],
        pgd=[item["pgd"] for item in prob_plan("{seed}")],
    output:
        records=probabilistic_records("{seed}"),
        meta=[str(Path(p).with_suffix(".json")) for p in probabilistic_records("{seed}")],
    log:
        f"logs/{DATASET}{{seed}}/certify/prob-merge.log",
    benchmark:
        f"results/benchmarks/{DATASET}{{seed}}/certify/prob-merge.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        plan=lambda w: J(prob_plan(w.seed)),
    shell:
        "tradeoff merge probabilistic --plan {params.plan:q} 2> {log}"
