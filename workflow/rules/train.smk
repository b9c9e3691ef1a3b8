# Base-model training: one rule for every objective, per threat (robust objectives) or once for every threat
# (`train_shared`: objectives that ignore the threat). A model whose config entry has `init: <id>` is
# fine-tuned from that model's checkpoint at the same threat (a rule input, so the DAG orders the two).


include: "helpers/train.smk"


rule train:
    """Train a base model whose objective depends on the threat, at one threat."""
    input:
        unpack(train_inputs),
    output:
        spec="results/{dataset}{seed}/{threat}/models/{model}.json",
        weights="results/{dataset}{seed}/{threat}/models/{model}.pt",
    log:
        "logs/{dataset}{seed}/{threat}/train/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/{threat}/train/{model}.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        threat=THREAT_RE,
        model=alternatives(THREAT_MODELS),
    priority: 10  # the long jobs at the head of the DAG start first: they bound its wall time
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        arch=config["model"]["arch"],
        arch_options=J(config["model"]["options"]),
        objective=lambda w: BASE_MODELS[w.model]["objective"],
        objective_params=lambda w: J(BASE_MODELS[w.model]["params"]),
        train=lambda w: J(model_train_params(w.model)),
        threat=lambda w: threat_json(w.threat),
        init=init_option,
        seed=seed_param,
        checkpoint="results/{dataset}{seed}/{threat}/checkpoints/{model}.pt",
    shell:
        tradeoff_shell(
            "train",
            "--seed {params.seed} --data {input.data} --name {wildcards.model} "
            "--arch {params.arch} --arch-options {params.arch_options:q} --objective {params.objective} "
            "--objective-params {params.objective_params:q} --threat {params.threat:q} "
            "--train-params {params.train:q} {params.init} --checkpoint {params.checkpoint} "
            "--out {output.spec} 2> {log}",
        )


use rule train as train_shared with:
    """Train a base model whose objective ignores the threat, once for every threat."""
    output:
        spec="results/{dataset}{seed}/models/{model}.json",
        weights="results/{dataset}{seed}/models/{model}.pt",
    log:
        "logs/{dataset}{seed}/train/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}{seed}/train/{model}.tsv"
    wildcard_constraints:
        dataset=re.escape(DATASET),
        model=alternatives(SHARED_MODELS),
    params:
        arch=config["model"]["arch"],
        arch_options=J(config["model"]["options"]),
        objective=lambda w: BASE_MODELS[w.model]["objective"],
        objective_params=lambda w: J(BASE_MODELS[w.model]["params"]),
        train=lambda w: J(model_train_params(w.model)),
        threat=NO_THREAT,
        init=init_option,
        seed=seed_param,
        checkpoint="results/{dataset}{seed}/checkpoints/{model}.pt",
