# Certification: randomized smoothing (Cohen et al.) of each gauss_aug-<σ> model (trained by the generic
# `train_shared` rule, see BASE_MODELS in common.smk), in resumable shards; the merge computes Cohen's records
# and the mixed classifier's certificates (Theorems 1 and 2) from the same Monte-Carlo counts. ℓ2
# certificates of threat-free models: no threat in these paths.


include: "helpers/certify.smk"


rule certify_shard:
    """Monte-Carlo counts of the smoothed gauss_aug-σ model on one shard of the test points (resumable)."""
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, w.seed, None, f"gauss_aug-{w.sigma}"),
    output:
        records="results/{dataset}{seed}/certify/gauss_aug-{sigma}/shards/{shard}-of-{shards}.csv",
        meta="results/{dataset}{seed}/certify/gauss_aug-{sigma}/shards/{shard}-of-{shards}.json",
    log:
        "logs/{dataset}{seed}/certify/gauss_aug-{sigma}/shard-{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/certify/gauss_aug-{sigma}/shard-{shard}-of-{shards}.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        sigma=alternatives(CERT_SIGMAS),
        shard=r"\d+",
        shards=r"\d+",
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        sigma=lambda w: CERT_SIGMAS[w.sigma],
        cert=J({k: CERT[k] for k in ("n0", "n", "alpha", "points", "batch_size")}),
        seed=seed_param,
    shell:
        tradeoff_shell(
            "certify",
            "--seed {params.seed} --data {input.data} "
            "--classifier {input.classifier[0]} --sigma {params.sigma} --params {params.cert:q} "
            "--shard {wildcards.shard} --shards {wildcards.shards} --out {output.records} 2> {log}",
        )


rule certify_merge:
    """Cohen et al.'s certified radii and the mixed classifier's certificates from the shards' counts."""
    input:
        data=lambda w: data_path(w.dataset),
        standard=lambda w: classifier_inputs(w.dataset, w.seed, None, CERT["mix_standard"]),
        shards=certify_shard_paths,
    output:
        rs="results/{dataset}{seed}/certify/gauss_aug-{sigma}/rs.csv",
        rs_meta="results/{dataset}{seed}/certify/gauss_aug-{sigma}/rs.json",
        mixed="results/{dataset}{seed}/certify/gauss_aug-{sigma}/mixed.csv",
        mixed_meta="results/{dataset}{seed}/certify/gauss_aug-{sigma}/mixed.json",
    log:
        "logs/{dataset}{seed}/certify/gauss_aug-{sigma}/merge.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/certify/gauss_aug-{sigma}/merge.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        sigma=alternatives(CERT_SIGMAS),
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        sigma=lambda w: CERT_SIGMAS[w.sigma],
        cert=J({k: CERT[k] for k in ("n0", "n", "alpha", "points", "radii", "mix_alphas")}),
        seed=seed_param,
    shell:
        tradeoff_shell(
            "merge certify",
            "--seed {params.seed} --data {input.data} "
            "--name gauss_aug-{wildcards.sigma} --standard {input.standard[0]} --sigma {params.sigma} "
            "--params {params.cert:q} --out-rs {output.rs} --out-mixed {output.mixed} {input.shards} 2> {log}",
            runtime=LIGHT_RUNTIME_ARGS,
        )
