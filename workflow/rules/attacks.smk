# Attack evaluation: any classifier (base or composite) at any threat, attacked end to end, batch by batch
# (the batch is the unit of seeding, sharding and resuming); the per-point worst case over every attack run
# on a classifier (its reported robust accuracy); the masked-gradient sanity checks on the summary
# (Carlini et al. 2019).


include: "helpers/attacks.smk"


localrules:
    attacks_worst,
    attacks_sanity,


localrules:
    attacks_merge,
    attacks_sweep_merge,


# Each shard (every n-th batch of test points, n = `attacks.shards`, 1 included) is a separate, resumable job
# (a GPU job on a cluster); a light job merges the shards into the per-evaluation records.
rule attacks_shard:
    """One shard of a classifier's evaluations at one threat (`group`: the evaluations joined by '+'; AutoAttack
    attacks the points PGD and the margin attack left standing)."""
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, w.seed, w.threat, w.classifier),
    output:
        records="results/{dataset}{seed}/{threat}/eval/{classifier}/shards/{group}-{shard}-of-{shards}.csv",
        meta="results/{dataset}{seed}/{threat}/eval/{classifier}/shards/{group}-{shard}-of-{shards}.json",
    log:
        "logs/{dataset}{seed}/{threat}/eval/{classifier}/{group}-{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/eval/{classifier}/{group}-{shard}-of-{shards}.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=THREAT_RE,
        classifier=NOT_A_MIXTURE,
        group=alternatives(["+".join(SUITE), SWEEP]),
        shard=r"\d+",
        shards=str(ATTACK_SHARDS),
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        threat=lambda w: threat_json(w.threat),
        attacks=lambda w: w.group.replace("+", " "),
        evaluations=lambda w: evaluation_params(w.group.split("+")),
        batch_size=ATTACK_BATCH,
        seed=seed_param,
        out_dir=lambda w: f"results/{w.dataset}{w.seed}/{w.threat}/eval/{w.classifier}",
        split="test",
    shell:
        tradeoff_shell(
            "attacks",
            "--seed {params.seed} --data {input.data} --classifier {input.classifier[0]} "
            "--name {wildcards.classifier} --out-dir {params.out_dir} --attacks {params.attacks} "
            "--threat {params.threat:q} --params {params.evaluations:q} --batch-size {params.batch_size} "
            "--split {params.split} --shard {wildcards.shard} --shards {wildcards.shards} 2> {log}",
        )


# The fixed-α mixtures of one mixing mode are attacked by one job, each into its own folder, in the order of
# `mixing.alphas`: one process start-up for all of them. The records are those of one job per mixture, since
# every attack is seeded by (seed, evaluation, first index of the batch) only.
rule attacks_mixtures_shard:
    """One shard of the evaluations of every fixed-α mixture of one mode at one threat."""
    input:
        data=lambda w: data_path(w.dataset),
        classifiers=lambda w: mixture_inputs(w.dataset, w.seed, w.threat, w.mode),
    output:
        records=mixture_shard_outputs("csv"),
        meta=mixture_shard_outputs("json"),
    log:
        "logs/{dataset}{seed}/{threat}/eval/mix-{mode}/{group}-{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/eval/mix-{mode}/{group}-{shard}-of-{shards}.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=THREAT_RE,
        mode=alternatives(config["mixing"]["modes"]),
        group=re.escape("+".join(SUITE)),
        shard=r"\d+",
        shards=str(ATTACK_SHARDS),
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        threat=lambda w: threat_json(w.threat),
        attacks=lambda w: w.group.replace("+", " "),
        evaluations=lambda w: evaluation_params(w.group.split("+")),
        batch_size=ATTACK_BATCH,
        seed=seed_param,
        specs=lambda w: " ".join(model_json(w.dataset, w.seed, w.threat, c) for c in mix_ids(w.mode)),
        names=lambda w: " ".join(mix_ids(w.mode)),
        out_dirs=lambda w: " ".join(f"results/{w.dataset}{w.seed}/{w.threat}/eval/{c}" for c in mix_ids(w.mode)),
    shell:
        tradeoff_shell(
            "attacks",
            "--seed {params.seed} --data {input.data} --classifier {params.specs} --name {params.names} "
            "--out-dir {params.out_dirs} --attacks {params.attacks} --threat {params.threat:q} "
            "--params {params.evaluations:q} --batch-size {params.batch_size} --split test "
            "--shard {wildcards.shard} --shards {wildcards.shards} 2> {log}",
        )


# Clean and PGD accuracy on the whole official test set when the attacked test split subsamples it
# (`attacks.whole_test`; records in eval/<classifier>/all/, evaluation ids <attack>-all).
use rule attacks_shard as attacks_whole_shard with:
    output:
        records="results/{dataset}{seed}/{threat}/eval/{classifier}/all/shards/{group}-{shard}-of-{shards}.csv",
        meta="results/{dataset}{seed}/{threat}/eval/{classifier}/all/shards/{group}-{shard}-of-{shards}.json",
    log:
        "logs/{dataset}{seed}/{threat}/eval/{classifier}/all/{group}-{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/eval/{classifier}/all/{group}-{shard}-of-{shards}.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=THREAT_RE,
        group=re.escape("+".join(WHOLE_TEST) or "none"),
        shard=r"\d+",
        shards=str(ATTACK_SHARDS),
    params:
        threat=lambda w: threat_json(w.threat),
        attacks=lambda w: w.group.replace("+", " "),
        evaluations=lambda w: evaluation_params(w.group.split("+")),
        batch_size=ATTACK_BATCH,
        seed=seed_param,
        out_dir=lambda w: f"results/{w.dataset}{w.seed}/{w.threat}/eval/{w.classifier}/all",
        split="all",


# The merge of a classifier's suite also writes its per-point worst case (its robust accuracy) when the suite is
# every attack run on it; the mixing network's and the ERA composites' worst cases add their adaptive attacks
# (rule attacks_worst).
rule attacks_merge:
    """Merge a classifier's evaluation shards at one threat into per-evaluation records and their worst case."""
    input:
        evaluation_shards(SUITE),
    output:
        evaluation_outputs(SUITE),
        worst="results/{dataset}{seed}/{threat}/eval/{classifier}/worst.csv",
        worst_meta="results/{dataset}{seed}/{threat}/eval/{classifier}/worst.json",
    log:
        "logs/{dataset}{seed}/{threat}/eval/{classifier}/attacks-merge.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/eval/{classifier}/attacks-merge.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=THREAT_RE,
        classifier=SUITE_ONLY,
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        threat=lambda w: threat_json(w.threat),
        attacks=" ".join(SUITE),
        evaluations=evaluation_params(SUITE),
        out_dir=lambda w: f"results/{w.dataset}{w.seed}/{w.threat}/eval/{w.classifier}",
        worst=lambda w, output: f"--worst {output.worst}",
    shell:
        "tradeoff merge attacks --name {wildcards.classifier} --attacks {params.attacks} "
        "--threat {params.threat:q} --params {params.evaluations:q} --out-dir {params.out_dir} {params.worst} "
        "{input} 2> {log}"


use rule attacks_merge as attacks_adaptive_merge with:
    """Merge the evaluation shards of a classifier with adaptive attacks of its own (its worst case waits
    for them)."""
    output:
        evaluation_outputs(SUITE),
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=THREAT_RE,
        classifier=WITH_ADAPTIVE,
    params:
        threat=lambda w: threat_json(w.threat),
        attacks=" ".join(SUITE),
        evaluations=evaluation_params(SUITE),
        out_dir=lambda w: f"results/{w.dataset}{w.seed}/{w.threat}/eval/{w.classifier}",
        worst="",


use rule attacks_merge as attacks_sweep_merge with:
    """Merge a classifier's ε-sweep shards at one threat."""
    input:
        evaluation_shards([SWEEP]),
    output:
        evaluation_outputs([SWEEP]),
    log:
        "logs/{dataset}{seed}/{threat}/eval/{classifier}/eps-sweep-merge.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/eval/{classifier}/eps-sweep-merge.tsv"
    params:
        threat=lambda w: threat_json(w.threat),
        attacks=SWEEP,
        evaluations=evaluation_params([SWEEP]),
        out_dir=lambda w: f"results/{w.dataset}{w.seed}/{w.threat}/eval/{w.classifier}",
        worst="",


use rule attacks_merge as attacks_whole_merge with:
    """Merge a classifier's whole-test-set evaluation shards at one threat."""
    input:
        whole_test_shards,
    output:
        whole_test_outputs,
    log:
        "logs/{dataset}{seed}/{threat}/eval/{classifier}/all/merge.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/eval/{classifier}/all/merge.tsv"
    params:
        threat=lambda w: threat_json(w.threat),
        attacks=" ".join(WHOLE_TEST),
        evaluations=evaluation_params(WHOLE_TEST),
        out_dir=lambda w: f"results/{w.dataset}{w.seed}/{w.threat}/eval/{w.classifier}/all",
        worst="",


rule attacks_worst:
    """Per point, the worst case over every attack run on a classifier with adaptive attacks of its own at one
    threat (its robust accuracy)."""
    input:
        worst_inputs,
    output:
        records="results/{dataset}{seed}/{threat}/eval/{classifier}/worst.csv",
        meta="results/{dataset}{seed}/{threat}/eval/{classifier}/worst.json",
    log:
        "logs/{dataset}{seed}/{threat}/eval/{classifier}/worst.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/eval/{classifier}/worst.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=THREAT_RE,
        classifier=WITH_ADAPTIVE,
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        threat=lambda w: threat_json(w.threat),
    shell:
        "tradeoff attacks-worst --name {wildcards.classifier} --threat {params.threat:q} --out {output.records} "
        "{input} 2> {log}"


rule attacks_sanity:
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
        "tradeoff attacks-sanity --summary {input.summary} --params {params.checks:q} --out {output} 2> {log}"
