# Certification: randomized smoothing (Cohen et al.) of each gauss_aug-<σ> model (trained by the generic
# `train` rule, see BASE_MODELS in common.smk), in resumable shards; the merge computes Cohen's records
# and the mixed classifier's certificates (Theorems 1 and 2) from the same Monte-Carlo counts.

CERT = config["certify"]
CERT_SIGMAS = {fmt(s): s for s in CERT["sigmas"]}  # σ as printed in paths → σ as in the config
CERT_SHARDS = int(CERT["shards"])
CERT_DIR = "results/{dataset}/certify/gauss_aug-{sigma}"
# The merge only runs the standard model on the clean test points: a small CPU job, never a GPU one.
LIGHT_RUNTIME_ARGS = "--threads 1 --device cpu --gpus 0 --no-progress"

localrules: figure_certify_rs, figure_certify_mixed


def certify_shard_paths(w):
    return expand(CERT_DIR + "/shards/{shard}-of-{shards}.csv", dataset=w.dataset, sigma=w.sigma,
                  shard=range(CERT_SHARDS), shards=CERT_SHARDS)


rule certify_shard:
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, f"gauss_aug-{w.sigma}"),
    output:
        records=CERT_DIR + "/shards/{shard}-of-{shards}.csv",
        meta=CERT_DIR + "/shards/{shard}-of-{shards}.json",
    wildcard_constraints:
        dataset=re.escape(DATASET),
        sigma="|".join(re.escape(s) for s in CERT_SIGMAS),
        shard=r"\d+",
        shards=r"\d+",
    params:
        sigma=lambda w: CERT_SIGMAS[w.sigma],
        cert=J({k: CERT[k] for k in ("n0", "n", "alpha", "points", "batch_size")}),
        seed=SEED,
    log:
        "logs/{dataset}/certify/gauss_aug-{sigma}/shard-{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/{dataset}/certify/gauss_aug-{sigma}/shard-{shard}-of-{shards}.tsv"
    threads: THREADS
    resources:
        **HEAVY,
    shell:
        "tradeoff certify-shard {RUNTIME_ARGS} --seed {params.seed} --data {input.data} "
        "--classifier {input.classifier[0]} --sigma {params.sigma} --params {params.cert:q} "
        "--shard {wildcards.shard} --shards {wildcards.shards} --out {output.records} 2> {log}"


rule certify_merge:
    input:
        data=lambda w: data_path(w.dataset),
        standard=lambda w: classifier_inputs(w.dataset, CERT["mix_standard"]),
        shards=certify_shard_paths,
    output:
        rs=CERT_DIR + "/rs.csv",
        rs_meta=CERT_DIR + "/rs.json",
        mixed=CERT_DIR + "/mixed.csv",
        mixed_meta=CERT_DIR + "/mixed.json",
    wildcard_constraints:
        dataset=re.escape(DATASET),
        sigma="|".join(re.escape(s) for s in CERT_SIGMAS),
    params:
        sigma=lambda w: CERT_SIGMAS[w.sigma],
        cert=J({k: CERT[k] for k in ("n0", "n", "alpha", "points", "radii", "mix_alphas")}),
        seed=SEED,
    log:
        "logs/{dataset}/certify/gauss_aug-{sigma}/merge.log",
    benchmark:
        "results/benchmarks/{dataset}/certify/gauss_aug-{sigma}/merge.tsv"
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff certify-merge {LIGHT_RUNTIME_ARGS} --seed {params.seed} --data {input.data} "
        "--name gauss_aug-{wildcards.sigma} --standard {input.standard[0]} --sigma {params.sigma} "
        "--params {params.cert:q} --out-rs {output.rs} --out-mixed {output.mixed} {input.shards} 2> {log}"


CERT_RS = [CERT_DIR.format(dataset=DATASET, sigma=s) + "/rs.csv" for s in CERT_SIGMAS]
CERT_MIXED = [CERT_DIR.format(dataset=DATASET, sigma=s) + "/mixed.csv" for s in CERT_SIGMAS]
SUMMARY_INPUTS.extend(CERT_RS + CERT_MIXED)


rule figure_certify_rs:
    input:
        records=CERT_RS,
    output:
        png=report("results/figures/certify_rs.png", caption="../report/certify_rs.rst",
                   category="Certification"),
        pdf="results/figures/certify_rs.pdf",
    params:
        args=lambda w, input: J({"records": list(input.records), "sigmas": list(CERT_SIGMAS.values()),
                                 "dataset": DATASET}),
    log:
        "logs/figures/certify_rs.log",
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff figure certify-rs --out {output.png} --args {params.args:q} 2> {log}"


rule figure_certify_mixed:
    input:
        rs=CERT_RS,
        mixed=CERT_MIXED,
    output:
        png=report("results/figures/certify_mixed.png", caption="../report/certify_mixed.rst",
                   category="Certification"),
        pdf="results/figures/certify_mixed.pdf",
    params:
        args=lambda w, input: J({"rs_records": list(input.rs), "mixed_records": list(input.mixed),
                                 "sigmas": list(CERT_SIGMAS.values()), "dataset": DATASET}),
    log:
        "logs/figures/certify_mixed.log",
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff figure certify-mixed --out {output.png} --args {params.args:q} 2> {log}"


FIGURES.extend(["results/figures/certify_rs.png", "results/figures/certify_mixed.png"])
