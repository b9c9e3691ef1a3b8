# The theory stage's constants, paths and helpers (its rules: workflow/rules/theory.smk).


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
