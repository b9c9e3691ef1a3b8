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
ERA = config["era"]
ERA_COMP = ERA["composite"]
ERA_ROBUST, ERA_STANDARD = ERA_COMP["robust"], ERA_COMP["standard"]
ERA_THREATS = threat_ids(ERA["threats"])
ERA_COMPOSITE = "era-composite"
# composite id → its robust branch
ERA_COMPOSITES = {ERA_COMPOSITE: ERA_ROBUST, **{f"{ERA_COMPOSITE}-{b}": b for b in ERA_COMP["compare"]}}
# every model with robustness records: the reported ones, the branches and the standard trunk
ERA_RECORD_MODELS = list(dict.fromkeys([*ERA["models"], *ERA_COMPOSITES.values(), ERA_STANDARD]))
# the strong robustness test: the robustness records' attack (`combine` names the label attacks whose records
# it joins), also the composite's sound-selection check at 2ε
ERA_STRONG = {k: v for k, v in ERA["robustness"].items() if k not in ("combine", "attack_correct")}
ERA_TABLE_CLASSIFIERS = [*ERA["models"], *ERA_COMPOSITES]
# the records of the robustness and the composites' evaluation ({dataset}, {threat}, {classifier|composite} open)
ERA_ROBUSTNESS_RECORDS = "results/{dataset}/{threat}/eval/{classifier}/robustness.csv"
ERA_COMPOSITE_RECORDS = "results/{dataset}/{threat}/eval/{composite}/adaptive.csv"

# gauss3: the standard, TRADES and ERA models of `models`, retrained as MLPs on the 2-D data
GAUSS3 = "gauss3"
G3 = ERA["gauss3"]
G3_MODELS = ["standard", "trades", "era"]
G3_THREAT = {"norm": "Linf", "eps": float(G3["eps"])}


def era_robustness_path(dataset, threat, model):
    if threat is None:  # gauss3: one threat of its own
        return f"results/{dataset}/eval/{model}/robustness.csv"
    return eval_path(dataset, threat, model, "robustness")


def era_composite_inputs(dataset, threat, match):
    branch = ERA_COMPOSITES[match.group(0)]
    return [*classifier_inputs(dataset, threat, branch), *classifier_inputs(dataset, threat, ERA_STANDARD)]


CLASSIFIER_DEPS.append((alternatives(ERA_COMPOSITES), era_composite_inputs))


def g3_train_params(model):
    overrides = G3["finetune"] if config["models"][model].get("init") else G3["train"]
    # gauss3 models are MLPs on 2-D points: no image augmentation, whatever the shared loop (a CIFAR preset) says
    return {**config["train"], **overrides, "augment": "none"}


def g3_train_inputs(w):
    inputs = {"data": data_path(GAUSS3)}
    init = config["models"][w.g3model].get("init")
    if init:
        inputs["init"] = f"results/{GAUSS3}/models/{init}.json"
        inputs["init_weights"] = f"results/{GAUSS3}/models/{init}.pt"
    return inputs


def era_table_args(w, input, output):
    return J(
        {
            "summary_path": input.summary,
            "dataset": DATASET,
            "threat": THREATS[w.threat],
            "classifiers": ERA_TABLE_CLASSIFIERS,
            "table_out": output.table,
        }
    )


def era_records():
    records = [era_robustness_path(DATASET, t, m) for t in ERA_THREATS for m in ERA_RECORD_MODELS]
    composites = [eval_path(DATASET, t, c, "adaptive") for t in ERA_THREATS for c in ERA_COMPOSITES]
    return records + composites + [era_robustness_path(GAUSS3, None, m) for m in G3_MODELS]


STAGE_RECORDS.append(era_records)


# clean accuracy, robust accuracy, robust inaccuracy and selection rate per classifier at one threat
FIGURES["era"] = dict(
    cli="era",
    out="results/figures/{threat}/era_tradeoff.png",
    threats=ERA_THREATS,
    inputs=lambda w: {"summary": "results/summary.csv"},
    args=era_table_args,
    caption="era_tradeoff.rst",
    category="ERA and abstain",
    extra={
        "table": figure_report("results/tables/{threat}/era.csv", "era_table.rst", "ERA and abstain"),
        "markdown": "results/tables/{threat}/era.md",
    },
)

# decision regions of the gauss3 models, with the test points
FIGURES["era_gauss3"] = dict(
    cli="era-gauss3",
    out="results/figures/era_gauss3.png",
    inputs=lambda w: {
        "records": [era_robustness_path(GAUSS3, None, m) for m in G3_MODELS],
        "grids": [f"results/gauss3/eval/{m}/grid.csv" for m in G3_MODELS],
    },
    args=lambda w, input: J(
        {
            "records": dict(zip(G3_MODELS, input.records)),
            "grids": dict(zip(G3_MODELS, input.grids)),
            "order": G3_MODELS,
        }
    ),
    caption="era_gauss3.rst",
    category="ERA and abstain",
)


localrules:
    era_composite_spec,


rule era_composite_spec:
    """The classifier JSON of a composite: a robust branch where the selector accepts, the standard model elsewhere."""
    input:
        data=lambda w: data_path(w.dataset),
        robust=lambda w: model_json(w.dataset, w.threat, ERA_COMPOSITES[w.composite]),
        standard=lambda w: model_json(w.dataset, w.threat, ERA_STANDARD),
    output:
        "results/{dataset}/{threat}/models/{composite}.json",
    log:
        "logs/{dataset}/{threat}/era/{composite}-spec.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/era/{composite}-spec.tsv"
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
        selector=J({**ERA_COMP["selector"], "seed": SEED}),
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
        classifier=lambda w: classifier_inputs(w.dataset, w.threat, w.classifier),
        combine=lambda w: [eval_path(w.dataset, w.threat, w.classifier, a) for a in ERA["robustness"]["combine"]],
    output:
        records=point_shard_output(ERA_ROBUSTNESS_RECORDS),
        meta=point_shard_output(ERA_ROBUSTNESS_RECORDS, "json"),
    log:
        "logs/{dataset}/{threat}/eval/{classifier}/robustness-{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/eval/{classifier}/robustness-{shard}-of-{shards}.tsv"
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
        seed=SEED,
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
        records="results/{dataset}/{threat}/eval/{classifier}/robustness.csv",
        meta="results/{dataset}/{threat}/eval/{classifier}/robustness.json",
    log:
        "logs/{dataset}/{threat}/eval/{classifier}/robustness-merge.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/eval/{classifier}/robustness-merge.tsv"
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
        classifier=lambda w: classifier_inputs(w.dataset, w.threat, w.composite),
        robust_records=lambda w: era_robustness_path(w.dataset, w.threat, ERA_COMPOSITES[w.composite]),
        standard_records=lambda w: era_robustness_path(w.dataset, w.threat, ERA_STANDARD),
    output:
        records=point_shard_output(ERA_COMPOSITE_RECORDS),
        meta=point_shard_output(ERA_COMPOSITE_RECORDS, "json"),
    log:
        "logs/{dataset}/{threat}/eval/{composite}/adaptive-{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/eval/{composite}/adaptive-{shard}-of-{shards}.tsv"
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
        seed=SEED,
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
        records="results/{dataset}/{threat}/eval/{composite}/adaptive.csv",
        meta="results/{dataset}/{threat}/eval/{composite}/adaptive.json",
    log:
        "logs/{dataset}/{threat}/eval/{composite}/adaptive-merge.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/eval/{composite}/adaptive-merge.tsv"
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
        spec="results/gauss3/models/{g3model}.json",
        weights="results/gauss3/models/{g3model}.pt",
    log:
        "logs/gauss3/train/{g3model}.log",
    benchmark:
        "results/benchmarks/gauss3/train/{g3model}.tsv"
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
        seed=SEED,
        checkpoint="results/gauss3/checkpoints/{g3model}.pt",
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
        spec="results/gauss3/models/{g3model}.json",
        weights="results/gauss3/models/{g3model}.pt",
    output:
        records="results/gauss3/eval/{g3model}/robustness.csv",
        meta="results/gauss3/eval/{g3model}/robustness.json",
        grid="results/gauss3/eval/{g3model}/grid.csv",
        grid_meta="results/gauss3/eval/{g3model}/grid.json",
    log:
        "logs/gauss3/eval/{g3model}/robustness.log",
    benchmark:
        "results/benchmarks/gauss3/eval/{g3model}/robustness.tsv"
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
        seed=SEED,
    shell:
        tradeoff_shell(
            "era-robustness",
            "--seed {params.seed} --data {input.data} --classifier {input.spec} "
            "--name {wildcards.g3model} --threat {params.threat:q} --params {params.attack:q} --clean-row "
            "--coordinates --grid-out {output.grid} --grid-size {params.grid} --out {output.records} 2> {log}",
        )
