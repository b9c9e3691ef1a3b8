# Figures drawn from results/summary.csv (and per-sample records) only: per threat, and across threats.


localrules:
    figure_base_tradeoff,
    figure_unified,
    figure_threats,


rule figure_base_tradeoff:
    """Clean against robust accuracy of the standard, PGD-AT and TRADES models at one threat."""
    input:
        summary="results/summary.csv",
    output:
        png=report(
            "results/figures/{threat}/base_tradeoff.png",
            caption="../report/base_tradeoff.rst",
            category="Base models",
            subcategory="{threat}",
        ),
        pdf="results/figures/{threat}/base_tradeoff.pdf",
    log:
        "logs/figures/{threat}/base_tradeoff.log",
    benchmark:
        "results/benchmarks/figures/{threat}/base_tradeoff.tsv"
    wildcard_constraints:
        threat=THREAT_RE,
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        args=lambda w, input: J(
            {
                "summary_path": input.summary,
                "dataset": DATASET,
                "threat": THREATS[w.threat],
                "classifiers": ["standard", "pgd_at", "trades"],
            }
        ),
    shell:
        "tradeoff figure base-tradeoff --out {output.png} --args {params.args:q} 2> {log}"


rule figure_unified:
    """Every method on the same clean/robust axes at one threat, with the comparison table."""
    input:
        summary="results/summary.csv",
    output:
        png=report(
            "results/figures/{threat}/unified_tradeoff.png",
            caption="../report/unified_tradeoff.rst",
            category="Comparison",
            subcategory="{threat}",
        ),
        pdf="results/figures/{threat}/unified_tradeoff.pdf",
        table=report(
            "results/tables/{threat}/comparison.csv",
            caption="../report/comparison_table.rst",
            category="Comparison",
            subcategory="{threat}",
        ),
        md="results/tables/{threat}/comparison.md",
    log:
        "logs/figures/{threat}/unified_tradeoff.log",
    benchmark:
        "results/benchmarks/figures/{threat}/unified_tradeoff.tsv"
    wildcard_constraints:
        threat=THREAT_RE,
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        args=lambda w, input, output: J(
            {
                "summary_path": input.summary,
                "dataset": DATASET,
                "threat": THREATS[w.threat],
                "table_out": output.table,
            }
        ),
    shell:
        "tradeoff figure unified --out {output.png} --args {params.args:q} 2> {log}"


# Tsipras et al.'s picture on real data, with the closed forms on their synthetic distribution beside it.
rule figure_threats:
    """Clean and worst-case robust accuracy of every method against ε, beside the closed forms."""
    input:
        summary="results/summary.csv",
        closed_forms="results/tsipras/theory/closed_forms.csv",
    output:
        png=report("results/figures/threats.png", caption="../report/threats.rst", category="Comparison"),
        pdf="results/figures/threats.pdf",
    log:
        "logs/figures/threats.log",
    benchmark:
        "results/benchmarks/figures/threats.tsv"
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        args=lambda w, input: J(
            {
                "summary_path": input.summary,
                "dataset": DATASET,
                "threats": list(THREATS.values()),
                "closed_forms": input.closed_forms,
            }
        ),
    shell:
        "tradeoff figure threats --out {output.png} --args {params.args:q} 2> {log}"
