# Theory of the trade-off (Tsipras et al., ICLR 2019) on their distribution `tsipras`: two linear models
# (standard training; PGD adversarial training at ε = eps_over_eta·η) next to the closed forms of the
# averaging, Bayes-optimal and sign(x1) classifiers and of the trained weights.
# These rules have their own dataset (`tsipras`), independent of config["dataset"].

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


localrules: figure_tsipras


rule theory_train:
    input:
        data=data_path(TSIPRAS),
    output:
        spec="results/tsipras/models/{tmodel}.json",
        weights="results/tsipras/models/{tmodel}.pt",
    wildcard_constraints:
        tmodel="|".join(TSIPRAS_MODELS),
    params:
        objective=lambda w: TSIPRAS_MODELS[w.tmodel][0],
        objective_params=lambda w: J(TSIPRAS_MODELS[w.tmodel][1]),
        train=J(THEORY["train"]),
        threat=J(TSIPRAS_THREAT),
        seed=SEED,
        checkpoint="results/tsipras/checkpoints/{tmodel}.pt",
    log:
        "logs/tsipras/train/{tmodel}.log",
    benchmark:
        "results/benchmarks/tsipras/train/{tmodel}.tsv"
    threads: THREADS
    resources:
        **HEAVY,
    shell:
        "tradeoff train {RUNTIME_ARGS} --seed {params.seed} --data {input.data} --name tsipras-{wildcards.tmodel} "
        "--arch linear --objective {params.objective} --objective-params {params.objective_params:q} "
        "--threat {params.threat:q} --train-params {params.train:q} --checkpoint {params.checkpoint} "
        "--out {output.spec} 2> {log}"


rule theory_evaluate:
    input:
        data=data_path(TSIPRAS),
        models=expand("results/tsipras/models/{tmodel}.{ext}", tmodel=list(TSIPRAS_MODELS), ext=["json", "pt"]),
    output:
        # exact.csv: clean margin per test point → the clean and the exact worst-case rows; pgd.csv: PGD
        records=[tsipras_record(n, e) for n in TSIPRAS_ALL for e in ("exact", "pgd")],
        closed_forms="results/tsipras/theory/closed_forms.csv",
        weights="results/tsipras/theory/weights.csv",
    params:
        models=" ".join(f"--model {m}=results/tsipras/models/{m}.json" for m in TSIPRAS_MODELS),
        threat=J(TSIPRAS_THREAT),
        pgd=J(THEORY["pgd"]),
        curve=J({k: THEORY["curve"][k] for k in ("eps_max", "points")}),
        seed=SEED,
    log:
        "logs/tsipras/theory_evaluate.log",
    benchmark:
        "results/benchmarks/tsipras/theory_evaluate.tsv"
    threads: THREADS
    resources:
        **HEAVY,
    shell:
        "tradeoff theory-evaluate {RUNTIME_ARGS} --seed {params.seed} --data {input.data} {params.models} "
        "--threat {params.threat:q} --pgd {params.pgd:q} --curve {params.curve:q} "
        "--eval-dir results/tsipras/eval --theory-dir results/tsipras/theory 2> {log}"


rule figure_tsipras:
    # Both figures in one job: starting the command line costs more CPU than drawing them.
    input:
        closed_forms="results/tsipras/theory/closed_forms.csv",
        weights="results/tsipras/theory/weights.csv",
        records=[tsipras_record(n, e) for n in TSIPRAS_ALL for e in ("exact", "pgd")],
    output:
        tradeoff=report("results/figures/tsipras_tradeoff.png", caption="../report/tsipras_tradeoff.rst",
                        category="Theory (Tsipras et al.)"),
        tradeoff_pdf="results/figures/tsipras_tradeoff.pdf",
        weights=report("results/figures/tsipras_weights.png", caption="../report/tsipras_weights.rst",
                       category="Theory (Tsipras et al.)"),
        weights_pdf="results/figures/tsipras_weights.pdf",
    params:
        args=lambda w, input, output: J({
            "weights_out": output.weights, "closed_forms": input.closed_forms, "weights": input.weights,
            "records": {n: {e: tsipras_record(n, e) for e in ("exact", "pgd")} for n in TSIPRAS_ALL},
            "trained": list(TSIPRAS_MODELS), "references": TSIPRAS_REFERENCES,
            "empirical_points": THEORY["curve"]["empirical_points"],
        }),
    log:
        "logs/figures/tsipras.log",
    benchmark:
        "results/benchmarks/figures/tsipras.tsv"
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff figure tsipras --out {output.tradeoff} --args {params.args:q} 2> {log}"


SUMMARY_INPUTS.extend(tsipras_record(n, e) for n in TSIPRAS_ALL for e in ("exact", "pgd"))
SUMMARY_INPUTS.append("results/tsipras/theory/closed_forms.csv")
FIGURES.extend(["results/figures/tsipras_tradeoff.png", "results/figures/tsipras_weights.png"])
