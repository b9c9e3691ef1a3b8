# The figures stage's constants, paths and helpers (its rules: workflow/rules/figures.smk).


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
