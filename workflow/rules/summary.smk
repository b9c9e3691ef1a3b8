# The one table everything else reads: results/summary.csv (must be included last).

localrules: summary, prepare_data, figure_base_tradeoff


rule summary:
    input:
        SUMMARY_INPUTS,
    output:
        "results/summary.csv",
    log:
        "logs/summary.log",
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff summarize --out {output} {input} 2> {log}"
