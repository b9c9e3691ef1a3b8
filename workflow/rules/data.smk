# The DAG's "download" stage: fixed train / calib / test splits of every dataset, from the seed.


def dataset_params(dataset):
    section = dict(config["data"].get(dataset, {}))
    if dataset in ("mnist", "cifar10", "cifar100"):
        section.update(root=config["data"]["root"], download=config["data"]["download"])
    return section


rule prepare_data:
    output:
        data="results/{dataset}/data.pt",
        meta="results/{dataset}/data.json",
    params:
        section=lambda w: J(dataset_params(w.dataset)),
        seed=SEED,
    log:
        "logs/{dataset}/prepare_data.log",
    benchmark:
        "results/benchmarks/{dataset}/prepare_data.tsv"
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff prepare-data --dataset {wildcards.dataset} --params {params.section:q} "
        "--seed {params.seed} --out {output.data} 2> {log}"


rule check_env:
    # Runs like a heavy job (same GPU request): logs torch/CUDA and the devices the job sees, and fails
    # clearly when the job asked for a GPU it cannot see.
    output:
        "results/env/{dataset}.json",
    log:
        "logs/{dataset}/check_env.log",
    threads: 1
    resources:
        **HEAVY,
    shell:
        "tradeoff check-env {RUNTIME_ARGS} --out {output} 2> {log}"
