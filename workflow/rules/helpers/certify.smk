# The certify stage's constants, paths and helpers (its rules: workflow/rules/certify.smk).


CERT = config["certify"]
CERT_SIGMAS = {fmt(s): s for s in CERT["sigmas"]}  # σ as printed in paths → σ as in the config
CERT_SHARDS = int(CERT["shards"])
CERT_DIR = "results/{dataset}{seed}/certify/gauss_aug-{sigma}"  # the folder of one σ's records


def cert_records(seed, kind):
    """The `kind` records (rs or mixed) of every σ of training seed `seed` (its path segment)."""
    return [f"{CERT_DIR.format(dataset=DATASET, seed=seed, sigma=s)}/{kind}.csv" for s in CERT_SIGMAS]


def certify_shard_paths(w):
    return expand(
        "results/{dataset}{seed}/certify/gauss_aug-{sigma}/shards/{shard}-of-{shards}.csv",
        dataset=w.dataset,
        seed=w.seed,
        sigma=w.sigma,
        shard=range(CERT_SHARDS),
        shards=CERT_SHARDS,
    )


def certify_records(seed):
    return cert_records(seed, "rs") + cert_records(seed, "mixed")


STAGE_RECORDS.append(certify_records)


# certified accuracy against the ℓ2 radius of the smoothed models, one curve per σ
FIGURES["certify_rs"] = dict(
    cli="certify-rs",
    out="results/figures/certify_rs.png",
    inputs=lambda w: {"records": cert_records(FIGURE_SEED, "rs")},
    args=lambda w, input: J({"records": list(input.records), "sigmas": list(CERT_SIGMAS.values()), "dataset": DATASET}),
    caption="certify_rs.rst",
    category="Certification",
)

# certified accuracy against the radius of the mixed classifier for each α, beside smoothing alone
FIGURES["certify_mixed"] = dict(
    cli="certify-mixed",
    out="results/figures/certify_mixed.png",
    inputs=lambda w: {"rs": cert_records(FIGURE_SEED, "rs"), "mixed": cert_records(FIGURE_SEED, "mixed")},
    args=lambda w, input: J(
        {
            "rs_records": list(input.rs),
            "mixed_records": list(input.mixed),
            "sigmas": list(CERT_SIGMAS.values()),
            "dataset": DATASET,
        }
    ),
    caption="certify_mixed.rst",
    category="Certification",
)
