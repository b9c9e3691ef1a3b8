# Mixing classifiers (Bai, Anderson, Sojoudi): fixed-α mixtures of the accurate model g and the robust model
# h in probability and logit space, the learned mixing network α(x) (adaptive smoothing), its adaptive
# evaluation, and the robust model's probability margins. Every mixed classifier is a classifier JSON that
# the generic `attacks` rules (attacks.smk) attacks end to end (clean, PGD, AutoAttack).
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
    return [f"results/{w.dataset}/{w.threat}/mixing/temperatures.json"] if MIX_CALIBRATE else []


def mix_temperature_args(w, input):
    """CLI options giving T_g and T_h: the fitted JSON, or the config's fixed values."""
    if MIX_CALIBRATE:
        return f"--temperatures {input.temperatures[0]}"
    return f"--temp-g {MIX_TEMPS['g']} --temp-h {MIX_TEMPS['h']}"


def mix_margin_temperature_args(w, input):
    """robust-margins' T_h: the fitted JSON, or the config's fixed value."""
    if MIX_CALIBRATE:
        return f"--temperatures {input.temperatures[0]}"
    return f"--temp {MIX_TEMPS['h']}"


def mix_base_inputs(dataset, threat):
    return [*classifier_inputs(dataset, threat, MIX_G), *classifier_inputs(dataset, threat, MIX_H)]


def mixnet_inputs(dataset, threat, match):
    return [f"results/{dataset}/{threat}/models/mixnet.pt", *mix_base_inputs(dataset, threat)]


CLASSIFIER_DEPS.append((r"mix-(prob|logit)-(.+)", lambda dataset, threat, m: mix_base_inputs(dataset, threat)))
CLASSIFIER_DEPS.append((r"mixnet", mixnet_inputs))


# the mixing network's adaptive-attack records and the robust model's margins ({dataset} and {threat} open)
MIX_ADAPTIVE = "results/{dataset}/{threat}/eval/mixnet/adaptive.csv"
MIX_MARGINS = f"results/{{dataset}}/{{threat}}/eval/{MIX_H}/confidence.csv"


def mix_adaptive_path(threat, dataset=DATASET):
    return MIX_ADAPTIVE.format(dataset=dataset, threat=threat)


def mix_margins_path(threat, dataset=DATASET):
    return MIX_MARGINS.format(dataset=dataset, threat=threat)


def mixing_records():
    evals = [eval_path(DATASET, t, c, a) for t in MIX_THREATS for c in [*MIX_IDS, "mixnet"] for a in ATTACKS]
    extra = [p for t in MIX_THREATS for p in (mix_adaptive_path(t), mix_margins_path(t))]
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
    inputs=lambda w: {"records": mix_adaptive_path(w.threat)},
    args=lambda w, input: J({"records": input.records}),
    caption="mixing_alpha.rst",
    category="Mixing classifiers",
)

# the robust model's probability margins: points it gets right under attack against those it gets wrong
FIGURES["mixing_margin"] = dict(
    cli="mixing-margin",
    out="results/figures/{threat}/mixing_margin.png",
    threats=MIX_THREATS,
    inputs=lambda w: {"records": mix_margins_path(w.threat)},
    args=lambda w, input: J({"records": input.records}),
    caption="mixing_margin.rst",
    category="Mixing classifiers",
)


localrules:
    mixing_spec,


rule mixing_temperatures:
    """T_g and T_h by temperature scaling (minimum calibration NLL) of each base model on the calibration split."""
    input:
        data=lambda w: data_path(w.dataset),
        accurate=lambda w: classifier_inputs(w.dataset, w.threat, MIX_G),
        robust=lambda w: classifier_inputs(w.dataset, w.threat, MIX_H),
    output:
        "results/{dataset}/{threat}/mixing/temperatures.json",
    log:
        "logs/{dataset}/{threat}/mixing/temperatures.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/mixing/temperatures.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=alternatives(MIX_THREATS),
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        batch_size=config["attacks"]["batch_size"],
        seed=SEED,
    shell:
        tradeoff_shell(
            "mixing-temperatures",
            "--seed {params.seed} --data {input.data} --accurate {input.accurate[0]} "
            "--robust {input.robust[0]} --batch-size {params.batch_size} --out {output} 2> {log}",
        )


rule mixing_spec:
    """The classifier JSONs of the fixed-α mixtures of one mode (every α of `mixing.alphas`)."""
    input:
        accurate=lambda w: model_json(w.dataset, w.threat, MIX_G),
        robust=lambda w: model_json(w.dataset, w.threat, MIX_H),
        temperatures=mix_temperatures_input,
    output:
        [f"results/{{dataset}}/{{threat}}/models/{c}.json" for c in mix_ids("{mode}")],
    log:
        "logs/{dataset}/{threat}/mixing/mix-{mode}.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/mixing/mix-{mode}.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=alternatives(MIX_THREATS),
        mode="prob|logit",
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        alphas=" ".join(str(a) for a in MIX_ALPHAS.values()),
        names=lambda w: " ".join(mix_ids(w.mode)),
        temps=mix_temperature_args,
    shell:
        "tradeoff mixing-spec --accurate {input.accurate} --robust {input.robust} --alpha {params.alphas} "
        "--mode {wildcards.mode} {params.temps} --name {params.names} --out {output} 2> {log}"


# "fit mixing network": a GPU job on a cluster (declares gpu from the config like every heavy rule).
rule mixing_fit:
    """Fit the mixing network α(x) between the accurate and the robust model (adaptive smoothing)."""
    input:
        data=lambda w: data_path(w.dataset),
        accurate=lambda w: classifier_inputs(w.dataset, w.threat, MIX_G),
        robust=lambda w: classifier_inputs(w.dataset, w.threat, MIX_H),
        temperatures=mix_temperatures_input,
    output:
        spec="results/{dataset}/{threat}/models/mixnet.json",
        weights="results/{dataset}/{threat}/models/mixnet.pt",
    log:
        "logs/{dataset}/{threat}/mixing/mixing_fit.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/mixing/mixing_fit.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=alternatives(MIX_THREATS),
    priority: 9  # the mixing network's chain (fit, AutoAttack, adaptive attack) is the DAG's longest tail
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        threat=lambda w: threat_json(w.threat),
        network=J(MIX["network"]),
        fit=J(MIX["fit"]),
        temps=mix_temperature_args,
        seed=SEED,
        checkpoint="results/{dataset}/{threat}/checkpoints/mixnet.pt",
    shell:
        tradeoff_shell(
            "mixing-fit",
            "--seed {params.seed} --data {input.data} "
            "--accurate {input.accurate[0]} --robust {input.robust[0]} {params.temps} "
            "--threat {params.threat:q} --network {params.network:q} "
            "--fit {params.fit:q} --checkpoint {params.checkpoint} --out {output.spec} 2> {log}",
        )


# Worst case per test point of AutoAttack end to end (the generic attacks rules' record) and the attack
# that maximizes (1−w)·CE + w·BCE(γ, 1), i.e. also drives the mixing network's α down.
# It runs as `attacks.shards` shard jobs (every n-th chunk of test points, n = 1 included) and a light merge.


localrules:
    mixing_adaptive_merge,


rule mixing_adaptive_shard:
    """One shard of the adaptive attack on the mixing network (every n-th chunk of points)."""
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, w.threat, "mixnet"),
        autoattack=lambda w: eval_path(w.dataset, w.threat, "mixnet", "autoattack"),
    output:
        records=point_shard_output(MIX_ADAPTIVE),
        meta=point_shard_output(MIX_ADAPTIVE, "json"),
    log:
        "logs/{dataset}/{threat}/eval/mixnet/adaptive-{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/eval/mixnet/adaptive-{shard}-of-{shards}.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=alternatives(MIX_THREATS),
        shard=r"\d+",
        shards=str(ATTACK_SHARDS),
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        suite=J(config["attacks"]["composite"]),
        threat=lambda w: threat_json(w.threat),
        adaptive=J(MIX["adaptive"]),
        batch_size=MIX["adaptive"]["chunk"],
        seed=SEED,
        out=lambda w: mix_adaptive_path(w.threat, w.dataset),
    shell:
        tradeoff_shell(
            "mixing-adaptive",
            "--seed {params.seed} --data {input.data} "
            "--classifier {input.classifier[0]} --name mixnet --autoattack {input.autoattack} "
            "--threat {params.threat:q} --params {params.adaptive:q} --suite {params.suite:q} "
            "--batch-size {params.batch_size} --shard {wildcards.shard} --shards {wildcards.shards} "
            "--out {params.out} 2> {log}",
        )


rule mixing_adaptive_merge:
    """Merge the shards of the adaptive attack on the mixing network into its records."""
    input:
        point_shards(MIX_ADAPTIVE),
    output:
        records="results/{dataset}/{threat}/eval/mixnet/adaptive.csv",
        meta="results/{dataset}/{threat}/eval/mixnet/adaptive.json",
    log:
        "logs/{dataset}/{threat}/eval/mixnet/adaptive-merge.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/eval/mixnet/adaptive-merge.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=alternatives(MIX_THREATS),
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff merge mixing-adaptive --out {output.records} {input} 2> {log}"


rule mixing_margins:
    """The robust model's probability margin per test point, clean and under the config's PGD attack."""
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, w.threat, w.model),
        temperatures=mix_temperatures_input,
    output:
        records="results/{dataset}/{threat}/eval/{model}/confidence.csv",
        meta="results/{dataset}/{threat}/eval/{model}/confidence.json",
    log:
        "logs/{dataset}/{threat}/eval/{model}/confidence.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/eval/{model}/confidence.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=alternatives(MIX_THREATS),
        model=re.escape(MIX_H),
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        threat=lambda w: threat_json(w.threat),
        pgd=J(config["attacks"]["pgd"]),
        temp=mix_margin_temperature_args,
        batch_size=config["attacks"]["batch_size"],
        seed=SEED,
    shell:
        tradeoff_shell(
            "mixing-margins",
            "--seed {params.seed} --data {input.data} "
            "--classifier {input.classifier[0]} --name {wildcards.model} {params.temp} "
            "--threat {params.threat:q} --params {params.pgd:q} --batch-size {params.batch_size} "
            "--out {output.records} 2> {log}",
        )
