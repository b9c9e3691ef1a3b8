# The train stage's constants, paths and helpers (its rules: workflow/rules/train.smk).


# Models whose objective ignores the threat (THREAT_FREE_OBJECTIVES) are trained once and shared by every
# threat. A neutral threat for their training command (never used by these objectives; constant, so that changing
# `threats` does not retrain them).
NO_THREAT = J({"norm": "Linf", "eps": 0.0})


def model_train_params(name):
    entry = BASE_MODELS[name]
    return {**config["train"], **entry.get("train", {})}


def train_inputs(w):
    """The data and, for a model with `init: <id>`, the checkpoint it is fine-tuned from (same threat)."""
    threat = getattr(w, "threat", None)
    inputs = {"data": data_path(w.dataset)}
    init = BASE_MODELS[w.model].get("init")
    if init:
        inputs["init"], inputs["init_weights"] = classifier_inputs(w.dataset, w.seed, threat, init)
    return inputs


def init_option(w, input):
    """`--init <classifier JSON>` when the rule has an `init` input, else nothing."""
    return f"--init {input.init}" if "init" in input.keys() else ""
