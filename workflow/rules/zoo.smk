# Optional base models from the RobustBench model zoo (config `zoo.models`, none by default). Each zoo id
# becomes a classifier JSON of kind `zoo` (results/{dataset}/models/<id>.json + .pt) that every stage can use
# like a trained base model: the generic `attacks` rules attack it (see attack_records() in attacks.smk), and
# mixing.accurate / mixing.robust may name it (the mixing papers mix RobustBench models).

if ZOO_MODELS:

    # A download, not compute: runs on the submitting node (compute nodes of a cluster often have no
    # internet) and only once, since its outputs stay until the config entry changes.
    localrules:
        zoo,

    rule zoo:
        """Download a RobustBench model and write it as a classifier of kind `zoo`."""
        output:
            spec="results/{dataset}/models/{zoo}.json",
            weights="results/{dataset}/models/{zoo}.pt",
        log:
            "logs/{dataset}/zoo/{zoo}.log",
        benchmark:
            "results/benchmarks/{dataset}/zoo/{zoo}.tsv"
        wildcard_constraints:
            dataset=re.escape(DATASET),
            zoo=alternatives(ZOO_MODELS),
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            **{**LIGHT, "mem_mb": 8000, "runtime": 60},
        params:
            entry=lambda w: J(ZOO_MODELS[w.zoo]),
            model_dir=ZOO.get("dir", "data/robustbench"),
        shell:
            "tradeoff zoo --dataset {wildcards.dataset} --name {wildcards.zoo} --entry {params.entry:q} "
            "--model-dir {params.model_dir:q} --out {output.spec} 2> {log}"
