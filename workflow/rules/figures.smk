# Figures drawn from results/summary.csv (and per-sample records) only.

rule figure_base_tradeoff:
    input:
        summary="results/summary.csv",
    output:
        png=report("results/figures/base_tradeoff.png", caption="../report/base_tradeoff.rst",
                   category="Base models"),
        pdf="results/figures/base_tradeoff.pdf",
    params:
        args=lambda w, input: J({"summary_path": input.summary, "dataset": DATASET,
                                 "classifiers": ["standard", "pgd_at", "trades"]}),
    log:
        "logs/figures/base_tradeoff.log",
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff figure base-tradeoff --out {output.png} --args {params.args:q} 2> {log}"


FIGURES.append("results/figures/base_tradeoff.png")


rule figure_unified:
    input:
        summary="results/summary.csv",
    output:
        png=report("results/figures/unified_tradeoff.png", caption="../report/unified_tradeoff.rst",
                   category="Comparison"),
        pdf="results/figures/unified_tradeoff.pdf",
        table=report("results/tables/comparison.csv", caption="../report/comparison_table.rst",
                     category="Comparison"),
        md="results/tables/comparison.md",
    params:
        args=lambda w, input, output: J({"summary_path": input.summary, "dataset": DATASET,
                                         "table_out": output.table}),
    log:
        "logs/figures/unified_tradeoff.log",
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff figure unified --out {output.png} --args {params.args:q} 2> {log}"


localrules: figure_base_tradeoff, figure_unified

FIGURES.append("results/figures/unified_tradeoff.png")
