# Helpers and target lists shared by every rules file. Rules files append to SUMMARY_INPUTS (per-sample
# records whose sidecars carry summary rows) and FIGURES; summary.smk and `rule all` consume them.
import json
import re

SUMMARY_INPUTS = []
FIGURES = []
DATASET = config["dataset"]
SEED = int(config["seed"])
RES = config["resources"]
GPU = int(RES["gpu"])


def _grows(base):
    """A resource that grows with the retry attempt (a job killed for memory or time gets more)."""
    return lambda wildcards, attempt: int(base) * attempt


HEAVY = dict(mem_mb=_grows(RES["mem_mb"]), runtime=_grows(RES["runtime"]), gpu=GPU)
LIGHT = dict(mem_mb=1000, runtime=10, gpu=0)
THREADS = int(RES["threads"])
RUNTIME_ARGS = f"--threads {THREADS} --device {config['device']} --gpus {GPU} --no-progress"


def J(obj):
    """A config value as a compact, key-sorted JSON string (for params: and the CLI)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def fmt(value):
    """A number as printed in ids and paths (as in the config: 0.7, 0.25, 1)."""
    return f"{value:g}"


def data_path(dataset):
    return f"results/{dataset}/data.pt"


# Base models trained by the `train` rule: the config's `models` section plus one Gaussian-augmentation
# model per smoothing σ (added by the certification rules via BASE_MODELS).
BASE_MODELS = {name: dict(entry) for name, entry in config["models"].items()}
for _sigma in config.get("certify", {}).get("sigmas", []):
    BASE_MODELS[f"gauss_aug-{fmt(_sigma)}"] = {"objective": "gauss_aug", "params": {"sigma": _sigma}}


def model_train_params(name):
    entry = BASE_MODELS[name]
    return {**config["train"], **entry.get("train", {})}


# Inputs of a classifier: its JSON plus whatever that JSON references. Composite stages register a
# (regex, function(dataset, match) -> list of paths) pair in CLASSIFIER_DEPS.
CLASSIFIER_DEPS = []


def classifier_inputs(dataset, classifier):
    spec = f"results/{dataset}/models/{classifier}.json"
    if classifier in BASE_MODELS:
        return [spec, f"results/{dataset}/models/{classifier}.pt"]
    for pattern, fn in CLASSIFIER_DEPS:
        m = re.fullmatch(pattern, classifier)
        if m:
            return [spec, *fn(dataset, m)]
    raise ValueError(f"unknown classifier '{classifier}'")


def eval_path(dataset, classifier, attack):
    return f"results/{dataset}/eval/{classifier}/{attack}.csv"


def threat_json():
    return J(config["threat"])
