# The theory stage's constants, paths and helpers (its rules: workflow/rules/theory.smk).


TSIPRAS = "tsipras"
THEORY = config["theory"]
TSIPRAS_EPS = float(THEORY["eps_over_eta"]) * float(config["data"]["tsipras"]["eta"])
TSIPRAS_THREAT = {"norm": "Linf", "eps": TSIPRAS_EPS}
# model id → (training objective, its parameters); summary ids are tsipras-<id>
TSIPRAS_MODELS = {"standard": ("standard", {}), "adversarial": ("pgd_at", THEORY["pgd_at"])}
TSIPRAS_REFERENCES = ["averaging", "bayes", "robust"]
TSIPRAS_ALL = [*TSIPRAS_MODELS, *TSIPRAS_REFERENCES]


# Every path of the stage is per training seed `seed` (its path segment, or the "{seed}" wildcard): the linear
# models are trained per seed, and the closed forms include those of their trained weights. The reference
# classifiers' closed forms do not depend on the seed; `tradeoff theory` tabulates them beside the trained
# models' (a few seconds), so each seed's summary rows carry them.
def tsipras_record(seed, name, evaluation):
    return f"results/{TSIPRAS}{seed}/eval/{name}/{evaluation}.csv"


def tsipras_records(seed):
    """exact.csv: clean margin per test point → the clean and the exact worst-case rows; pgd.csv: PGD."""
    return [tsipras_record(seed, n, e) for n in TSIPRAS_ALL for e in ("exact", "pgd")]


def tsipras_model_path(seed, model, ext):
    return f"results/{TSIPRAS}{seed}/models/{model}.{ext}"


def tsipras_theory_path(seed, name):
    """closed_forms (the closed forms of every classifier against ε) or weights (the trained models')."""
    return f"results/{TSIPRAS}{seed}/theory/{name}.csv"


def tsipras_figure_args(w, input, output):
    return J(
        {
            "weights_out": output.weights,
            "closed_forms": input.closed_forms,
            "weights": input.weights,
            "records": {n: {e: tsipras_record(FIGURE_SEED, n, e) for e in ("exact", "pgd")} for n in TSIPRAS_ALL},
            "trained": list(TSIPRAS_MODELS),
            "references": TSIPRAS_REFERENCES,
            "empirical_points": THEORY["curve"]["empirical_points"],
        }
    )


def theory_records(seed):
    return [*tsipras_records(seed), tsipras_theory_path(seed, "closed_forms")]


STAGE_RECORDS.append(theory_records)


# the trade-off curves against ε and the trained weights on Tsipras et al.'s distribution: both figures in
# one job, since starting the command line costs more CPU than drawing them
FIGURES["tsipras"] = dict(
    cli="tsipras",
    out="results/figures/tsipras_tradeoff.png",
    job="tsipras",
    inputs=lambda w: {
        "closed_forms": tsipras_theory_path(FIGURE_SEED, "closed_forms"),
        "weights": tsipras_theory_path(FIGURE_SEED, "weights"),
        "records": tsipras_records(FIGURE_SEED),
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
