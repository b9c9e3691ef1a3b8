# The claims stage's constants, paths and helpers (its rules: workflow/rules/claims.smk).


CLAIMS = {k: v for k, v in config["claims"].items() if k != "choices"}  # the options of `tradeoff claims`
CLAIMS_CHOICES = config["claims"].get("choices", "docs/choices")  # JSON records of the values chosen on data


def seed_records(seed):
    """{"classifier|evaluation|threat_id": record path} of every record a claim may read, of training seed `seed`
    (its path segment)."""
    out = {}
    for t, c in evaluated_classifiers():
        for attack in [*ATTACKS, "worst"]:
            if attack not in ("clean", SWEEP):
                out[f"{c}|{attack}|{t}"] = eval_path(DATASET, seed, t, c, attack)
        if c == "mixnet":
            out[f"mixnet|adaptive|{t}"] = mix_adaptive_path(seed, t)
    for t in MIX_THREATS:
        out[f"{MIX_H}|confidence|{t}"] = mix_margins_path(seed, t)
    for t in ERA_THREATS:
        for m in ERA_RECORD_MODELS:
            out[f"{m}|robustness|{t}"] = era_robustness_path(DATASET, seed, t, m)
        for c in ERA_COMPOSITES:
            out[f"{c}|composite|{t}"] = eval_path(DATASET, seed, t, c, "adaptive")
    for t in PROB_THREATS:
        for c in PROB_CLASSIFIERS:
            for test in PROB_TESTS:
                out[f"{c}|certify-prob-{test}|{t}"] = prob_records(seed, t, c, test)
    for s in CERT_SIGMAS:
        folder = CERT_DIR.format(dataset=DATASET, seed=seed, sigma=s)
        out[f"gauss_aug-{s}|certify-rs|none"] = f"{folder}/rs.csv"
        out[f"gauss_aug-{s}|certify-mixed|none"] = f"{folder}/mixed.csv"
    for name in TSIPRAS_ALL:
        out[f"tsipras-{name}|exact|{threat_id(TSIPRAS_THREAT)}"] = tsipras_record(seed, name, "exact")
    for m in G3_MODELS:
        out[f"{GAUSS3}-{m}|robustness|none"] = era_robustness_path(GAUSS3, seed, None, m)
    return out


def claims_record_map():
    """{"classifier|evaluation|threat_id[|seed]": record path} of every record a claim may read, for every training
    seed (`tradeoff claims --records`, which pools each claim over the seeds): seed 0's keys have no seed part,
    as `tradeoff claims` reads a key without one, so a one-seed run passes the keys it always did."""
    return {
        (f"{key}|{seed}" if seed else key): path
        for seed, folder in zip(SEEDS, SEED_DIRS)
        for key, path in seed_records(folder).items()
    }


def claims_inputs(w):
    return list(dict.fromkeys(claims_record_map().values()))


def claims_choices(w):
    return sorted(str(p) for p in Path(CLAIMS_CHOICES).glob("*.json"))


def claims_options():
    """The roles of the classifiers and the statistical settings of `tradeoff.claims.ClaimOptions`."""
    return {
        "dataset": DATASET,
        "rs_n": CERT["n"],
        "rs_alpha": CERT["alpha"],
        "standard": MIX_G,
        "robust_base": MIX_H,
        "robust_models": [m for m in ("pgd_at", "trades") if m in BASE_MODELS],
        "era_composites": {branch: c for c, branch in ERA_COMPOSITES.items()},
        "kappa": PROB["kappa"],
        "alpha": PROB["alpha"],
        "n_max": PROB["n_max"],
        "growth": PROB["growth"],
        "first_look_share": PROB.get("first_look_share", 0.9),
        **CLAIMS,
        "seed": SEED,
    }
