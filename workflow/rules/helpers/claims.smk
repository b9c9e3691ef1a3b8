# The claims stage's constants, paths and helpers (its rules: workflow/rules/claims.smk).


CLAIMS = config["claims"]


def claims_record_map():
    """{"classifier|evaluation|threat_id": record path} of every record a claim may read."""
    out = {}
    for t, c in evaluated_classifiers():
        for attack in [*ATTACKS, "worst"]:
            if attack not in ("clean", SWEEP):
                out[f"{c}|{attack}|{t}"] = eval_path(DATASET, t, c, attack)
        if c == "mixnet":
            out[f"mixnet|adaptive|{t}"] = mix_adaptive_path(t)
    for t in MIX_THREATS:
        out[f"{MIX_H}|confidence|{t}"] = mix_margins_path(t)
    for t in ERA_THREATS:
        for m in ERA_RECORD_MODELS:
            out[f"{m}|robustness|{t}"] = era_robustness_path(DATASET, t, m)
        for c in ERA_COMPOSITES:
            out[f"{c}|composite|{t}"] = eval_path(DATASET, t, c, "adaptive")
    for t in PROB_THREATS:
        for c in PROB_CLASSIFIERS:
            for test in PROB_TESTS:
                out[f"{c}|certify-prob-{test}|{t}"] = prob_records(t, c, test)
    for s in CERT_SIGMAS:
        folder = CERT_DIR.format(dataset=DATASET, sigma=s)
        out[f"gauss_aug-{s}|certify-rs|none"] = f"{folder}/rs.csv"
        out[f"gauss_aug-{s}|certify-mixed|none"] = f"{folder}/mixed.csv"
    for name in TSIPRAS_ALL:
        out[f"tsipras-{name}|exact|{threat_id(TSIPRAS_THREAT)}"] = tsipras_record(name, "exact")
    return out


def claims_inputs(w):
    return list(dict.fromkeys(claims_record_map().values()))


def claims_options():
    """The roles of the classifiers and the statistical settings of `tradeoff.claims.ClaimOptions`."""
    return {
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
