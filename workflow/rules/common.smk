# The config-derived constants and the functions of every stage; the stage files (data.smk … summary.smk)
# hold rules only. Each stage defines `<stage>_records()` (per-sample records whose sidecars carry summary
# rows) and `<stage>_figures()`; `summary_inputs()` and `final_targets()` at the end gather them.
import json
import re
from pathlib import Path

from tradeoff.config import THREAT_FREE_OBJECTIVES, select_threat_ids, threat_id

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
    return f"results/{dataset}/data.pt"


def dataset_params(dataset):
    """The `data` section of `dataset`, with the download settings of the torchvision datasets."""
    section = dict(config["data"].get(dataset, {}))
    if dataset in ("mnist", "cifar10", "cifar100"):
        section.update(root=config["data"]["root"], download=config["data"]["download"])
    return section


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


# Models whose objective ignores the threat (THREAT_FREE_OBJECTIVES) are trained once and shared by every
# threat. A neutral threat for their training command (never used by these objectives; constant, so that changing
# `threats` does not retrain them).
NO_THREAT = J({"norm": "Linf", "eps": 0.0})

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


def model_train_params(name):
    entry = BASE_MODELS[name]
    return {**config["train"], **entry.get("train", {})}


def is_shared(classifier):
    """True for classifiers that do not depend on the threat (threat-free base models and zoo models)."""
    return classifier in SHARED_MODELS or classifier in ZOO_MODELS


def model_json(dataset, threat, classifier):
    """The classifier JSON of `classifier` as used at `threat`."""
    if is_shared(classifier):
        return f"results/{dataset}/models/{classifier}.json"
    return f"results/{dataset}/{threat}/models/{classifier}.json"


# Inputs of a classifier: its JSON plus whatever that JSON references. Composite stages register a
# (regex, function(dataset, threat, match) -> list of paths) pair in CLASSIFIER_DEPS.
CLASSIFIER_DEPS = []


def classifier_inputs(dataset, threat, classifier):
    spec = model_json(dataset, threat, classifier)
    if classifier in BASE_MODELS or classifier in ZOO_MODELS:
        return [spec, spec[: -len(".json")] + ".pt"]
    for pattern, fn in CLASSIFIER_DEPS:
        m = re.fullmatch(pattern, classifier)
        if m:
            return [spec, *fn(dataset, threat, m)]
    raise ValueError(f"unknown classifier '{classifier}'")


def eval_path(dataset, threat, classifier, attack):
    return f"results/{dataset}/{threat}/eval/{classifier}/{attack}.csv"


def train_inputs(w):
    """The data and, for a model with `init: <id>`, the checkpoint it is fine-tuned from (same threat)."""
    threat = getattr(w, "threat", None)
    inputs = {"data": data_path(w.dataset)}
    init = BASE_MODELS[w.model].get("init")
    if init:
        inputs["init"], inputs["init_weights"] = classifier_inputs(w.dataset, threat, init)
    return inputs


def init_option(w, input):
    """`--init <classifier JSON>` when the rule has an `init` input, else nothing."""
    return f"--init {input.init}" if "init" in input.keys() else ""


# ---- attacks (attack.smk, figures.smk)
ATTACKS = list(config["attacks"]["run"])
SWEEP = "eps-sweep"  # robust accuracy over multiples of ε, for the sanity checks (one job per base model)
SUITE = [a for a in ATTACKS if a != SWEEP]  # the evaluations one `evaluate` job runs in turn, in this order
ATTACK_SHARDS = int(config["attacks"]["shards"])
ATTACK_BATCH = int(config["attacks"]["batch_size"])


def attack_params(attack):
    if attack == "clean":
        return {}
    return config["attacks"][attack]


def evaluation_outputs(attacks, classifier="{classifier}"):
    """The record files (CSV and sidecar) an evaluation job writes for `attacks` ({dataset}, {threat} open)."""
    folder = f"results/{{dataset}}/{{threat}}/eval/{classifier}"
    return [f"{folder}/{a}.{ext}" for a in attacks for ext in ("csv", "json")]


def evaluation_params(attacks):
    """The parameters of `attacks` as one JSON argument of `tradeoff evaluate`."""
    return J({a: attack_params(a) for a in attacks})


def evaluation_shards(attacks):
    """The input function of the shard records of the evaluation job that runs `attacks`."""
    group = "+".join(attacks)

    def shards(w):
        folder = f"results/{w.dataset}/{w.threat}/eval/{w.classifier}/shards"
        return [f"{folder}/{group}-{k}-of-{ATTACK_SHARDS}.csv" for k in range(ATTACK_SHARDS)]

    return shards


def point_shard_output(records, ext="csv"):
    """The shard record (`ext`: csv or its json sidecar) of a per-point stage job (robustness, era-composite,
    adaptive-eval) whose records are `records` (a pattern), as `tradeoff <stage> --shard {shard} --shards
    {shards} --out <records>` writes it (tradeoff.point_records.shard_path): <folder>/shards/<stem>-k-of-n."""
    folder, _, name = records.rpartition("/")
    return f"{folder}/shards/{name.removesuffix('.csv')}-{{shard}}-of-{{shards}}.{ext}"


def point_shards(records):
    """The input function of a per-point stage's merge: the ATTACK_SHARDS shard records of `records`."""
    pattern = point_shard_output(records)

    def shards(w):
        return [pattern.format(**dict(w.items()), shard=k, shards=ATTACK_SHARDS) for k in range(ATTACK_SHARDS)]

    return shards


def evaluated_base_models():
    """(threat, model) pairs of every base model (and zoo model) at every threat it is evaluated at."""
    pairs = [(t, m) for m in BASE_MODELS for t in model_threats(m)]
    return pairs + [(t, z) for z in ZOO_MODELS for t in THREATS]


# Every base model (standard, pgd_at, trades, and those other stages add: gauss_aug-σ, variance, era) is
# evaluated under the same attacks at each of its threats, so that the unified comparison puts them all on
# the same axes.
def attack_records():
    return [eval_path(DATASET, t, m, a) for t, m in evaluated_base_models() for a in ATTACKS]


def attack_figures():
    per_threat = [f"results/figures/{t}/{name}.png" for t in THREATS for name in ("base_tradeoff", "unified_tradeoff")]
    return [*per_threat, "results/figures/threats.png"]


# ---- certification (certify.smk)
CERT = config["certify"]
CERT_SIGMAS = {fmt(s): s for s in CERT["sigmas"]}  # σ as printed in paths → σ as in the config
CERT_SHARDS = int(CERT["shards"])
CERT_DIR = "results/{dataset}/certify/gauss_aug-{sigma}"  # the folder of one σ's records
CERT_RS = [f"{CERT_DIR.format(dataset=DATASET, sigma=s)}/rs.csv" for s in CERT_SIGMAS]
CERT_MIXED = [f"{CERT_DIR.format(dataset=DATASET, sigma=s)}/mixed.csv" for s in CERT_SIGMAS]


def certify_shard_paths(w):
    return expand(
        "results/{dataset}/certify/gauss_aug-{sigma}/shards/{shard}-of-{shards}.csv",
        dataset=w.dataset,
        sigma=w.sigma,
        shard=range(CERT_SHARDS),
        shards=CERT_SHARDS,
    )


def certify_records():
    return CERT_RS + CERT_MIXED


def certify_figures():
    return ["results/figures/certify_rs.png", "results/figures/certify_mixed.png"]


# ---- mixing classifiers (mixing.smk)
MIX = config["mixing"]
MIX_G, MIX_H = MIX["accurate"], MIX["robust"]
MIX_ALPHAS = {fmt(a): a for a in MIX["alphas"]}  # α as printed in ids → α as in the config
MIX_THREATS = threat_ids(MIX["threats"])


def mix_ids(mode):
    """The ids of the fixed-α mixtures of `mode`, in the order of `mixing.alphas`."""
    return [f"mix-{mode}-{a}" for a in MIX_ALPHAS]


MIX_IDS = [c for mode in MIX["modes"] for c in mix_ids(mode)]
MIX_FIGURES = ["mixing_tradeoff", "mixing_alpha", "mixing_margin"]


# T_g and T_h: `mixing.temperatures` is `calibrate` (temperature scaling of each base model on the calibration
# split, by the job mix_temperatures) or fixed values {g: T_g, h: T_h}.
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


def mixing_figures():
    return [f"results/figures/{t}/{name}.png" for t in MIX_THREATS for name in MIX_FIGURES]


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


# ---- probabilistic (ε, κ) certification (probabilistic.smk)
PROB = config["probabilistic"]
PROB_CLASSIFIERS = list(PROB["classifiers"])
PROB_TESTS = list(PROB["tests"])
PROB_SHARDS = int(PROB["shards"])
PROB_THREATS = threat_ids(PROB["threats"])
PROB_KEYS = [k for k in PROB if k not in ("classifiers", "threats", "tests", "points", "shards")]


def prob_settings(threat):
    """The sampling and test settings at `threat` (its ball is the vicinity)."""
    return {**{k: PROB[k] for k in PROB_KEYS}, **THREATS[threat]}


def prob_records(threat, classifier, test, dataset=DATASET):
    return f"results/{dataset}/{threat}/certify/{classifier}/prob-{test}.csv"


def prob_shards(threat, classifier, dataset=DATASET):
    return expand(
        "results/{dataset}/{threat}/certify/{classifier}/shards/prob-{shard}-of-{shards}.csv",
        dataset=dataset,
        threat=threat,
        classifier=classifier,
        shard=range(PROB_SHARDS),
        shards=PROB_SHARDS,
    )


# One light merge job for every classifier: each merge is a join of small CSVs, and one process start costs more.
PROB_PLAN = [
    {
        "shards": prob_shards(th, c),
        "pgd": eval_path(DATASET, th, c, "pgd"),
        "out": {t: prob_records(th, c, t) for t in PROB_TESTS},
    }
    for th in PROB_THREATS
    for c in PROB_CLASSIFIERS
]
PROB_MERGED = [p for item in PROB_PLAN for p in item["out"].values()]


def probabilistic_records():
    return PROB_MERGED


def probabilistic_figures():
    names = ["prob_kappa", *(["prob_samples"] if "sequential" in PROB_TESTS else [])]
    return [f"results/figures/{t}/{name}.png" for t in PROB_THREATS for name in names]


def prob_kappa_args(w):
    records = {c: {t: prob_records(w.threat, c, t) for t in PROB_TESTS} for c in PROB_CLASSIFIERS}
    return J({"records": records, "dataset": DATASET})


def prob_samples_args(w):
    records = {c: prob_records(w.threat, c, "sequential") for c in PROB_CLASSIFIERS}
    return J({"records": records, "dataset": DATASET})


# ---- theory of the trade-off (theory.smk): Tsipras et al.'s distribution, its own dataset `tsipras`
TSIPRAS = "tsipras"
THEORY = config["theory"]
TSIPRAS_EPS = float(THEORY["eps_over_eta"]) * float(config["data"]["tsipras"]["eta"])
TSIPRAS_THREAT = {"norm": "Linf", "eps": TSIPRAS_EPS}
# model id → (training objective, its parameters); summary ids are tsipras-<id>
TSIPRAS_MODELS = {"standard": ("standard", {}), "adversarial": ("pgd_at", THEORY["pgd_at"])}
TSIPRAS_REFERENCES = ["averaging", "bayes", "robust"]
TSIPRAS_ALL = [*TSIPRAS_MODELS, *TSIPRAS_REFERENCES]


def tsipras_record(name, evaluation):
    return f"results/{TSIPRAS}/eval/{name}/{evaluation}.csv"


# exact.csv: clean margin per test point → the clean and the exact worst-case rows; pgd.csv: PGD
TSIPRAS_RECORDS = [tsipras_record(n, e) for n in TSIPRAS_ALL for e in ("exact", "pgd")]


def tsipras_figure_args(w, input, output):
    return J(
        {
            "weights_out": output.weights,
            "closed_forms": input.closed_forms,
            "weights": input.weights,
            "records": {n: {e: tsipras_record(n, e) for e in ("exact", "pgd")} for n in TSIPRAS_ALL},
            "trained": list(TSIPRAS_MODELS),
            "references": TSIPRAS_REFERENCES,
            "empirical_points": THEORY["curve"]["empirical_points"],
        }
    )


def theory_records():
    return [*TSIPRAS_RECORDS, "results/tsipras/theory/closed_forms.csv"]


def theory_figures():
    return ["results/figures/tsipras_tradeoff.png", "results/figures/tsipras_weights.png"]


# ---- ERA and the robustness-indicator composition (era.smk)
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
# the records of the robustness and the composites' evaluation ({dataset}, {threat}, {classifier|composite} open)
ERA_ROBUSTNESS_RECORDS = "results/{dataset}/{threat}/eval/{classifier}/robustness.csv"
ERA_COMPOSITE_RECORDS = "results/{dataset}/{threat}/eval/{composite}/adaptive.csv"

# gauss3: the standard, TRADES and ERA models of `models`, retrained as MLPs on the 2-D data
GAUSS3 = "gauss3"
G3 = ERA["gauss3"]
G3_MODELS = ["standard", "trades", "era"]
G3_THREAT = {"norm": "Linf", "eps": float(G3["eps"])}


def era_robustness_path(dataset, threat, model):
    if threat is None:  # gauss3: one threat of its own
        return f"results/{dataset}/eval/{model}/robustness.csv"
    return eval_path(dataset, threat, model, "robustness")


def era_composite_inputs(dataset, threat, match):
    branch = ERA_COMPOSITES[match.group(0)]
    return [*classifier_inputs(dataset, threat, branch), *classifier_inputs(dataset, threat, ERA_STANDARD)]


CLASSIFIER_DEPS.append((alternatives(ERA_COMPOSITES), era_composite_inputs))


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


def era_records():
    records = [era_robustness_path(DATASET, t, m) for t in ERA_THREATS for m in ERA_RECORD_MODELS]
    composites = [eval_path(DATASET, t, c, "adaptive") for t in ERA_THREATS for c in ERA_COMPOSITES]
    return records + composites + [era_robustness_path(GAUSS3, None, m) for m in G3_MODELS]


def era_figures():
    return [*(f"results/figures/{t}/era_tradeoff.png" for t in ERA_THREATS), "results/figures/era_gauss3.png"]


# ---- the per-point worst case and the masked-gradient checks (attack.smk)
SANITY = config["attacks"]["sanity"]


def evaluated_classifiers():
    """(threat, classifier) of every classifier the `evaluate` rule attacks."""
    mixed = [(t, c) for t in MIX_THREATS for c in [*MIX_IDS, "mixnet"]]
    return [*evaluated_base_models(), *mixed]


def worst_inputs(w):
    """The records whose per-point worst case is the robust accuracy of `w.classifier` at `w.threat`, in the
    order that names the attack that broke each point."""
    if w.classifier in ERA_COMPOSITES:
        return [eval_path(DATASET, w.threat, w.classifier, "adaptive")]
    paths = [eval_path(DATASET, w.threat, w.classifier, a) for a in ATTACKS if a not in ("clean", SWEEP)]
    if w.classifier == "mixnet":
        paths.append(mix_adaptive_path(w.threat))
    return paths


def worst_records():
    composites = [(t, c) for t in ERA_THREATS for c in ERA_COMPOSITES]
    return [eval_path(DATASET, t, c, "worst") for t, c in [*evaluated_classifiers(), *composites]]


def sweep_records():
    """One ε-sweep per model: a threat-free model at every threat (the same weights, a wider sweep); a model
    trained per threat at its largest budget only, since the summary's classifier id does not say which of its
    per-threat models a sweep row comes from."""
    largest = {}
    for t, m in evaluated_base_models():
        if is_shared(m) or THREATS[t]["eps"] >= THREATS[largest.get(m, t)]["eps"]:
            largest[m] = t
    pairs = [(t, m) for t, m in evaluated_base_models() if is_shared(m) or largest[m] == t]
    return [eval_path(DATASET, t, m, SWEEP) for t, m in pairs]


# ---- the claims stage (claims.smk)
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
    for m in G3_MODELS:
        out[f"{GAUSS3}-{m}|robustness|none"] = era_robustness_path(GAUSS3, None, m)
    return out


def claims_inputs(w):
    return list(dict.fromkeys(claims_record_map().values()))


CLAIMS_CHOICES = "docs/choices"  # JSON records of the values chosen by looking at data


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


# ---- figures (figures.smk): one `figure_<name>` rule per entry, each job running `tradeoff figure <cli>`.
# out: the PNG (a PDF is written next to it); a `{threat}` in it makes one job per threat of `threats`.
# inputs: a function of the wildcards returning the named inputs; args: the `params` function building the
# figure's JSON arguments; caption and category: the PNG's entry in the report; extra: further outputs
# (tables, a second figure); job: the name of the log and benchmark (default: the PNG's path under figures/).
def figure_report(path, caption, category):
    """`path` flagged for the report, in a subcategory per threat when the path has a {threat}."""
    sub = {"subcategory": "{threat}"} if "{threat}" in path else {}
    return report(path, caption=f"../report/{caption}", category=category, **sub)


FIGURES = {
    # clean against robust accuracy of the standard, PGD-AT and TRADES models at one threat
    "base_tradeoff": dict(
        cli="base-tradeoff",
        out="results/figures/{threat}/base_tradeoff.png",
        threats=list(THREATS),
        inputs=lambda w: {"summary": "results/summary.csv"},
        args=lambda w, input: J(
            {
                "summary_path": input.summary,
                "dataset": DATASET,
                "threat": THREATS[w.threat],
                "classifiers": ["standard", "pgd_at", "trades"],
            }
        ),
        caption="base_tradeoff.rst",
        category="Base models",
    ),
    # every method on the same clean/robust axes at one threat, with the comparison table
    "unified": dict(
        cli="unified",
        out="results/figures/{threat}/unified_tradeoff.png",
        threats=list(THREATS),
        inputs=lambda w: {"summary": "results/summary.csv"},
        args=lambda w, input, output: J(
            {
                "summary_path": input.summary,
                "dataset": DATASET,
                "threat": THREATS[w.threat],
                "table_out": output.table,
            }
        ),
        caption="unified_tradeoff.rst",
        category="Comparison",
        extra={
            "table": figure_report("results/tables/{threat}/comparison.csv", "comparison_table.rst", "Comparison"),
            "md": "results/tables/{threat}/comparison.md",
        },
    ),
    # Tsipras et al.'s picture on real data: clean and worst-case robust accuracy of every method against ε,
    # beside the closed forms on their synthetic distribution
    "threats": dict(
        cli="threats",
        out="results/figures/threats.png",
        inputs=lambda w: {
            "summary": "results/summary.csv",
            "closed_forms": "results/tsipras/theory/closed_forms.csv",
        },
        args=lambda w, input: J(
            {
                "summary_path": input.summary,
                "dataset": DATASET,
                "threats": list(THREATS.values()),
                "closed_forms": input.closed_forms,
            }
        ),
        caption="threats.rst",
        category="Comparison",
    ),
    # certified accuracy against the ℓ2 radius of the smoothed models, one curve per σ
    "certify_rs": dict(
        cli="certify-rs",
        out="results/figures/certify_rs.png",
        inputs=lambda w: {"records": CERT_RS},
        args=lambda w, input: J(
            {"records": list(input.records), "sigmas": list(CERT_SIGMAS.values()), "dataset": DATASET}
        ),
        caption="certify_rs.rst",
        category="Certification",
    ),
    # certified accuracy against the radius of the mixed classifier for each α, beside smoothing alone
    "certify_mixed": dict(
        cli="certify-mixed",
        out="results/figures/certify_mixed.png",
        inputs=lambda w: {"rs": CERT_RS, "mixed": CERT_MIXED},
        args=lambda w, input: J(
            {
                "rs_records": list(input.rs),
                "mixed_records": list(input.mixed),
                "sigmas": list(CERT_SIGMAS.values()),
                "dataset": DATASET,
            }
        ),
        caption="certify_mixed.rst",
        category="Certification",
    ),
    # clean against worst-case robust accuracy of both mixing modes over α, the chord between the base models
    "mixing_tradeoff": dict(
        cli="mixing-tradeoff",
        out="results/figures/{threat}/mixing_tradeoff.png",
        threats=MIX_THREATS,
        inputs=lambda w: {"summary": "results/summary.csv"},
        args=mixing_tradeoff_args,
        caption="mixing_tradeoff.rst",
        category="Mixing classifiers",
    ),
    # histogram of the mixing network's α(x) on clean inputs and on the adaptive attack's inputs
    "mixing_alpha": dict(
        cli="mixing-alpha",
        out="results/figures/{threat}/mixing_alpha.png",
        threats=MIX_THREATS,
        inputs=lambda w: {"records": mix_adaptive_path(w.threat)},
        args=lambda w, input: J({"records": input.records}),
        caption="mixing_alpha.rst",
        category="Mixing classifiers",
    ),
    # the robust model's probability margins: points it gets right under attack against those it gets wrong
    "mixing_margin": dict(
        cli="mixing-margin",
        out="results/figures/{threat}/mixing_margin.png",
        threats=MIX_THREATS,
        inputs=lambda w: {"records": mix_margins_path(w.threat)},
        args=lambda w, input: J({"records": input.records}),
        caption="mixing_margin.rst",
        category="Mixing classifiers",
    ),
    # certified robust accuracy against κ at one threat, per training method and test
    "prob_kappa": dict(
        cli="prob-kappa",
        out="results/figures/{threat}/prob_kappa.png",
        threats=PROB_THREATS,
        inputs=lambda w: {"records": [prob_records(w.threat, c, t) for c in PROB_CLASSIFIERS for t in PROB_TESTS]},
        args=prob_kappa_args,
        caption="prob_kappa.rst",
        category="Probabilistic robustness",
    ),
    # histogram of the samples the sequential test used per input, against the fixed test's
    "prob_samples": dict(
        cli="prob-samples",
        out="results/figures/{threat}/prob_samples.png",
        threats=PROB_THREATS,
        inputs=lambda w: {"records": [prob_records(w.threat, c, "sequential") for c in PROB_CLASSIFIERS]},
        args=prob_samples_args,
        caption="prob_samples.rst",
        category="Probabilistic robustness",
    ),
    # the trade-off curves against ε and the trained weights on Tsipras et al.'s distribution: both figures in
    # one job, since starting the command line costs more CPU than drawing them
    "tsipras": dict(
        cli="tsipras",
        out="results/figures/tsipras_tradeoff.png",
        job="tsipras",
        inputs=lambda w: {
            "closed_forms": "results/tsipras/theory/closed_forms.csv",
            "weights": "results/tsipras/theory/weights.csv",
            "records": TSIPRAS_RECORDS,
        },
        args=tsipras_figure_args,
        caption="tsipras_tradeoff.rst",
        category="Theory (Tsipras et al.)",
        extra={
            "weights": figure_report(
                "results/figures/tsipras_weights.png", "tsipras_weights.rst", "Theory (Tsipras et al.)"
            ),
            "weights_pdf": "results/figures/tsipras_weights.pdf",
        },
    ),
    # clean accuracy, robust accuracy, robust inaccuracy and selection rate per classifier at one threat
    "era": dict(
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
    ),
    # decision regions of the gauss3 models, with the test points
    "era_gauss3": dict(
        cli="era-gauss3",
        out="results/figures/era_gauss3.png",
        inputs=lambda w: {
            "records": [era_robustness_path(GAUSS3, None, m) for m in G3_MODELS],
            "grids": [f"results/gauss3/eval/{m}/grid.csv" for m in G3_MODELS],
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
    ),
}


def figure_outputs(name):
    """The named outputs of figure `name`: `png` (in the report under its caption and category), `pdf` and extra."""
    fig = FIGURES[name]
    png = fig["out"]
    outputs = {"png": figure_report(png, fig["caption"], fig["category"]), "pdf": png[: -len(".png")] + ".pdf"}
    return {**outputs, **fig.get("extra", {})}


def figure_job(name):
    """The job name of figure `name` in log and benchmark paths (its PNG's path under results/figures/)."""
    fig = FIGURES[name]
    return fig.get("job") or fig["out"][len("results/figures/") : -len(".png")]


def figure_constraints(name):
    """The threat wildcard's constraint of a per-threat figure (none for a run-wide one)."""
    threats = FIGURES[name].get("threats")
    return {"threat": alternatives(threats)} if threats is not None else {}


# ---- the summary table and the final targets
def summary_inputs(wildcards=None):
    """Every per-sample record whose sidecar carries summary rows, each once, in a stable order."""
    stages = [
        attack_records,
        worst_records,
        sweep_records,
        certify_records,
        mixing_records,
        probabilistic_records,
        theory_records,
        era_records,
    ]
    return list(dict.fromkeys(p for stage in stages for p in stage()))


def final_targets(wildcards=None):
    """What `snakemake` builds by default: the environment check, the summary, the sanity checks, the claims
    and every figure."""
    stages = [attack_figures, certify_figures, mixing_figures, probabilistic_figures, theory_figures, era_figures]
    tables = ["results/summary.csv", "results/sanity.csv", "results/claims.csv"]
    return [f"results/env/{DATASET}.json", *tables, *(f for stage in stages for f in stage())]
