# ERA and the robustness-indicator composition (Merkli et al., "Just Avoid Robust Inaccuracy"; spec §3):
# robust accuracy / robust inaccuracy of the base models (attack towards each model's own prediction), the
# compositional classifier era-composite (the ERA model where it is robust at 2ε, the standard model
# elsewhere) evaluated by joining records and by an end-to-end adaptive attack, and the decision-region
# picture on the 2-D dataset gauss3 (its own dataset and models, independent of config["dataset"]).
# The `era` model itself is trained by the generic `train` rule (config `models: era`, init: trades).

ERA = config["era"]
ERA_COMP = ERA["composite"]
ERA_ROBUST, ERA_STANDARD = ERA_COMP["robust"], ERA_COMP["standard"]
for _name in ERA["models"]:
    if _name not in BASE_MODELS:
        raise WorkflowError(f"config error at era.models: '{_name}' is not a model in models")
for _key in ("robust", "standard"):
    if ERA_COMP[_key] not in BASE_MODELS:
        raise WorkflowError(f"config error at era.composite.{_key}: '{ERA_COMP[_key]}' is not a model in models")
if ERA_ROBUST == ERA_STANDARD:
    raise WorkflowError("config error at era.composite.robust: must differ from era.composite.standard")

# gauss3: the standard, TRADES and ERA models of `models`, retrained as MLPs on the 2-D data
GAUSS3 = "gauss3"
G3 = ERA["gauss3"]
G3_MODELS = ["standard", "trades", "era"]
for _name in G3_MODELS:
    if _name not in config["models"]:
        raise WorkflowError(f"config error at models: the gauss3 picture needs a model '{_name}'")
G3_THREAT = {"norm": "Linf", "eps": float(G3["eps"])}


def era_robustness_path(dataset, model):
    return f"results/{dataset}/eval/{model}/robustness.csv"


def g3_train_params(model):
    overrides = G3["finetune"] if config["models"][model].get("init") else G3["train"]
    # gauss3 models are MLPs on 2-D points: no image augmentation, whatever the shared loop (a CIFAR preset) says
    return {**config["train"], **overrides, "augment": "none"}


def g3_train_inputs(w):
    inputs = {"data": data_path(GAUSS3)}
    init = config["models"][w.g3model].get("init")
    if init:
        inputs["init"] = f"results/{GAUSS3}/models/{init}.json"
        inputs["init_weights"] = f"results/{GAUSS3}/models/{init}.pt"
    return inputs


ERA_COMPOSITE = "era-composite"
CLASSIFIER_DEPS.append((re.escape(ERA_COMPOSITE), lambda dataset, m: [
    *classifier_inputs(dataset, ERA_ROBUST), *classifier_inputs(dataset, ERA_STANDARD)]))

localrules: era_composite_spec, figure_era_gauss3, figure_era_digits


rule era_robustness:
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, w.classifier),
        combine=lambda w: [eval_path(w.dataset, w.classifier, a) for a in ERA["robustness"]["combine"]],
    output:
        records="results/{dataset}/eval/{classifier}/robustness.csv",
        meta="results/{dataset}/eval/{classifier}/robustness.json",
    wildcard_constraints:
        dataset=re.escape(DATASET),
        classifier="|".join(re.escape(m) for m in BASE_MODELS),
    params:
        threat=threat_json(),
        attack=J({k: v for k, v in ERA["robustness"].items() if k != "combine"}),
        batch_size=config["attacks"]["batch_size"],
        seed=SEED,
    log:
        "logs/{dataset}/eval/{classifier}/robustness.log",
    benchmark:
        "results/benchmarks/{dataset}/eval/{classifier}/robustness.tsv"
    threads: THREADS
    resources:
        **HEAVY,
    shell:
        "tradeoff robustness {RUNTIME_ARGS} --seed {params.seed} --data {input.data} "
        "--classifier {input.classifier[0]} --name {wildcards.classifier} --threat {params.threat:q} "
        "--params {params.attack:q} --combine {input.combine} --batch-size {params.batch_size} "
        "--out {output.records} 2> {log}"


rule era_composite_spec:
    input:
        data=lambda w: data_path(w.dataset),
        robust=lambda w: f"results/{w.dataset}/models/{ERA_ROBUST}.json",
        standard=lambda w: f"results/{w.dataset}/models/{ERA_STANDARD}.json",
    output:
        "results/{dataset}/models/era-composite.json",
    wildcard_constraints:
        dataset=re.escape(DATASET),
    params:
        selector=J({**ERA_COMP["selector"], "seed": SEED}),
        threat=threat_json(),
    log:
        "logs/{dataset}/era/composite_spec.log",
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff era-composite-spec --data {input.data} --robust {input.robust} --standard {input.standard} "
        "--selector {params.selector:q} --threat {params.threat:q} --name era-composite --out {output} 2> {log}"


rule era_composite_evaluate:
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, ERA_COMPOSITE),
        robust_records=lambda w: era_robustness_path(w.dataset, ERA_ROBUST),
        standard_records=lambda w: era_robustness_path(w.dataset, ERA_STANDARD),
    output:
        records="results/{dataset}/eval/era-composite/adaptive.csv",
        meta="results/{dataset}/eval/era-composite/adaptive.json",
    wildcard_constraints:
        dataset=re.escape(DATASET),
    params:
        attack=J(ERA_COMP["adaptive"]),
        batch_size=config["attacks"]["batch_size"],
        seed=SEED,
    log:
        "logs/{dataset}/eval/era-composite/adaptive.log",
    benchmark:
        "results/benchmarks/{dataset}/eval/era-composite/adaptive.tsv"
    threads: THREADS
    resources:
        **HEAVY,
    shell:
        "tradeoff era-composite {RUNTIME_ARGS} --seed {params.seed} --data {input.data} "
        "--classifier {input.classifier[0]} --name era-composite --robust-records {input.robust_records} "
        "--standard-records {input.standard_records} --params {params.attack:q} "
        "--batch-size {params.batch_size} --out {output.records} 2> {log}"


rule era_gauss3_train:
    input:
        unpack(g3_train_inputs),
    output:
        spec="results/gauss3/models/{g3model}.json",
        weights="results/gauss3/models/{g3model}.pt",
    wildcard_constraints:
        g3model="|".join(G3_MODELS),
    params:
        arch_options=J({"hidden": G3["hidden"]}),
        objective=lambda w: config["models"][w.g3model]["objective"],
        objective_params=lambda w: J(config["models"][w.g3model]["params"]),
        train=lambda w: J(g3_train_params(w.g3model)),
        threat=J(G3_THREAT),
        init=lambda w, input: f"--init {input.init}" if "init" in input.keys() else "",
        seed=SEED,
        checkpoint="results/gauss3/checkpoints/{g3model}.pt",
    log:
        "logs/gauss3/train/{g3model}.log",
    benchmark:
        "results/benchmarks/gauss3/train/{g3model}.tsv"
    threads: THREADS
    resources:
        **HEAVY,
    shell:
        "tradeoff train {RUNTIME_ARGS} --seed {params.seed} --data {input.data} --name {wildcards.g3model} "
        "--arch mlp --arch-options {params.arch_options:q} --objective {params.objective} "
        "--objective-params {params.objective_params:q} --threat {params.threat:q} "
        "--train-params {params.train:q} {params.init} --checkpoint {params.checkpoint} "
        "--out {output.spec} 2> {log}"


rule era_gauss3_robustness:
    input:
        data=data_path(GAUSS3),
        spec="results/gauss3/models/{g3model}.json",
        weights="results/gauss3/models/{g3model}.pt",
    output:
        records="results/gauss3/eval/{g3model}/robustness.csv",
        meta="results/gauss3/eval/{g3model}/robustness.json",
        grid="results/gauss3/eval/{g3model}/grid.csv",
        grid_meta="results/gauss3/eval/{g3model}/grid.json",
    wildcard_constraints:
        g3model="|".join(G3_MODELS),
    params:
        threat=J(G3_THREAT),
        attack=J({k: v for k, v in ERA["robustness"].items() if k != "combine"}),
        grid=G3["grid"],
        seed=SEED,
    log:
        "logs/gauss3/eval/{g3model}/robustness.log",
    benchmark:
        "results/benchmarks/gauss3/eval/{g3model}/robustness.tsv"
    threads: THREADS
    resources:
        **HEAVY,
    shell:
        "tradeoff robustness {RUNTIME_ARGS} --seed {params.seed} --data {input.data} --classifier {input.spec} "
        "--name {wildcards.g3model} --threat {params.threat:q} --params {params.attack:q} --clean-row "
        "--coordinates --grid-out {output.grid} --grid-size {params.grid} --out {output.records} 2> {log}"


ERA_TABLE_CLASSIFIERS = [*ERA["models"], ERA_COMPOSITE]


rule figure_era_digits:
    input:
        summary="results/summary.csv",
    output:
        png=report("results/figures/era_tradeoff.png", caption="../report/era_tradeoff.rst",
                   category="ERA and abstain"),
        pdf="results/figures/era_tradeoff.pdf",
        table=report("results/tables/era.csv", caption="../report/era_table.rst", category="ERA and abstain"),
        markdown="results/tables/era.md",
    params:
        args=lambda w, input, output: J({"summary_path": input.summary, "dataset": DATASET,
                                         "classifiers": ERA_TABLE_CLASSIFIERS, "table_out": output.table}),
    log:
        "logs/figures/era_tradeoff.log",
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff figure era-digits --out {output.png} --args {params.args:q} 2> {log}"


rule figure_era_gauss3:
    input:
        records=[era_robustness_path(GAUSS3, m) for m in G3_MODELS],
        grids=[f"results/gauss3/eval/{m}/grid.csv" for m in G3_MODELS],
    output:
        png=report("results/figures/era_gauss3.png", caption="../report/era_gauss3.rst",
                   category="ERA and abstain"),
        pdf="results/figures/era_gauss3.pdf",
    params:
        args=lambda w, input: J({"records": dict(zip(G3_MODELS, input.records)),
                                 "grids": dict(zip(G3_MODELS, input.grids)), "order": G3_MODELS}),
    log:
        "logs/figures/era_gauss3.log",
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff figure era-gauss3 --out {output.png} --args {params.args:q} 2> {log}"


SUMMARY_INPUTS.extend(eval_path(DATASET, "era", a) for a in config["attacks"]["run"])
SUMMARY_INPUTS.extend(era_robustness_path(DATASET, m) for m in ERA["models"])
SUMMARY_INPUTS.append(f"results/{DATASET}/eval/era-composite/adaptive.csv")
SUMMARY_INPUTS.extend(era_robustness_path(GAUSS3, m) for m in G3_MODELS)
FIGURES.extend(["results/figures/era_tradeoff.png", "results/figures/era_gauss3.png"])
