# Optional base models from the RobustBench model zoo (config `zoo.models`, none by default). Each zoo id
# becomes a classifier JSON of kind `zoo` (results/{dataset}/models/<id>.json + .pt) that every stage can use
# like a trained base model: the generic `evaluate` rule attacks it, and mixing.accurate / mixing.robust may
# name it (the mixing papers mix RobustBench models). Included before the stages that refer to its ids.

ZOO = config.get("zoo") or {}
ZOO_MODELS = dict(ZOO.get("models") or {})

if ZOO_MODELS:
    for _zid in ZOO_MODELS:
        if _zid in BASE_MODELS:
            raise WorkflowError(f"config error at zoo.models.{_zid}: the id is already a model in models")

    CLASSIFIER_DEPS.append((r"|".join(re.escape(z) for z in ZOO_MODELS),
                            lambda dataset, m: [f"results/{dataset}/models/{m.group(0)}.pt"]))

    # A download, not compute: runs on the submitting node (compute nodes of a cluster often have no
    # internet) and only once, since its outputs stay until the config entry changes.
    localrules: zoo_fetch

    rule zoo_fetch:
        output:
            spec="results/{dataset}/models/{zoo}.json",
            weights="results/{dataset}/models/{zoo}.pt",
        wildcard_constraints:
            dataset=re.escape(DATASET),
            zoo="|".join(re.escape(z) for z in ZOO_MODELS),
        params:
            entry=lambda w: J(ZOO_MODELS[w.zoo]),
            model_dir=ZOO.get("dir", "data/robustbench"),
        log:
            "logs/{dataset}/zoo/{zoo}.log",
        benchmark:
            "results/benchmarks/{dataset}/zoo/{zoo}.tsv"
        threads: 1
        resources:
            **{**LIGHT, "mem_mb": 8000, "runtime": 60},
        shell:
            "tradeoff zoo-fetch --dataset {wildcards.dataset} --name {wildcards.zoo} --entry {params.entry:q} "
            "--model-dir {params.model_dir:q} --out {output.spec} 2> {log}"

    # every zoo model is evaluated under the same attacks as the trained base models
    SUMMARY_INPUTS.extend(eval_path(DATASET, z, a) for z in ZOO_MODELS for a in config["attacks"]["run"])
