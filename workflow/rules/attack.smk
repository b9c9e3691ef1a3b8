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
        name=lambda w: w.attack,
        attack=lambda w: J(attack_params(w.attack)),
        batch_size=config["attacks"]["batch_size"],
        seed=SEED,
        clean_out="",
    log:
        "logs/{dataset}/eval/{classifier}/{attack}.log",
    benchmark:
        "results/benchmarks/{dataset}/eval/{classifier}/{attack}.tsv"
    threads: THREADS
    resources:
        **HEAVY,
    shell:
        "tradeoff evaluate {RUNTIME_ARGS} --seed {params.seed} --data {input.data} "
        "--classifier {input.classifier[0]} --name {wildcards.classifier} --attack {params.name} "
        "--threat {params.threat:q} --params {params.attack:q} --batch-size {params.batch_size} "
        "--out {output.records} {params.clean_out} 2> {log}"


# The clean evaluation is read off the first attack's job (its records carry the clean predictions): one
# job, one model load and one start-up fewer per classifier. The plain `evaluate` rule still makes clean.csv
# when no attack runs.
CLEAN_WITH = next((a for a in config["attacks"]["run"] if a != "clean"), None)
if CLEAN_WITH is not None and "clean" in config["attacks"]["run"]:

    use rule evaluate as evaluate_with_clean with:
        output:
            records=f"results/{{dataset}}/eval/{{classifier}}/{CLEAN_WITH}.csv",
            meta=f"results/{{dataset}}/eval/{{classifier}}/{CLEAN_WITH}.json",
            clean="results/{dataset}/eval/{classifier}/clean.csv",
            clean_meta="results/{dataset}/eval/{classifier}/clean.json",
        params:
            name=CLEAN_WITH,
            attack=J(attack_params(CLEAN_WITH)),
            clean_out=lambda w, output: f"--clean-out {output.clean}",
        log:
            f"logs/{{dataset}}/eval/{{classifier}}/{CLEAN_WITH}+clean.log",
        benchmark:
            f"results/benchmarks/{{dataset}}/eval/{{classifier}}/{CLEAN_WITH}+clean.tsv"

    ruleorder: evaluate_with_clean > evaluate


# Every base model (standard, pgd_at, trades, and those other stages add: gauss_aug-σ, variance, era) is
# evaluated under the same attacks, so that the unified comparison puts them all on the same axes.
BASE_EVAL = [eval_path(DATASET, m, a) for m in BASE_MODELS for a in config["attacks"]["run"]]
SUMMARY_INPUTS.extend(BASE_EVAL)
