# Every figure of the run: one light rule `figure_<name>` per entry of FIGURES (filled by the stages beside their
# rules, in workflow/rules/helpers/), which gives its
# inputs, outputs, JSON arguments, report caption and category; per threat when its PNG path has a {threat}.
# The command is a constant string (the figure's name is a param): a rule's shell string is evaluated again when
# its job runs, after this loop has moved on.


include: "helpers/figures.smk"


for _name, _figure in FIGURES.items():

    rule:
        """One figure of FIGURES, per threat when its path has a {threat}: `tradeoff figures`."""
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
