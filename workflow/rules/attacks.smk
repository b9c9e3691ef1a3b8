# Attack evaluation: any classifier (base or composite) at any threat, attacked end to end, batch by batch
# (the batch is the unit of seeding, sharding and resuming); the per-point worst case over every attack run
# on a classifier (its reported robust accuracy); the masked-gradient sanity checks on the summary
# (Carlini et al. 2019).
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


def evaluated_base_models():
    """(threat, model) pairs of every base model (and zoo model) at every threat it is evaluated at."""
    pairs = [(t, m) for m in BASE_MODELS for t in model_threats(m)]
    return pairs + [(t, z) for z in ZOO_MODELS for t in THREATS]


# Every base model (standard, pgd_at, trades, and those other stages add: gauss_aug-σ, variance, era) is
# evaluated under the same attacks at each of its threats, so that the unified comparison puts them all on
# the same axes.
def attack_records():
    return [eval_path(DATASET, t, m, a) for t, m in evaluated_base_models() for a in ATTACKS]


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
)


localrules:
    attacks_worst,
    attacks_sanity,


localrules:
    attacks_merge,
    attacks_sweep_merge,


# Each shard (every n-th batch of test points, n = `attacks.shards`, 1 included) is a separate, resumable job
# (a GPU job on a cluster); a light job merges the shards into the per-evaluation records.
rule attacks_shard:
    """One shard of a classifier's evaluations at one threat (`group`: the evaluations joined by '+'; AutoAttack
    attacks the points PGD and the margin attack left standing)."""
    input:
        data=lambda w: data_path(w.dataset),
        classifier=lambda w: classifier_inputs(w.dataset, w.threat, w.classifier),
    output:
        records="results/{dataset}/{threat}/eval/{classifier}/shards/{group}-{shard}-of-{shards}.csv",
        meta="results/{dataset}/{threat}/eval/{classifier}/shards/{group}-{shard}-of-{shards}.json",
    log:
        "logs/{dataset}/{threat}/eval/{classifier}/{group}-{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/eval/{classifier}/{group}-{shard}-of-{shards}.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=THREAT_RE,
        group=alternatives(["+".join(SUITE), SWEEP]),
        shard=r"\d+",
        shards=str(ATTACK_SHARDS),
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        threat=lambda w: threat_json(w.threat),
        attacks=lambda w: w.group.replace("+", " "),
        evaluations=lambda w: evaluation_params(w.group.split("+")),
        batch_size=ATTACK_BATCH,
        seed=SEED,
        out_dir=lambda w: f"results/{w.dataset}/{w.threat}/eval/{w.classifier}",
    shell:
        tradeoff_shell(
            "attacks",
            "--seed {params.seed} --data {input.data} --classifier {input.classifier[0]} "
            "--name {wildcards.classifier} --out-dir {params.out_dir} --attacks {params.attacks} "
            "--threat {params.threat:q} --params {params.evaluations:q} --batch-size {params.batch_size} "
            "--shard {wildcards.shard} --shards {wildcards.shards} 2> {log}",
        )


rule attacks_merge:
    """Merge a classifier's evaluation shards at one threat into per-evaluation records."""
    input:
        evaluation_shards(SUITE),
    output:
        evaluation_outputs(SUITE),
    log:
        "logs/{dataset}/{threat}/eval/{classifier}/attacks-merge.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/eval/{classifier}/attacks-merge.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=THREAT_RE,
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        threat=lambda w: threat_json(w.threat),
        attacks=" ".join(SUITE),
        evaluations=evaluation_params(SUITE),
        out_dir=lambda w: f"results/{w.dataset}/{w.threat}/eval/{w.classifier}",
    shell:
        "tradeoff merge attacks --name {wildcards.classifier} --attacks {params.attacks} "
        "--threat {params.threat:q} --params {params.evaluations:q} --out-dir {params.out_dir} "
        "{input} 2> {log}"


use rule attacks_merge as attacks_sweep_merge with:
    """Merge a classifier's ε-sweep shards at one threat."""
    input:
        evaluation_shards([SWEEP]),
    output:
        evaluation_outputs([SWEEP]),
    log:
        "logs/{dataset}/{threat}/eval/{classifier}/eps-sweep-merge.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/eval/{classifier}/eps-sweep-merge.tsv"
    params:
        threat=lambda w: threat_json(w.threat),
        attacks=SWEEP,
        evaluations=evaluation_params([SWEEP]),
        out_dir=lambda w: f"results/{w.dataset}/{w.threat}/eval/{w.classifier}",


rule attacks_worst:
    """Per point, the worst case over every attack run on a classifier at one threat (its robust accuracy)."""
    input:
        worst_inputs,
    output:
        records="results/{dataset}/{threat}/eval/{classifier}/worst.csv",
        meta="results/{dataset}/{threat}/eval/{classifier}/worst.json",
    log:
        "logs/{dataset}/{threat}/eval/{classifier}/worst.log",
    benchmark:
        "results/benchmarks/{dataset}/{threat}/eval/{classifier}/worst.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=THREAT_RE,
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        threat=lambda w: threat_json(w.threat),
    shell:
        "tradeoff attacks-worst --name {wildcards.classifier} --threat {params.threat:q} --out {output.records} "
        "{input} 2> {log}"


rule attacks_sanity:
    """Masked-gradient sanity checks of every classifier's attack results (a failed check is flagged)."""
    input:
        summary="results/summary.csv",
    output:
        report("results/sanity.csv", caption="../report/sanity.rst", category="Comparison"),
    log:
        "logs/sanity.log",
    benchmark:
        "results/benchmarks/sanity.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        checks=J(SANITY),
    shell:
        "tradeoff attacks-sanity --summary {input.summary} --params {params.checks:q} --out {output} 2> {log}"
