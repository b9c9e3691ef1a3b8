# Attack evaluation: one rule, any classifier (base or composite), attacked end to end.


def attack_params(attack):
    if attack == "clean":
        return {}
    return config["attacks"][attack]


rule evaluate:
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, w.classifier),
    output:
        records="results/{dataset}/eval/{classifier}/{attack}.csv",
        meta="results/{dataset}/eval/{classifier}/{attack}.json",
    wildcard_constraints:
        dataset=re.escape(DATASET),
        attack="clean|pgd|autoattack",
    params:
        threat=threat_json(),
        attack=lambda w: J(attack_params(w.attack)),
        batch_size=config["attacks"]["batch_size"],
        seed=SEED,
    log:
        "logs/{dataset}/eval/{classifier}/{attack}.log",
    benchmark:
        "results/benchmarks/{dataset}/eval/{classifier}/{attack}.tsv"
    threads: THREADS
    resources:
        **HEAVY,
    shell:
        "tradeoff evaluate {RUNTIME_ARGS} --seed {params.seed} --data {input.data} "
        "--classifier {input.classifier[0]} --name {wildcards.classifier} --attack {wildcards.attack} "
        "--threat {params.threat:q} --params {params.attack:q} --batch-size {params.batch_size} "
        "--out {output.records} 2> {log}"


# Every base model (standard, pgd_at, trades, and those other stages add: gauss_aug-σ, variance, era) is
# evaluated under the same attacks, so that the unified comparison puts them all on the same axes.
BASE_EVAL = [eval_path(DATASET, m, a) for m in BASE_MODELS for a in config["attacks"]["run"]]
SUMMARY_INPUTS.extend(BASE_EVAL)
