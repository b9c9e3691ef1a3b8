# The attacks stage's constants, paths and helpers (its rules: workflow/rules/attacks.smk).


ATTACKS = list(config["attacks"]["run"])
SWEEP = "eps-sweep"  # robust accuracy over multiples of ε, for the sanity checks (one job per base model)
SUITE = [a for a in ATTACKS if a != SWEEP]  # the evaluations one `attacks` job runs in turn, in this order
ATTACK_SHARDS = int(config["attacks"]["shards"])
ATTACK_BATCH = int(config["attacks"]["batch_size"])
WHOLE_TEST = list(config["attacks"]["whole_test"])  # evaluations also run on the whole official test set


def attack_params(attack):
    if attack == "clean":
        return {}
    return config["attacks"][attack]


def evaluation_outputs(attacks, classifier="{classifier}"):
    """The record files (CSV and sidecar) an evaluation job writes for `attacks` ({dataset}, {seed}, {threat} open)."""
    folder = f"results/{{dataset}}{{seed}}/{{threat}}/eval/{classifier}"
    return [f"{folder}/{a}.{ext}" for a in attacks for ext in ("csv", "json")]


def evaluation_params(attacks):
    """The parameters of `attacks` as one JSON argument of `tradeoff attacks`."""
    return J({a: attack_params(a) for a in attacks})


def evaluation_shards(attacks):
    """The input function of the shard records of the evaluation job that runs `attacks`."""
    group = "+".join(attacks)

    def shards(w):
        folder = f"results/{w.dataset}{w.seed}/{w.threat}/eval/{w.classifier}/shards"
        return [f"{folder}/{group}-{k}-of-{ATTACK_SHARDS}.csv" for k in range(ATTACK_SHARDS)]

    return shards


# Classifiers with adaptive attacks of their own (the mixing network; the ERA composites, whose worst case is
# their adaptive evaluation): their worst case is a job of its own (rule attacks_worst), every other classifier's
# is written by the merge of its attack suite. (The ids of the mixing and ERA stages, whose helpers are read
# after this file.)
WITH_ADAPTIVE = r"mixnet|era-composite(?:-[^/]+)?"
SUITE_ONLY = rf"(?!(?:{WITH_ADAPTIVE})/)[^/]+"  # (a classifier id is followed by "/" in every path)

# The fixed-α mixtures are attacked by one job per mixing mode (rule attacks_mixtures_shard), every other
# classifier by its own (rule attacks_shard).
NOT_A_MIXTURE = r"(?!mix-(?:prob|logit)-)[^/]+"


def mixture_inputs(dataset, seed, threat, mode):
    """The classifier files of every fixed-α mixture of `mode` (the two base models once)."""
    files = [f for c in mix_ids(mode) for f in classifier_inputs(dataset, seed, threat, c)]
    return list(dict.fromkeys(files))


def mixture_shard_outputs(ext):
    """The shard records (`ext`: csv or its json sidecar) of every fixed-α mixture of {mode}, as one job writes
    them ({dataset}, {seed}, {threat}, {group}, {shard}, {shards} open; the ids as `mix_ids` of the mixing
    stage, whose helpers are read after this file)."""
    return [
        f"results/{{dataset}}{{seed}}/{{threat}}/eval/mix-{{mode}}-{fmt(a)}/shards/{{group}}-{{shard}}-of-{{shards}}.{ext}"
        for a in config["mixing"]["alphas"]
    ]


# The whole-test-set evaluations of a base model (attacks.whole_test): folder eval/<classifier>/all/.
whole_test_outputs = [
    f"results/{{dataset}}{{seed}}/{{threat}}/eval/{{classifier}}/all/{a}.{ext}"
    for a in WHOLE_TEST
    for ext in ("csv", "json")
]


def whole_test_shards(w):
    folder = f"results/{w.dataset}{w.seed}/{w.threat}/eval/{w.classifier}/all/shards"
    return [f"{folder}/{'+'.join(WHOLE_TEST)}-{k}-of-{ATTACK_SHARDS}.csv" for k in range(ATTACK_SHARDS)]


def evaluated_base_models():
    """(threat, model) pairs of every base model (and zoo model) at every threat it is evaluated at."""
    pairs = [(t, m) for m in BASE_MODELS for t in model_threats(m)]
    return pairs + [(t, z) for z in ZOO_MODELS for t in THREATS]


# Every base model (standard, pgd_at, trades, and those other stages add: gauss_aug-σ, variance, era) is
# evaluated under the same attacks at each of its threats, so that the unified comparison puts them all on
# the same axes.
def attack_records(seed):
    whole = [eval_path(DATASET, seed, t, f"{m}/all", a) for t, m in evaluated_base_models() for a in WHOLE_TEST]
    return [eval_path(DATASET, seed, t, m, a) for t, m in evaluated_base_models() for a in ATTACKS] + whole


SANITY = config["attacks"]["sanity"]


def evaluated_classifiers():
    """(threat, classifier) of every classifier the `attacks` rules attack."""
    mixed = [(t, c) for t in MIX_THREATS for c in [*MIX_IDS, "mixnet"]]
    return [*evaluated_base_models(), *mixed]


def worst_inputs(w):
    """The records whose per-point worst case is the robust accuracy of `w.classifier` at `w.threat` (seed
    `w.seed`), in the order that names the attack that broke each point."""
    if w.classifier in ERA_COMPOSITES:
        return [eval_path(DATASET, w.seed, w.threat, w.classifier, "adaptive")]
    paths = [eval_path(DATASET, w.seed, w.threat, w.classifier, a) for a in ATTACKS if a not in ("clean", SWEEP)]
    if w.classifier == "mixnet":
        paths.append(mix_adaptive_path(w.seed, w.threat))
    return paths


def worst_records(seed):
    composites = [(t, c) for t in ERA_THREATS for c in ERA_COMPOSITES]
    return [eval_path(DATASET, seed, t, c, "worst") for t, c in [*evaluated_classifiers(), *composites]]


def sweep_records(seed):
    """One ε-sweep per model: a threat-free model at every threat (the same weights, a wider sweep); a model
    trained per threat at its largest budget only, since the summary's classifier id does not say which of its
    per-threat models a sweep row comes from."""
    largest = {}
    for t, m in evaluated_base_models():
        if is_shared(m) or THREATS[t]["eps"] >= THREATS[largest.get(m, t)]["eps"]:
            largest[m] = t
    pairs = [(t, m) for t, m in evaluated_base_models() if is_shared(m) or largest[m] == t]
    return [eval_path(DATASET, seed, t, m, SWEEP) for t, m in pairs]


STAGE_RECORDS.extend([attack_records, worst_records, sweep_records])


# clean against robust accuracy of the standard, PGD-AT and TRADES models at one threat
FIGURES["base_tradeoff"] = dict(
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
)

# every method on the same clean/robust axes at one threat, with the comparison table
FIGURES["unified"] = dict(
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
)

# Tsipras et al.'s picture on real data: clean and worst-case robust accuracy of every method against ε,
# beside the closed forms on their synthetic distribution
FIGURES["threats"] = dict(
    cli="threats",
    out="results/figures/threats.png",
    inputs=lambda w: {
        "summary": "results/summary.csv",
        "closed_forms": tsipras_theory_path(FIGURE_SEED, "closed_forms"),
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
)
