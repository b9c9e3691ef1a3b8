# The era stage's constants, paths and helpers (its rules: workflow/rules/era.smk).


ERA = config["era"]
ERA_COMP = ERA["composite"]
ERA_ROBUST, ERA_STANDARD = ERA_COMP["robust"], ERA_COMP["standard"]
ERA_THREATS = threat_ids(ERA["threats"])
ERA_COMPOSITE = "era-composite"
# composite id → its robust branch
ERA_COMPOSITES = {ERA_COMPOSITE: ERA_ROBUST, **{f"{ERA_COMPOSITE}-{b}": b for b in ERA_COMP["compare"]}}
# every model with robustness records: the reported ones, the branches and the standard trunk
ERA_RECORD_MODELS = list(dict.fromkeys([*ERA["models"], *ERA_COMPOSITES.values(), ERA_STANDARD]))
# the strong robustness test: the robustness records' attack (`combine` names the label attacks whose records
# it joins), also the composite's sound-selection check at 2ε
ERA_STRONG = {k: v for k, v in ERA["robustness"].items() if k not in ("combine", "attack_correct")}
ERA_TABLE_CLASSIFIERS = [*ERA["models"], *ERA_COMPOSITES]
# the records of the robustness and the composites' evaluation ({dataset}, {seed}, {threat}, {classifier|composite}
# open)
ERA_ROBUSTNESS_RECORDS = "results/{dataset}{seed}/{threat}/eval/{classifier}/robustness.csv"
ERA_COMPOSITE_RECORDS = "results/{dataset}{seed}/{threat}/eval/{composite}/adaptive.csv"

# gauss3: the standard, TRADES and ERA models of `models`, retrained as MLPs on the 2-D data
GAUSS3 = "gauss3"
G3 = ERA["gauss3"]
G3_MODELS = ["standard", "trades", "era"]
G3_THREAT = {"norm": "Linf", "eps": float(G3["eps"])}


def era_robustness_path(dataset, seed, threat, model):
    if threat is None:  # gauss3: one threat of its own
        return f"results/{dataset}{seed}/eval/{model}/robustness.csv"
    return eval_path(dataset, seed, threat, model, "robustness")


def g3_grid_path(seed, model):
    return f"results/{GAUSS3}{seed}/eval/{model}/grid.csv"


def era_composite_inputs(dataset, seed, threat, match):
    branch = ERA_COMPOSITES[match.group(0)]
    return [
        *classifier_inputs(dataset, seed, threat, branch),
        *classifier_inputs(dataset, seed, threat, ERA_STANDARD),
    ]


CLASSIFIER_DEPS.append((alternatives(ERA_COMPOSITES), era_composite_inputs))


def g3_train_params(model):
    overrides = G3["finetune"] if config["models"][model].get("init") else G3["train"]
    # gauss3 models are MLPs on 2-D points: no image augmentation, whatever the shared loop (a CIFAR preset) says
    return {**config["train"], **overrides, "augment": "none"}


def g3_train_inputs(w):
    inputs = {"data": data_path(GAUSS3)}
    init = config["models"][w.g3model].get("init")
    if init:
        inputs["init"] = f"results/{GAUSS3}{w.seed}/models/{init}.json"
        inputs["init_weights"] = f"results/{GAUSS3}{w.seed}/models/{init}.pt"
    return inputs


def era_table_args(w, input, output):
    return J(
        {
            "summary_path": input.summary,
            "dataset": DATASET,
            "threat": THREATS[w.threat],
            "classifiers": ERA_TABLE_CLASSIFIERS,
            "table_out": output.table,
        }
    )


def era_records(seed):
    records = [era_robustness_path(DATASET, seed, t, m) for t in ERA_THREATS for m in ERA_RECORD_MODELS]
    composites = [eval_path(DATASET, seed, t, c, "adaptive") for t in ERA_THREATS for c in ERA_COMPOSITES]
    return records + composites + [era_robustness_path(GAUSS3, seed, None, m) for m in G3_MODELS]


STAGE_RECORDS.append(era_records)


# clean accuracy, robust accuracy, robust inaccuracy and selection rate per classifier at one threat
FIGURES["era"] = dict(
    cli="era",
    out="results/figures/{threat}/era_tradeoff.png",
    threats=ERA_THREATS,
    inputs=lambda w: {"summary": "results/summary.csv"},
    args=era_table_args,
    caption="era_tradeoff.rst",
    category="ERA and abstain",
    extra={
        "table": figure_report("results/tables/{threat}/era.csv", "era_table.rst", "ERA and abstain"),
        "markdown": "results/tables/{threat}/era.md",
    },
)

# decision regions of the gauss3 models, with the test points
FIGURES["era_gauss3"] = dict(
    cli="era-gauss3",
    out="results/figures/era_gauss3.png",
    inputs=lambda w: {
        "records": [era_robustness_path(GAUSS3, FIGURE_SEED, None, m) for m in G3_MODELS],
        "grids": [g3_grid_path(FIGURE_SEED, m) for m in G3_MODELS],
    },
    args=lambda w, input: J(
        {
            "records": dict(zip(G3_MODELS, input.records)),
            "grids": dict(zip(G3_MODELS, input.grids)),
            "order": G3_MODELS,
        }
    ),
    caption="era_gauss3.rst",
    category="ERA and abstain",
)
