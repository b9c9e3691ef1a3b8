# The data stage: fixed train / calib / test splits of every dataset, from the seed.


include: "helpers/data.smk"


localrules:
    data,


rule data:
    """Split a dataset into fixed train / calibration / test sets (downloading it when missing)."""
    output:
        data="results/{dataset}/data.pt",
        meta="results/{dataset}/data.json",
    log:
        "logs/{dataset}/data.log",
    benchmark:
        "results/benchmarks/{dataset}/data.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        section=lambda w: J(dataset_params(w.dataset)),
        seed=SEED,
    shell:
        "tradeoff data --dataset {wildcards.dataset} --params {params.section:q} "
        "--seed {params.seed} --out {output.data} 2> {log}"


# Runs like a heavy job (same GPU request), so that it checks what the heavy jobs will get.
rule check_env:
    """Record torch, CUDA and the devices a heavy job sees; fail when it asked for a GPU it cannot see."""
    output:
        "results/env/{dataset}.json",
    log:
        "logs/{dataset}/check_env.log",
    benchmark:
        "results/benchmarks/{dataset}/check_env.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **HEAVY,
    shell:
        tradeoff_shell("check-env", "--out {output} 2> {log}")
