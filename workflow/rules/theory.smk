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


STAGE_RECORDS.append(theory_records)


# the trade-off curves against ε and the trained weights on Tsipras et al.'s distribution: both figures in
# one job, since starting the command line costs more CPU than drawing them
FIGURES["tsipras"] = dict(
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
)


rule theory_train:
    """Train a linear model on Tsipras et al.'s distribution (standard or PGD adversarial training)."""
    input:
        data=data_path(TSIPRAS),
    output:
        spec="results/tsipras/models/{tmodel}.json",
        weights="results/tsipras/models/{tmodel}.pt",
    log:
        "logs/tsipras/train/{tmodel}.log",
    benchmark:
        "results/benchmarks/tsipras/train/{tmodel}.tsv"
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
        seed=SEED,
        checkpoint="results/tsipras/checkpoints/{tmodel}.pt",
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
        models=expand("results/tsipras/models/{tmodel}.{ext}", tmodel=list(TSIPRAS_MODELS), ext=["json", "pt"]),
    output:
        # exact.csv: clean margin per test point → the clean and the exact worst-case rows; pgd.csv: PGD
        records=TSIPRAS_RECORDS,
        closed_forms="results/tsipras/theory/closed_forms.csv",
        weights="results/tsipras/theory/weights.csv",
    log:
        "logs/tsipras/theory_evaluate.log",
    benchmark:
        "results/benchmarks/tsipras/theory_evaluate.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: THREADS
    resources:
        **HEAVY,
    params:
        models=" ".join(f"--model {m}=results/tsipras/models/{m}.json" for m in TSIPRAS_MODELS),
        threat=J(TSIPRAS_THREAT),
        pgd=J(THEORY["pgd"]),
        curve=J({k: THEORY["curve"][k] for k in ("eps_max", "points")}),
        seed=SEED,
    shell:
        tradeoff_shell(
            "theory",
            "--seed {params.seed} --data {input.data} {params.models} "
            "--threat {params.threat:q} --pgd {params.pgd:q} --curve {params.curve:q} "
            "--eval-dir results/tsipras/eval --theory-dir results/tsipras/theory 2> {log}",
        )
