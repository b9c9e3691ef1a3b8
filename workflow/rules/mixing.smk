# Mixing classifiers (Bai, Anderson, Sojoudi): fixed-α mixtures of the accurate model g and the robust model
# h in probability and logit space, the learned mixing network α(x) (adaptive smoothing), its adaptive
# evaluation, and the robust model's probability margins. Every mixed classifier is a classifier JSON that
# the generic `attacks` rules (attacks.smk) attacks end to end (clean, PGD, AutoAttack).


include: "helpers/mixing.smk"


localrules:
    mixing_spec,


rule mixing_temperatures:
    """T_g and T_h by temperature scaling (minimum calibration NLL) of each base model on the calibration split."""
    input:
        data=lambda w: data_path(w.dataset),
        accurate=lambda w: classifier_inputs(w.dataset, w.seed, w.threat, MIX_G),
        robust=lambda w: classifier_inputs(w.dataset, w.seed, w.threat, MIX_H),
    output:
        "results/{dataset}{seed}/{threat}/mixing/temperatures.json",
    log:
        "logs/{dataset}{seed}/{threat}/mixing/temperatures.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/mixing/temperatures.tsv"
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
        seed=seed_param,
    shell:
        tradeoff_shell(
            "mixing-temperatures",
            "--seed {params.seed} --data {input.data} --accurate {input.accurate[0]} "
            "--robust {input.robust[0]} --batch-size {params.batch_size} --out {output} 2> {log}",
        )


rule mixing_spec:
    """The classifier JSONs of the fixed-α mixtures of one mode (every α of `mixing.alphas`)."""
    input:
        accurate=lambda w: model_json(w.dataset, w.seed, w.threat, MIX_G),
        robust=lambda w: model_json(w.dataset, w.seed, w.threat, MIX_H),
        temperatures=mix_temperatures_input,
    output:
        [f"results/{{dataset}}{{seed}}/{{threat}}/models/{c}.json" for c in mix_ids("{mode}")],
    log:
        "logs/{dataset}{seed}/{threat}/mixing/mix-{mode}.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/mixing/mix-{mode}.tsv"
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
        accurate=lambda w: classifier_inputs(w.dataset, w.seed, w.threat, MIX_G),
        robust=lambda w: classifier_inputs(w.dataset, w.seed, w.threat, MIX_H),
        temperatures=mix_temperatures_input,
    output:
        spec="results/{dataset}{seed}/{threat}/models/mixnet.json",
        weights="results/{dataset}{seed}/{threat}/models/mixnet.pt",
    log:
        "logs/{dataset}{seed}/{threat}/mixing/mixing_fit.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/mixing/mixing_fit.tsv"
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
        seed=seed_param,
        checkpoint="results/{dataset}{seed}/{threat}/checkpoints/mixnet.pt",
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
        classifier=lambda w: classifier_inputs(w.dataset, w.seed, w.threat, "mixnet"),
        autoattack=lambda w: eval_path(w.dataset, w.seed, w.threat, "mixnet", "autoattack"),
    output:
        records=point_shard_output(MIX_ADAPTIVE),
        meta=point_shard_output(MIX_ADAPTIVE, "json"),
    log:
        "logs/{dataset}{seed}/{threat}/eval/mixnet/adaptive-{shard}-of-{shards}.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/eval/mixnet/adaptive-{shard}-of-{shards}.tsv"
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
        seed=seed_param,
        out=lambda w: mix_adaptive_path(w.seed, w.threat, w.dataset),
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
        records="results/{dataset}{seed}/{threat}/eval/mixnet/adaptive.csv",
        meta="results/{dataset}{seed}/{threat}/eval/mixnet/adaptive.json",
    log:
        "logs/{dataset}{seed}/{threat}/eval/mixnet/adaptive-merge.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/eval/mixnet/adaptive-merge.tsv"
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
        classifier=lambda w: classifier_inputs(w.dataset, w.seed, w.threat, w.model),
        temperatures=mix_temperatures_input,
    output:
        records="results/{dataset}{seed}/{threat}/eval/{model}/confidence.csv",
        meta="results/{dataset}{seed}/{threat}/eval/{model}/confidence.json",
    log:
        "logs/{dataset}{seed}/{threat}/eval/{model}/confidence.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/eval/{model}/confidence.tsv"
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
        seed=seed_param,
    shell:
        tradeoff_shell(
            "mixing-margins",
            "--seed {params.seed} --data {input.data} "
            "--classifier {input.classifier[0]} --name {wildcards.model} {params.temp} "
            "--threat {params.threat:q} --params {params.pgd:q} --batch-size {params.batch_size} "
            "--out {output.records} 2> {log}",
        )
