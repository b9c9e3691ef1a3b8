# Every figure of the run: one light rule `figure_<name>` per entry of FIGURES (common.smk), which gives its
# inputs, outputs, JSON arguments, report caption and category; per threat when its PNG path has a {threat}.
# The command is a constant string (the figure's name is a param): a rule's shell string is evaluated again when
# its job runs, after this loop has moved on.
def figure_outputs(name):
    """The named outputs of figure `name`: `png` (in the report under its caption and category), `pdf` and extra."""
    fig = FIGURES[name]
    png = fig["out"]
    outputs = {"png": figure_report(png, fig["caption"], fig["category"]), "pdf": png[: -len(".png")] + ".pdf"}
    return {**outputs, **fig.get("extra", {})}


def figure_job(name):
    """The job name of figure `name` in log and benchmark paths (its PNG's path under results/figures/)."""
    fig = FIGURES[name]
    return fig.get("job") or fig["out"][len("results/figures/") : -len(".png")]


def figure_constraints(name):
    """The threat wildcard's constraint of a per-threat figure (none for a run-wide one)."""
    threats = FIGURES[name].get("threats")
    return {"threat": alternatives(threats)} if threats is not None else {}


for _name, _figure in FIGURES.items():

    rule:
        """One figure of FIGURES (common.smk), per threat when its path has a {threat}: `tradeoff figure`."""
        name:
            f"figure_{_name}"
        input:
            unpack(_figure["inputs"]),
        output:
            **figure_outputs(_name),
        log:
            f"logs/figures/{figure_job(_name)}.log",
        benchmark:
            f"results/benchmarks/figures/{figure_job(_name)}.tsv"
        wildcard_constraints:
            **figure_constraints(_name),
        localrule: True
        conda:
            "../../envs/plots.yaml"
        threads: 1
        resources:
            **LIGHT,
        params:
            cli=_figure["cli"],
            args=_figure["args"],
        shell:
            "tradeoff figures {params.cli} --out {output.png} --args {params.args:q} 2> {log}"
