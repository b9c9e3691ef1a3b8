# What every stage uses: the run's constants, resources, seeds, threats, base models and classifier inputs, the
# per-point shard paths and the registries of records and figures. Each stage's own constants and helpers
# live beside its rules, in its rules file.
import json
import re
from pathlib import Path

from tradeoff.config import THREAT_FREE_OBJECTIVES, job_seed, seed_dir, seed_of_dir, select_threat_ids, threat_id

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
# Light jobs that still run a model (the certification merge runs the standard model on the clean test
# points): a small CPU job, never a GPU one.
LIGHT_RUNTIME_ARGS = "--threads 1 --device cpu --gpus 0 --no-progress"


def tradeoff_shell(subcommand, args, runtime=RUNTIME_ARGS):
    """The shell command `tradeoff <subcommand> <runtime options> <args>`. The runtime options are filled in
    when the workflow is parsed, because the shell strings of a rule imported through `module` are formatted
    with the importing workflow's globals, which do not have them; `args` keeps its {placeholders}."""
    return f"tradeoff {subcommand} {runtime} {args}"


def J(obj):
    """A config value as a compact, key-sorted JSON string (for params: and the CLI)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def fmt(value):
    """A number as printed in ids and paths (as in the config: 0.7, 0.25, 1)."""
    return f"{value:g}"


def data_path(dataset):
    """The splits of `dataset`: one for every seed (they depend on the master seed only)."""
    return f"results/{dataset}/data.pt"


# The threat dimension: every entry of `threats` is a path segment `<norm>-<eps>` (linf-0.3).
THREATS = {threat_id(t): {"norm": t["norm"], "eps": float(t["eps"])} for t in config["threats"]}
THREAT_RE = "|".join(re.escape(t) for t in THREATS)


def threat_ids(chosen):
    """The ids of a stage's `threats` list in the order of `threats` (every threat when it is null)."""
    return select_threat_ids(config["threats"], chosen)


def threat_json(threat):
    return J(THREATS[threat])


def alternatives(names):
    """A wildcard constraint that matches exactly the given names."""
    return "|".join(re.escape(n) for n in names)


# The seed dimension: every trained model and every evaluation runs once per entry of `seeds`, in the folder
# results/<dataset><seed dir> where the {seed} wildcard is the seed's path segment (tradeoff.config.seed_dir:
# empty for seed 0, a slash and seed-<s> otherwise). What depends on the master seed only (the data splits) runs
# once.
SEEDS = [int(s) for s in config["seeds"]]
SEED_DIRS = [seed_dir(s) for s in SEEDS]
FIGURE_SEED = seed_dir(min(SEEDS))  # the seed whose records the figures draw (as tradeoff.figures reads summary.csv)


# (a group: an empty constraint would mean none, and seed 0's segment is empty)
wildcard_constraints:
    seed=f"(?:{alternatives(SEED_DIRS)})",


def seed_param(w):
    """The --seed of a job of the seed in wildcard {seed}: the master seed plus the training seed."""
    return job_seed(SEED, seed_of_dir(w.seed))


# Base models trained by the `train` rules: the config's `models` section plus one Gaussian-augmentation
# model per smoothing σ (attacked at `certify.threats`).
BASE_MODELS = {name: dict(entry) for name, entry in config["models"].items()}
for _sigma in config["certify"]["sigmas"]:
    BASE_MODELS[f"gauss_aug-{fmt(_sigma)}"] = {
        "objective": "gauss_aug",
        "params": {"sigma": _sigma},
        "threats": config["certify"]["threats"],
    }
SHARED_MODELS = [m for m, e in BASE_MODELS.items() if e["objective"] in THREAT_FREE_OBJECTIVES]
THREAT_MODELS = [m for m in BASE_MODELS if m not in SHARED_MODELS]

# Optional base models from the RobustBench model zoo (config `zoo.models`, none by default; zoo.smk).
ZOO = config.get("zoo") or {}
ZOO_MODELS = dict(ZOO.get("models") or {})


def model_threats(name):
    """The threats at which base model `name` is evaluated (and trained, unless it is threat-free)."""
    return threat_ids(BASE_MODELS[name].get("threats"))


def is_shared(classifier):
    """True for classifiers that do not depend on the threat (threat-free base models and zoo models)."""
    return classifier in SHARED_MODELS or classifier in ZOO_MODELS


def model_json(dataset, seed, threat, classifier):
    """The classifier JSON of `classifier` of training seed `seed` (its path segment) as used at `threat`. A zoo
    model is downloaded, not trained: one for every seed."""
    if classifier in ZOO_MODELS:
        return f"results/{dataset}/models/{classifier}.json"
    if is_shared(classifier):
        return f"results/{dataset}{seed}/models/{classifier}.json"
    return f"results/{dataset}{seed}/{threat}/models/{classifier}.json"


# Inputs of a classifier: its JSON plus whatever that JSON references. Composite stages register a
# (regex, function(dataset, seed, threat, match) -> list of paths) pair in CLASSIFIER_DEPS.
CLASSIFIER_DEPS = []


def classifier_inputs(dataset, seed, threat, classifier):
    spec = model_json(dataset, seed, threat, classifier)
    if classifier in BASE_MODELS or classifier in ZOO_MODELS:
        return [spec, spec[: -len(".json")] + ".pt"]
    for pattern, fn in CLASSIFIER_DEPS:
        m = re.fullmatch(pattern, classifier)
        if m:
            return [spec, *fn(dataset, seed, threat, m)]
    raise ValueError(f"unknown classifier '{classifier}'")


def eval_path(dataset, seed, threat, classifier, attack):
    return f"results/{dataset}{seed}/{threat}/eval/{classifier}/{attack}.csv"


def point_shard_output(records, ext="csv"):
    """The shard record (`ext`: csv or its json sidecar) of a per-point stage job (era-robustness,
    era-composite, mixing-adaptive) whose records are `records` (a pattern), as `tradeoff <stage> --shard {shard} --shards
    {shards} --out <records>` writes it (tradeoff.shards.shard_path): <folder>/shards/<stem>-k-of-n."""
    folder, _, name = records.rpartition("/")
    return f"{folder}/shards/{name.removesuffix('.csv')}-{{shard}}-of-{{shards}}.{ext}"


def point_shards(records):
    """The input function of a per-point stage's merge: the ATTACK_SHARDS shard records of `records`."""
    pattern = point_shard_output(records)

    def shards(w):
        return [pattern.format(**dict(w.items()), shard=k, shards=ATTACK_SHARDS) for k in range(ATTACK_SHARDS)]

    return shards


# Registries the stage files fill beside their rules: STAGE_RECORDS, the functions returning a stage's
# per-sample records of one training seed (its path segment) whose sidecars carry summary rows (in include
# order); FIGURES, one entry per figure (figures.smk makes a `figure_<name>` rule of each, running
# `tradeoff figures <cli>`). A figure entry has out: the PNG (a PDF is written next to it; a `{threat}` in it makes one job per threat of `threats`);
# inputs: a function of the wildcards returning the named inputs; args: the `params` function building the
# figure's JSON arguments; caption and category: the PNG's entry in the report; extra: further outputs
# (tables, a second figure); job: the name of the log and benchmark (default: the PNG's path under figures/).
STAGE_RECORDS = []
FIGURES = {}


def figure_report(path, caption, category):
    """`path` flagged for the report, in a subcategory per threat when the path has a {threat}."""
    sub = {"subcategory": "{threat}"} if "{threat}" in path else {}
    return report(path, caption=f"../report/{caption}", category=category, **sub)


def figure_targets():
    """Every figure's PNG, per threat of its `threats` when its path has a {threat}."""
    return [fig["out"].format(threat=t) for fig in FIGURES.values() for t in fig.get("threats") or [None]]


def summary_records():
    """{record: training seed} of every per-sample record whose sidecar carries summary rows, each once, in a
    stable order (seed by seed)."""
    records = {}
    for seed, folder in zip(SEEDS, SEED_DIRS):
        for stage in STAGE_RECORDS:
            for path in stage(folder):
                records.setdefault(path, seed)
    return records


def summary_inputs(wildcards=None):
    return list(summary_records())


def final_targets(wildcards=None):
    """What `snakemake` builds by default: the environment check, the summary, the sanity checks, the claims
    and every figure."""
    tables = ["results/summary.csv", "results/sanity.csv", "results/claims.csv"]
    return [f"results/env/{DATASET}.json", *tables, *figure_targets()]
