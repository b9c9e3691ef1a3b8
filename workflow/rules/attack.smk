# Attack evaluation: any classifier (base or composite) at any threat, attacked end to end, batch by batch
# (the batch is the unit of seeding, sharding and resuming); the per-point worst case over every attack run
# on a classifier (its reported robust accuracy); the masked-gradient sanity checks on the summary
# (Carlini et al. 2019).


localrules:
    worst,
    sanity,


if ATTACK_SHARDS == 1:

    rule evaluate:
        """Attack a classifier at one threat with every evaluation of `attacks.run` in turn (AutoAttack on the
        points PGD and the margin attack left standing) and write each one's per-sample records."""
        input:
            data=lambda w: data_path(w.dataset),
            classifier=lambda w: classifier_inputs(w.dataset, w.threat, w.classifier),
        output:
            evaluation_outputs(SUITE),
        log:
            "logs/{dataset}/{threat}/eval/{classifier}/attacks.log",
        benchmark:
            "results/benchmarks/{dataset}/{threat}/eval/{classifier}/attacks.tsv"
        wildcard_constraints:
            dataset=re.escape(DATASET),
            threat=THREAT_RE,
        conda:
            "../../envs/torch.yaml"
        threads: THREADS
        resources:
            **HEAVY,
        params:
            threat=lambda w: threat_json(w.threat),
            attacks=" ".join(SUITE),
            evaluations=evaluation_params(SUITE),
            batch_size=ATTACK_BATCH,
            seed=SEED,
            out_dir=lambda w: f"results/{w.dataset}/{w.threat}/eval/{w.classifier}",
        shell:
            tradeoff_shell(
                "evaluate",
                "--seed {params.seed} --data {input.data} --classifier {input.classifier[0]} "
                "--name {wildcards.classifier} --out-dir {params.out_dir} --attacks {params.attacks} "
                "--threat {params.threat:q} --params {params.evaluations:q} --batch-size {params.batch_size} "
                "2> {log}",
            )

    # The fixed-α mixtures of one mode: one job evaluates every α (one start-up, the base models loaded once).
    rule evaluate_mixtures:
        """Attack every fixed-α mixture of one mode at one threat (as `evaluate` does each classifier)."""
        input:
            data=lambda w: data_path(w.dataset),
            specs=lambda w: [model_json(w.dataset, w.threat, c) for c in mix_ids(w.mode)],
            bases=lambda w: mix_base_inputs(w.dataset, w.threat),
        output:
            [p for c in mix_ids("{mode}") for p in evaluation_outputs(SUITE, c)],
        log:
            "logs/{dataset}/{threat}/eval/mix-{mode}.log",
        benchmark:
            "results/benchmarks/{dataset}/{threat}/eval/mix-{mode}.tsv"
        wildcard_constraints:
            dataset=re.escape(DATASET),
            threat=THREAT_RE,
            mode="prob|logit",
        conda:
            "../../envs/torch.yaml"
        threads: THREADS
        resources:
            **HEAVY,
        params:
            threat=lambda w: threat_json(w.threat),
            attacks=" ".join(SUITE),
            evaluations=evaluation_params(SUITE),
            batch_size=ATTACK_BATCH,
            seed=SEED,
            names=lambda w: " ".join(mix_ids(w.mode)),
            out_dirs=lambda w: " ".join(f"results/{w.dataset}/{w.threat}/eval/{c}" for c in mix_ids(w.mode)),
        shell:
            tradeoff_shell(
                "evaluate",
                "--seed {params.seed} --data {input.data} --classifier {input.specs} --name {params.names} "
                "--out-dir {params.out_dirs} --attacks {params.attacks} --threat {params.threat:q} "
                "--params {params.evaluations:q} --batch-size {params.batch_size} 2> {log}",
            )

    ruleorder: evaluate_mixtures > evaluate

    rule evaluate_sweep:
        """The ε-sweep of a classifier at one threat (margin PGD at multiples of ε, for the sanity checks)."""
        input:
            data=lambda w: data_path(w.dataset),
            classifier=lambda w: classifier_inputs(w.dataset, w.threat, w.classifier),
        output:
            evaluation_outputs([SWEEP]),
        log:
            "logs/{dataset}/{threat}/eval/{classifier}/eps-sweep.log",
        benchmark:
            "results/benchmarks/{dataset}/{threat}/eval/{classifier}/eps-sweep.tsv"
        wildcard_constraints:
            dataset=re.escape(DATASET),
            threat=THREAT_RE,
        conda:
            "../../envs/torch.yaml"
        threads: THREADS
        resources:
            **HEAVY,
        params:
            threat=lambda w: threat_json(w.threat),
            evaluations=evaluation_params([SWEEP]),
            batch_size=ATTACK_BATCH,
            seed=SEED,
            out_dir=lambda w: f"results/{w.dataset}/{w.threat}/eval/{w.classifier}",
        shell:
            tradeoff_shell(
                "evaluate",
                "--seed {params.seed} --data {input.data} --classifier {input.classifier[0]} "
                "--name {wildcards.classifier} --out-dir {params.out_dir} --attacks eps-sweep "
                "--threat {params.threat:q} --params {params.evaluations:q} --batch-size {params.batch_size} "
                "2> {log}",
            )

else:

    localrules:
        evaluate_merge,
        evaluate_sweep_merge,

    # Sharded: each shard (every ATTACK_SHARDS-th batch of test points) is a separate, resumable job (a GPU
    # job on a cluster); a light job merges the shards into the records one unsharded job writes.
    rule evaluate_shard:
        """One shard of a classifier's evaluations at one threat (`group`: the evaluations joined by '+')."""
        input:
            data=lambda w: data_path(w.dataset),
            classifier=lambda w: classifier_inputs(w.dataset, w.threat, w.classifier),
        output:
            records="results/{dataset}/{threat}/eval/{classifier}/shards/{group}-{shard}-of-{shards}.csv",
            meta="results/{dataset}/{threat}/eval/{classifier}/shards/{group}-{shard}-of-{shards}.json",
        log:
            "logs/{dataset}/{threat}/eval/{classifier}/{group}-{shard}-of-{shards}.log",
        benchmark:
            "results/benchmarks/{dataset}/{threat}/eval/{classifier}/{group}-{shard}-of-{shards}.tsv"
        wildcard_constraints:
            dataset=re.escape(DATASET),
            threat=THREAT_RE,
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
            seed=SEED,
            out_dir=lambda w: f"results/{w.dataset}/{w.threat}/eval/{w.classifier}",
        shell:
            tradeoff_shell(
                "evaluate",
                "--seed {params.seed} --data {input.data} --classifier {input.classifier[0]} "
                "--name {wildcards.classifier} --out-dir {params.out_dir} --attacks {params.attacks} "
                "--threat {params.threat:q} --params {params.evaluations:q} --batch-size {params.batch_size} "
                "--shard {wildcards.shard} --shards {wildcards.shards} 2> {log}",
            )

    rule evaluate_merge:
        """Merge a classifier's evaluation shards at one threat into per-evaluation records."""
        input:
            evaluation_shards(SUITE),
        output:
            evaluation_outputs(SUITE),
        log:
            "logs/{dataset}/{threat}/eval/{classifier}/attacks-merge.log",
        benchmark:
            "results/benchmarks/{dataset}/{threat}/eval/{classifier}/attacks-merge.tsv"
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
            attacks=" ".join(SUITE),
            evaluations=evaluation_params(SUITE),
            out_dir=lambda w: f"results/{w.dataset}/{w.threat}/eval/{w.classifier}",
        shell:
            "tradeoff evaluate-merge --name {wildcards.classifier} --attacks {params.attacks} "
            "--threat {params.threat:q} --params {params.evaluations:q} --out-dir {params.out_dir} "
            "{input} 2> {log}"

    use rule evaluate_merge as evaluate_sweep_merge with:
        """Merge a classifier's ε-sweep shards at one threat."""
        input:
            evaluation_shards([SWEEP]),
        output:
            evaluation_outputs([SWEEP]),
        log:
            "logs/{dataset}/{threat}/eval/{classifier}/eps-sweep-merge.log",
        benchmark:
            "results/benchmarks/{dataset}/{threat}/eval/{classifier}/eps-sweep-merge.tsv"
        params:
            threat=lambda w: threat_json(w.threat),
            attacks=SWEEP,
            evaluations=evaluation_params([SWEEP]),
            out_dir=lambda w: f"results/{w.dataset}/{w.threat}/eval/{w.classifier}",


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


rule evaluate_whole_test:
    """Clean and PGD accuracy of a base model on the whole official test set, when the attacked test split is a
    seeded subsample of it (`attacks.whole_test`; evaluation ids <attack>-all)."""
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, w.threat, w.classifier),
    output:
        [
            f"results/{{dataset}}/{{threat}}/eval/{{classifier}}/all/{a}.{ext}"
            for a in WHOLE_TEST
            for ext in ("csv", "json")
        ],
    log:
        "logs/{dataset}/{threat}/eval/{classifier}/all.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/eval/{classifier}/all.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=THREAT_RE,
        classifier="[^/]+",
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        threat=lambda w: threat_json(w.threat),
        attacks=" ".join(WHOLE_TEST),
        evaluations=evaluation_params(WHOLE_TEST),
        batch_size=ATTACK_BATCH,
        seed=SEED,
        out_dir=lambda w: f"results/{w.dataset}/{w.threat}/eval/{w.classifier}/all",
    shell:
        tradeoff_shell(
            "evaluate",
            "--split all --seed {params.seed} --data {input.data} --classifier {input.classifier[0]} "
            "--name {wildcards.classifier} --out-dir {params.out_dir} --attacks {params.attacks} "
            "--threat {params.threat:q} --params {params.evaluations:q} --batch-size {params.batch_size} "
            "2> {log}",
        )


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
