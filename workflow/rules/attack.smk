# Attack evaluation: one rule, any classifier (base or composite) at any threat, attacked end to end; the
# per-point worst case over every attack run on a classifier (its reported robust accuracy); the
# masked-gradient sanity checks on the summary (Carlini et al. 2019).


localrules:
    worst,
    sanity,


rule evaluate:
    """Attack a classifier at one threat and write its per-sample records (clean: no attack)."""
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, w.threat, w.classifier),
    output:
        records="results/{dataset}/{threat}/eval/{classifier}/{attack}.csv",
        meta="results/{dataset}/{threat}/eval/{classifier}/{attack}.json",
    log:
        "logs/{dataset}/{threat}/eval/{classifier}/{attack}.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/eval/{classifier}/{attack}.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=THREAT_RE,
        attack=alternatives([*ATTACKS, SWEEP]),
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        threat=lambda w: threat_json(w.threat),
        name=lambda w: w.attack,
        attack=lambda w: J(attack_params(w.attack)),
        batch_size=config["attacks"]["batch_size"],
        seed=SEED,
        clean_out="",
    shell:
        tradeoff_shell(
            "evaluate",
            "--seed {params.seed} --data {input.data} "
            "--classifier {input.classifier[0]} --name {wildcards.classifier} --attack {params.name} "
            "--threat {params.threat:q} --params {params.attack:q} --batch-size {params.batch_size} "
            "--out {output.records} {params.clean_out} 2> {log}",
        )


# The clean evaluation is read off the first attack's job (its records carry the clean predictions): one
# job, one model load and one start-up fewer per classifier. The plain `evaluate` rule still makes clean.csv
# when no attack runs.
if CLEAN_WITH is not None and "clean" in ATTACKS:

    use rule evaluate as evaluate_with_clean with:
        """Attack a classifier at one threat with the first attack, writing its clean records too."""
        output:
            records=f"results/{{dataset}}/{{threat}}/eval/{{classifier}}/{CLEAN_WITH}.csv",
            meta=f"results/{{dataset}}/{{threat}}/eval/{{classifier}}/{CLEAN_WITH}.json",
            clean="results/{dataset}/{threat}/eval/{classifier}/clean.csv",
            clean_meta="results/{dataset}/{threat}/eval/{classifier}/clean.json",
        log:
            f"logs/{{dataset}}/{{threat}}/eval/{{classifier}}/{CLEAN_WITH}+clean.log",
        benchmark:
            f"results/benchmarks/{{dataset}}/{{threat}}/eval/{{classifier}}/{CLEAN_WITH}+clean.tsv"
        params:
            threat=lambda w: threat_json(w.threat),
            name=CLEAN_WITH,
            attack=J(attack_params(CLEAN_WITH)),
            batch_size=config["attacks"]["batch_size"],
            seed=SEED,
            clean_out=lambda w, output: f"--clean-out {output.clean}",

    ruleorder: evaluate_with_clean > evaluate


rule worst:
    """Per point, the worst case over every attack run on a classifier at one threat (its robust accuracy)."""
    input:
        worst_inputs,
    output:
        records="results/{dataset}/{threat}/eval/{classifier}/worst.csv",
        meta="results/{dataset}/{threat}/eval/{classifier}/worst.json",
    log:
        "logs/{dataset}/{threat}/eval/{classifier}/worst.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/eval/{classifier}/worst.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=THREAT_RE,
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        threat=lambda w: threat_json(w.threat),
    shell:
        "tradeoff worst --name {wildcards.classifier} --threat {params.threat:q} --out {output.records} "
        "{input} 2> {log}"


rule sanity:
    """Masked-gradient sanity checks of every classifier's attack results (a failed check is flagged)."""
    input:
        summary="results/summary.csv",
    output:
        report("results/sanity.csv", caption="../report/sanity.rst", category="Comparison"),
    log:
        "logs/sanity.log",
    benchmark:
        "results/benchmarks/sanity.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        checks=J(SANITY),
    shell:
        "tradeoff sanity --summary {input.summary} --params {params.checks:q} --out {output} 2> {log}"
