# ERA and the robustness-indicator composition (Merkli et al. 2023, "Just Avoid Robust Inaccuracy"), at each
# threat of `era.threats`: robust accuracy / robust inaccuracy of the base models (attack towards each model's
# own prediction); the compositional classifiers (a robust branch where the selector accepts the input, the
# standard model elsewhere) with the ERA model as the branch (era-composite) and, as the paper compares them,
# each model of `era.composite.compare` behind the same selector and attack (era-composite-<model>), evaluated
# by joining records and by an end-to-end adaptive attack; and the decision-region picture on the 2-D dataset
# gauss3 (its own dataset, models and ε, independent of config["dataset"] and `threats`).
# The `era` model itself is trained by the generic `train` rule (config `models: era`, init: trades).
# The robustness records and the composites' evaluations each run as `attacks.shards` shard jobs (every n-th
# chunk of test points, n = 1 included) and a light `tradeoff merge` job that writes the records.


include: "helpers/era.smk"


localrules:
    era_composite_spec,


rule era_composite_spec:
    """The classifier JSON of a composite: a robust branch where the selector accepts, the standard model elsewhere."""
    input:
        data=lambda w: data_path(w.dataset),
        robust=lambda w: model_json(w.dataset, w.seed, w.threat, ERA_COMPOSITES[w.composite]),
        standard=lambda w: model_json(w.dataset, w.seed, w.threat, ERA_STANDARD),
    output:
        "results/{dataset}{seed}/{threat}/models/{composite}.json",
    log:
        "logs/{dataset}{seed}/{threat}/era/{composite}-spec.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/era/{composite}-spec.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=alternatives(ERA_THREATS),
        composite=alternatives(ERA_COMPOSITES),
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        selector=lambda w: J({**ERA_COMP["selector"], "seed": seed_param(w)}),
        threat=lambda w: threat_json(w.threat),
    shell:
        "tradeoff era-composite-spec --data {input.data} --robust {input.robust} --standard {input.standard} "
        "--selector {params.selector:q} --threat {params.threat:q} --name {wildcards.composite} --out {output} 2> {log}"


localrules:
    era_robustness_merge,
    era_composite_merge,


rule era_robustness_shard:
    """One shard of a base model's robustness records at one threat (every n-th chunk of points)."""
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, w.seed, w.threat, w.classifier),
        combine=lambda w: [
            eval_path(w.dataset, w.seed, w.threat, w.classifier, a) for a in ERA["robustness"]["combine"]
        ],
    output:
        records=point_shard_output(ERA_ROBUSTNESS_RECORDS),
        meta=point_shard_output(ERA_ROBUSTNESS_RECORDS, "json"),
    log:
        "logs/{dataset}{seed}/{threat}/eval/{classifier}/robustness-{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/eval/{classifier}/robustness-{shard}-of-{shards}.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=alternatives(ERA_THREATS),
        classifier=alternatives(BASE_MODELS),
        shard=r"\d+",
        shards=str(ATTACK_SHARDS),
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        threat=lambda w: threat_json(w.threat),
        attack=J(ERA_STRONG),
        decides="" if ERA["robustness"]["attack_correct"] else "--combine-decides-correct",
        batch_size=config["attacks"]["batch_size"],
        seed=seed_param,
        out=lambda w: ERA_ROBUSTNESS_RECORDS.format(**dict(w.items())),
    shell:
        tradeoff_shell(
            "era-robustness",
            "--seed {params.seed} --data {input.data} "
            "--classifier {input.classifier[0]} --name {wildcards.classifier} --threat {params.threat:q} "
            "--params {params.attack:q} --combine {input.combine} {params.decides} "
            "--batch-size {params.batch_size} --shard {wildcards.shard} --shards {wildcards.shards} "
            "--out {params.out} 2> {log}",
        )


rule era_robustness_merge:
    """Merge a base model's robustness shards at one threat into its robustness records."""
    input:
        point_shards(ERA_ROBUSTNESS_RECORDS),
    output:
        records="results/{dataset}{seed}/{threat}/eval/{classifier}/robustness.csv",
        meta="results/{dataset}{seed}/{threat}/eval/{classifier}/robustness.json",
    log:
        "logs/{dataset}{seed}/{threat}/eval/{classifier}/robustness-merge.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/eval/{classifier}/robustness-merge.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=alternatives(ERA_THREATS),
        classifier=alternatives(BASE_MODELS),
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff merge era-robustness --out {output.records} {input} 2> {log}"


rule era_composite_shard:
    """One shard of a composite's evaluation at one threat (every n-th chunk of points)."""
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, w.seed, w.threat, w.composite),
        robust_records=lambda w: era_robustness_path(w.dataset, w.seed, w.threat, ERA_COMPOSITES[w.composite]),
        standard_records=lambda w: era_robustness_path(w.dataset, w.seed, w.threat, ERA_STANDARD),
    output:
        records=point_shard_output(ERA_COMPOSITE_RECORDS),
        meta=point_shard_output(ERA_COMPOSITE_RECORDS, "json"),
    log:
        "logs/{dataset}{seed}/{threat}/eval/{composite}/adaptive-{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/eval/{composite}/adaptive-{shard}-of-{shards}.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=alternatives(ERA_THREATS),
        composite=alternatives(ERA_COMPOSITES),
        shard=r"\d+",
        shards=str(ATTACK_SHARDS),
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        attack=J(ERA_COMP["adaptive"]),
        suite=J(config["attacks"]["composite"]),
        strong=J(ERA_STRONG),
        batch_size=config["attacks"]["batch_size"],
        seed=seed_param,
        out=lambda w: ERA_COMPOSITE_RECORDS.format(**dict(w.items())),
    shell:
        tradeoff_shell(
            "era-composite",
            "--seed {params.seed} --data {input.data} "
            "--classifier {input.classifier[0]} --name {wildcards.composite} --robust-records {input.robust_records} "
            "--standard-records {input.standard_records} --params {params.attack:q} --suite {params.suite:q} "
            "--strong {params.strong:q} --batch-size {params.batch_size} --shard {wildcards.shard} "
            "--shards {wildcards.shards} --out {params.out} 2> {log}",
        )


rule era_composite_merge:
    """Merge a composite's evaluation shards at one threat into its records."""
    input:
        point_shards(ERA_COMPOSITE_RECORDS),
    output:
        records="results/{dataset}{seed}/{threat}/eval/{composite}/adaptive.csv",
        meta="results/{dataset}{seed}/{threat}/eval/{composite}/adaptive.json",
    log:
        "logs/{dataset}{seed}/{threat}/eval/{composite}/adaptive-merge.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/eval/{composite}/adaptive-merge.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=alternatives(ERA_THREATS),
        composite=alternatives(ERA_COMPOSITES),
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff merge era-composite --out {output.records} {input} 2> {log}"


rule era_gauss3_train:
    """Train the standard, TRADES or ERA model as an MLP on the 2-D gauss3 data."""
    input:
        unpack(g3_train_inputs),
    output:
        spec="results/gauss3{seed}/models/{g3model}.json",
        weights="results/gauss3{seed}/models/{g3model}.pt",
    log:
        "logs/gauss3{seed}/train/{g3model}.log",
    benchmark:
        "results/benchmarks/gauss3{seed}/train/{g3model}.tsv"
    wildcard_constraints:
        g3model=alternatives(G3_MODELS),
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        arch_options=J({"hidden": G3["hidden"]}),
        objective=lambda w: config["models"][w.g3model]["objective"],
        objective_params=lambda w: J(config["models"][w.g3model]["params"]),
        train=lambda w: J(g3_train_params(w.g3model)),
        threat=J(G3_THREAT),
        init=init_option,
        seed=seed_param,
        checkpoint="results/gauss3{seed}/checkpoints/{g3model}.pt",
    shell:
        tradeoff_shell(
            "train",
            "--seed {params.seed} --data {input.data} --name {wildcards.g3model} "
            "--arch mlp --arch-options {params.arch_options:q} --objective {params.objective} "
            "--objective-params {params.objective_params:q} --threat {params.threat:q} "
            "--train-params {params.train:q} {params.init} --checkpoint {params.checkpoint} "
            "--out {output.spec} 2> {log}",
        )


rule era_gauss3_robustness:
    """Robustness records of a gauss3 model, with its predictions on a grid (decision regions)."""
    input:
        data=data_path(GAUSS3),
        spec="results/gauss3{seed}/models/{g3model}.json",
        weights="results/gauss3{seed}/models/{g3model}.pt",
    output:
        records="results/gauss3{seed}/eval/{g3model}/robustness.csv",
        meta="results/gauss3{seed}/eval/{g3model}/robustness.json",
        grid="results/gauss3{seed}/eval/{g3model}/grid.csv",
        grid_meta="results/gauss3{seed}/eval/{g3model}/grid.json",
    log:
        "logs/gauss3{seed}/eval/{g3model}/robustness.log",
    benchmark:
        "results/benchmarks/gauss3{seed}/eval/{g3model}/robustness.tsv"
    wildcard_constraints:
        g3model=alternatives(G3_MODELS),
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        threat=J(G3_THREAT),
        attack=J(ERA_STRONG),
        grid=G3["grid"],
        seed=seed_param,
    shell:
        tradeoff_shell(
            "era-robustness",
            "--seed {params.seed} --data {input.data} --classifier {input.spec} "
            "--name {wildcards.g3model} --threat {params.threat:q} --params {params.attack:q} --clean-row "
            "--coordinates --grid-out {output.grid} --grid-size {params.grid} --out {output.records} 2> {log}",
        )
