# The one table everything else reads: results/summary.csv (must be included last).

localrules: summary, prepare_data


rule summary:
    input:
        list(dict.fromkeys(SUMMARY_INPUTS)),  # each record once, in a stable order
    output:
        "results/summary.csv",
    log:
        "logs/summary.log",
    threads: 1
    resources:
        **LIGHT,
    shell:
        "tradeoff summarize --out {output} {input} 2> {log}"
