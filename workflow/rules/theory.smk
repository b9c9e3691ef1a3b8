# Theory of the trade-off (Tsipras et al., ICLR 2019) on their distribution `tsipras`: two linear models
# (standard training; PGD adversarial training at ε = eps_over_eta·η) next to the closed forms of the
# averaging, Bayes-optimal and sign(x1) classifiers and of the trained weights.
# These rules have their own dataset (`tsipras`), independent of config["dataset"].


include: "helpers/theory.smk"


rule theory_train:
    """Train a linear model on Tsipras et al.'s distribution (standard or PGD adversarial training)."""
    input:
        data=data_path(TSIPRAS),
    output:
        spec="results/tsipras{seed}/models/{tmodel}.json",
        weights="results/tsipras{seed}/models/{tmodel}.pt",
    log:
        "logs/tsipras{seed}/train/{tmodel}.log",
    benchmark:
        "results/benchmarks/tsipras{seed}/train/{tmodel}.tsv"
    wildcard_constraints:
        tmodel=alternatives(TSIPRAS_MODELS),
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        objective=lambda w: TSIPRAS_MODELS[w.tmodel][0],
        objective_params=lambda w: J(TSIPRAS_MODELS[w.tmodel][1]),
        train=J(THEORY["train"]),
        threat=J(TSIPRAS_THREAT),
        seed=seed_param,
        checkpoint="results/tsipras{seed}/checkpoints/{tmodel}.pt",
    shell:
        tradeoff_shell(
            "train",
            "--seed {params.seed} --data {input.data} --name tsipras-{wildcards.tmodel} "
            "--arch linear --objective {params.objective} --objective-params {params.objective_params:q} "
            "--threat {params.threat:q} --train-params {params.train:q} --checkpoint {params.checkpoint} "
            "--out {output.spec} 2> {log}",
        )


rule theory_evaluate:
    """Exact and PGD evaluation of the trained and the reference classifiers, and the closed forms."""
    input:
        data=data_path(TSIPRAS),
        models=[tsipras_model_path("{seed}", m, ext) for m in TSIPRAS_MODELS for ext in ("json", "pt")],
    output:
        # exact.csv: clean margin per test point → the clean and the exact worst-case rows; pgd.csv: PGD
        records=tsipras_records("{seed}"),
        closed_forms=tsipras_theory_path("{seed}", "closed_forms"),
        weights=tsipras_theory_path("{seed}", "weights"),
    log:
        "logs/tsipras{seed}/theory_evaluate.log",
    benchmark:
        "results/benchmarks/tsipras{seed}/theory_evaluate.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        models=lambda w: " ".join(f"--model {m}={tsipras_model_path(w.seed, m, 'json')}" for m in TSIPRAS_MODELS),
        threat=J(TSIPRAS_THREAT),
        pgd=J(THEORY["pgd"]),
        curve=J({k: THEORY["curve"][k] for k in ("eps_max", "points")}),
        seed=seed_param,
    shell:
        tradeoff_shell(
            "theory",
            "--seed {params.seed} --data {input.data} {params.models} "
            "--threat {params.threat:q} --pgd {params.pgd:q} --curve {params.curve:q} "
            "--eval-dir results/tsipras{wildcards.seed}/eval "
            "--theory-dir results/tsipras{wildcards.seed}/theory 2> {log}",
        )
