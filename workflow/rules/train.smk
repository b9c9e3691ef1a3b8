# Base-model training: one rule for every objective. A model whose config entry has `init: <id>` is
# fine-tuned from that model's checkpoint (a rule input, so the DAG orders the two).


def train_inputs(w):
    inputs = {"data": data_path(w.dataset)}
    init = BASE_MODELS[w.model].get("init")
    if init:
        inputs["init"] = f"results/{w.dataset}/models/{init}.json"
        inputs["init_weights"] = f"results/{w.dataset}/models/{init}.pt"
    return inputs


rule train:
    input:
        unpack(train_inputs),
    output:
        spec="results/{dataset}/models/{model}.json",
        weights="results/{dataset}/models/{model}.pt",
    wildcard_constraints:
        dataset=re.escape(DATASET),
        model="|".join(re.escape(m) for m in BASE_MODELS),
    params:
        arch=config["model"]["arch"],
        arch_options=J(config["model"]["options"]),
        objective=lambda w: BASE_MODELS[w.model]["objective"],
        objective_params=lambda w: J(BASE_MODELS[w.model]["params"]),
        train=lambda w: J(model_train_params(w.model)),
        threat=threat_json(),
        init=lambda w, input: f"--init {input.init}" if "init" in input.keys() else "",
        seed=SEED,
        checkpoint="results/{dataset}/checkpoints/{model}.pt",
    log:
        "logs/{dataset}/train/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/train/{model}.tsv"
    priority: 10  # the long jobs at the head of the DAG start first: they bound its wall time
    threads: THREADS
    resources:
        **HEAVY,
    shell:
        "tradeoff train {RUNTIME_ARGS} --seed {params.seed} --data {input.data} --name {wildcards.model} "
        "--arch {params.arch} --arch-options {params.arch_options:q} --objective {params.objective} "
        "--objective-params {params.objective_params:q} --threat {params.threat:q} "
        "--train-params {params.train:q} {params.init} --checkpoint {params.checkpoint} "
        "--out {output.spec} 2> {log}"
