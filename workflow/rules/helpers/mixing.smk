# The mixing stage's constants, paths and helpers (its rules: workflow/rules/mixing.smk).


MIX = config["mixing"]
MIX_G, MIX_H = MIX["accurate"], MIX["robust"]
MIX_ALPHAS = {fmt(a): a for a in MIX["alphas"]}  # α as printed in ids → α as in the config
MIX_THREATS = threat_ids(MIX["threats"])


def mix_ids(mode):
    """The ids of the fixed-α mixtures of `mode`, in the order of `mixing.alphas`."""
    return [f"mix-{mode}-{a}" for a in MIX_ALPHAS]


MIX_IDS = [c for mode in MIX["modes"] for c in mix_ids(mode)]


# T_g and T_h: `mixing.temperatures` is `calibrate` (temperature scaling of each base model on the calibration
# split, by the job mixing_temperatures) or fixed values {g: T_g, h: T_h}.
MIX_TEMPS = MIX["temperatures"]
MIX_CALIBRATE = MIX_TEMPS == "calibrate"


def mix_temperatures_input(w):
    """The fitted temperatures of the mixing threat when they are calibrated (else no input)."""
    return [f"results/{w.dataset}{w.seed}/{w.threat}/mixing/temperatures.json"] if MIX_CALIBRATE else []


def mix_temperature_args(w, input):
    """CLI options giving T_g and T_h: the fitted JSON, or the config's fixed values."""
    if MIX_CALIBRATE:
        return f"--temperatures {input.temperatures[0]}"
    return f"--temp-g {MIX_TEMPS['g']} --temp-h {MIX_TEMPS['h']}"


def mix_margin_temperature_args(w, input):
    """mixing-margins' T_h: the fitted JSON, or the config's fixed value."""
    if MIX_CALIBRATE:
        return f"--temperatures {input.temperatures[0]}"
    return f"--temp {MIX_TEMPS['h']}"


def mix_base_inputs(dataset, seed, threat):
    return [*classifier_inputs(dataset, seed, threat, MIX_G), *classifier_inputs(dataset, seed, threat, MIX_H)]


def mixnet_inputs(dataset, seed, threat, match):
    return [f"results/{dataset}{seed}/{threat}/models/mixnet.pt", *mix_base_inputs(dataset, seed, threat)]


CLASSIFIER_DEPS.append(
    (r"mix-(prob|logit)-(.+)", lambda dataset, seed, threat, m: mix_base_inputs(dataset, seed, threat))
)
CLASSIFIER_DEPS.append((r"mixnet", mixnet_inputs))


# the mixing network's adaptive-attack records and the robust model's margins ({dataset}, {seed}, {threat} open)
MIX_ADAPTIVE = "results/{dataset}{seed}/{threat}/eval/mixnet/adaptive.csv"
MIX_MARGINS = f"results/{{dataset}}{{seed}}/{{threat}}/eval/{MIX_H}/confidence.csv"


def mix_adaptive_path(seed, threat, dataset=DATASET):
    return MIX_ADAPTIVE.format(dataset=dataset, seed=seed, threat=threat)


def mix_margins_path(seed, threat, dataset=DATASET):
    return MIX_MARGINS.format(dataset=dataset, seed=seed, threat=threat)


def mixing_records(seed):
    evals = [eval_path(DATASET, seed, t, c, a) for t in MIX_THREATS for c in [*MIX_IDS, "mixnet"] for a in ATTACKS]
    extra = [p for t in MIX_THREATS for p in (mix_adaptive_path(seed, t), mix_margins_path(seed, t))]
    return evals + extra


def mixing_tradeoff_args(w, input):
    return J(
        {
            "summary_path": input.summary,
            "dataset": DATASET,
            "threat": THREATS[w.threat],
            "alphas": MIX["alphas"],
            "modes": MIX["modes"],
            "accurate": MIX_G,
            "robust": MIX_H,
            "mixnet": "mixnet",
        }
    )


STAGE_RECORDS.append(mixing_records)


# clean against worst-case robust accuracy of both mixing modes over α, the chord between the base models
FIGURES["mixing_tradeoff"] = dict(
    cli="mixing-tradeoff",
    out="results/figures/{threat}/mixing_tradeoff.png",
    threats=MIX_THREATS,
    inputs=lambda w: {"summary": "results/summary.csv"},
    args=mixing_tradeoff_args,
    caption="mixing_tradeoff.rst",
    category="Mixing classifiers",
)

# histogram of the mixing network's α(x) on clean inputs and on the adaptive attack's inputs
FIGURES["mixing_alpha"] = dict(
    cli="mixing-alpha",
    out="results/figures/{threat}/mixing_alpha.png",
    threats=MIX_THREATS,
    inputs=lambda w: {"records": mix_adaptive_path(FIGURE_SEED, w.threat)},
    args=lambda w, input: J({"records": input.records}),
    caption="mixing_alpha.rst",
    category="Mixing classifiers",
)

# the robust model's probability margins: points it gets right under attack against those it gets wrong
FIGURES["mixing_margin"] = dict(
    cli="mixing-margin",
    out="results/figures/{threat}/mixing_margin.png",
    threats=MIX_THREATS,
    inputs=lambda w: {"records": mix_margins_path(FIGURE_SEED, w.threat)},
    args=lambda w, input: J({"records": input.records}),
    caption="mixing_margin.rst",
    category="Mixing classifiers",
)
