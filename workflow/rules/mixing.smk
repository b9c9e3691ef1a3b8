# Mixing classifiers (Bai, Anderson, Sojoudi): fixed-α mixtures of the accurate model g and the robust model
# h in probability and logit space, the learned mixing network α(x) (adaptive smoothing), its adaptive
# evaluation, and the robust model's probability margins. Every mixed classifier is a classifier JSON that
# the generic `evaluate` rule (attack.smk) attacks end to end (clean, PGD, AutoAttack).

MIX = config["mixing"]
MIX_G, MIX_H = MIX["accurate"], MIX["robust"]
MIX_ALPHAS = {fmt(a): a for a in MIX["alphas"]}  # α as printed in ids → α as in the config
for _key in ("accurate", "robust"):
    if MIX[_key] not in BASE_MODELS and MIX[_key] not in ZOO_MODELS:  # ZOO_MODELS: zoo.smk
        raise WorkflowError(f"config error at mixing.{_key}: '{MIX[_key]}' is not a model in models or zoo.models")
if MIX_G == MIX_H:
    raise WorkflowError("config error at mixing.robust: the robust model must differ from mixing.accurate")
if not MIX["network"]["alpha_min"] < MIX["network"]["alpha_max"]:
    raise WorkflowError("config error at mixing.network.alpha_min: must be smaller than alpha_max")
if not MIX["fit"]["attack"]["eps_lo"] <= MIX["fit"]["attack"]["eps_hi"]:
    raise WorkflowError("config error at mixing.fit.attack.eps_lo: must not exceed eps_hi")


def mix_base_inputs(dataset):
    return [*classifier_inputs(dataset, MIX_G), *classifier_inputs(dataset, MIX_H)]


CLASSIFIER_DEPS.append((r"mix-(prob|logit)-(.+)", lambda dataset, m: mix_base_inputs(dataset)))
CLASSIFIER_DEPS.append((r"mixnet", lambda dataset, m: [f"results/{dataset}/models/mixnet.pt",
                                                       *mix_base_inputs(dataset)]))

localrules: mix_spec, figure_mixing_tradeoff, figure_mixing_alpha, figure_mixing_margin


rule mix_spec:
    input:
        accurate=lambda w: f"results/{w.dataset}/models/{MIX_G}.json",
        robust=lambda w: f"results/{w.dataset}/models/{MIX_H}.json",
    output:
        "results/{dataset}/models/mix-{mode}-{alpha}.json",
    wildcard_constraints:
        dataset=re.escape(DATASET),
        mode="prob|logit",
        alpha="|".join(re.escape(a) for a in MIX_ALPHAS),
    params:
        alpha=lambda w: MIX_ALPHAS[w.alpha],
        temp_g=MIX["temp_g"],
        temp_h=MIX["temp_h"],
    log:
        "logs/{dataset}/mixing/mix-{mode}-{alpha}.log",
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff mix-spec --accurate {input.accurate} --robust {input.robust} --alpha {params.alpha} "
        "--mode {wildcards.mode} --temp-g {params.temp_g} --temp-h {params.temp_h} "
        "--name mix-{wildcards.mode}-{wildcards.alpha} --out {output} 2> {log}"


# "fit mixing network": a GPU job on a cluster (declares gpu from the config like every heavy rule).
rule fit_mixnet:
    input:
        data=lambda w: data_path(w.dataset),
        accurate=lambda w: classifier_inputs(w.dataset, MIX_G),
        robust=lambda w: classifier_inputs(w.dataset, MIX_H),
    output:
        spec="results/{dataset}/models/mixnet.json",
        weights="results/{dataset}/models/mixnet.pt",
    wildcard_constraints:
        dataset=re.escape(DATASET),
    params:
        threat=threat_json(),
        network=J(MIX["network"]),
        fit=J(MIX["fit"]),
        temp_g=MIX["temp_g"],
        temp_h=MIX["temp_h"],
        seed=SEED,
        checkpoint="results/{dataset}/checkpoints/mixnet.pt",
    log:
        "logs/{dataset}/mixing/fit_mixnet.log",
    benchmark:
        "results/benchmarks/{dataset}/mixing/fit_mixnet.tsv"
    priority: 9  # the mixing network's chain (fit, AutoAttack, adaptive attack) is the DAG's longest tail
    threads: THREADS
    resources:
        **HEAVY,
    shell:
        "tradeoff fit-mixnet {RUNTIME_ARGS} --seed {params.seed} --data {input.data} "
        "--accurate {input.accurate[0]} --robust {input.robust[0]} --temp-g {params.temp_g} "
        "--temp-h {params.temp_h} --threat {params.threat:q} --network {params.network:q} "
        "--fit {params.fit:q} --checkpoint {params.checkpoint} --out {output.spec} 2> {log}"


# Worst case per test point of AutoAttack end to end (the generic evaluate rule's record) and the attack
# that maximizes (1−w)·CE + w·BCE(γ, 1), i.e. also drives the mixing network's α down.
rule adaptive_mixnet:
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, "mixnet"),
        autoattack=lambda w: eval_path(w.dataset, "mixnet", "autoattack"),
    output:
        records="results/{dataset}/eval/mixnet/adaptive.csv",
        meta="results/{dataset}/eval/mixnet/adaptive.json",
    wildcard_constraints:
        dataset=re.escape(DATASET),
    params:
        threat=threat_json(),
        adaptive=J(MIX["adaptive"]),
        batch_size=MIX["adaptive"]["chunk"],
        seed=SEED,
    log:
        "logs/{dataset}/eval/mixnet/adaptive.log",
    benchmark:
        "results/benchmarks/{dataset}/eval/mixnet/adaptive.tsv"
    threads: THREADS
    resources:
        **HEAVY,
    shell:
        "tradeoff adaptive-eval {RUNTIME_ARGS} --seed {params.seed} --data {input.data} "
        "--classifier {input.classifier[0]} --name mixnet --autoattack {input.autoattack} "
        "--threat {params.threat:q} --params {params.adaptive:q} --batch-size {params.batch_size} "
        "--out {output.records} 2> {log}"


# The robust model's probability margin per test point, clean and under the config's PGD attack.
rule robust_margins:
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, w.model),
    output:
        records="results/{dataset}/eval/{model}/margin.csv",
        meta="results/{dataset}/eval/{model}/margin.json",
    wildcard_constraints:
        dataset=re.escape(DATASET),
        model=re.escape(MIX_H),
    params:
        threat=threat_json(),
        pgd=J(config["attacks"]["pgd"]),
        temp_h=MIX["temp_h"],
        batch_size=config["attacks"]["batch_size"],
        seed=SEED,
    log:
        "logs/{dataset}/eval/{model}/margin.log",
    benchmark:
        "results/benchmarks/{dataset}/eval/{model}/margin.tsv"
    threads: THREADS
    resources:
        **HEAVY,
    shell:
        "tradeoff robust-margins {RUNTIME_ARGS} --seed {params.seed} --data {input.data} "
        "--classifier {input.classifier[0]} --name {wildcards.model} --temp {params.temp_h} "
        "--threat {params.threat:q} --params {params.pgd:q} --batch-size {params.batch_size} "
        "--out {output.records} 2> {log}"


MIX_IDS = [f"mix-{mode}-{a}" for mode in MIX["modes"] for a in MIX_ALPHAS]
MIX_ADAPTIVE = f"results/{DATASET}/eval/mixnet/adaptive.csv"
MIX_MARGINS = f"results/{DATASET}/eval/{MIX_H}/margin.csv"
SUMMARY_INPUTS.extend(eval_path(DATASET, c, a) for c in [*MIX_IDS, "mixnet"] for a in config["attacks"]["run"])
SUMMARY_INPUTS.extend([MIX_ADAPTIVE, MIX_MARGINS])


rule figure_mixing_tradeoff:
    input:
        summary="results/summary.csv",
    output:
        png=report("results/figures/mixing_tradeoff.png", caption="../report/mixing_tradeoff.rst",
                   category="Mixing classifiers"),
        pdf="results/figures/mixing_tradeoff.pdf",
    params:
        args=lambda w, input: J({"summary_path": input.summary, "dataset": DATASET, "alphas": MIX["alphas"],
                                 "modes": MIX["modes"], "accurate": MIX_G, "robust": MIX_H, "mixnet": "mixnet"}),
    log:
        "logs/figures/mixing_tradeoff.log",
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff figure mixing-tradeoff --out {output.png} --args {params.args:q} 2> {log}"


rule figure_mixing_alpha:
    input:
        records=MIX_ADAPTIVE,
    output:
        png=report("results/figures/mixing_alpha.png", caption="../report/mixing_alpha.rst",
                   category="Mixing classifiers"),
        pdf="results/figures/mixing_alpha.pdf",
    params:
        args=lambda w, input: J({"records": input.records}),
    log:
        "logs/figures/mixing_alpha.log",
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff figure mixing-alpha --out {output.png} --args {params.args:q} 2> {log}"


rule figure_mixing_margin:
    input:
        records=MIX_MARGINS,
    output:
        png=report("results/figures/mixing_margin.png", caption="../report/mixing_margin.rst",
                   category="Mixing classifiers"),
        pdf="results/figures/mixing_margin.pdf",
    params:
        args=lambda w, input: J({"records": input.records}),
    log:
        "logs/figures/mixing_margin.log",
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff figure mixing-margin --out {output.png} --args {params.args:q} 2> {log}"


FIGURES.extend(["results/figures/mixing_tradeoff.png", "results/figures/mixing_alpha.png",
                "results/figures/mixing_margin.png"])
