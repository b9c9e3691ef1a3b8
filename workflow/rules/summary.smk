# The one table everything else reads: results/summary.csv.


localrules:
    summary,


rule summary:
    """Gather the summary rows of every per-sample record into results/summary.csv."""
    input:
        summary_inputs,
    output:
        "results/summary.csv",
    log:
        "logs/summary.log",
    benchmark:
        "results/benchmarks/summary.tsv"
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        seeds=lambda w: ",".join(str(s) for s in summary_records().values()),
    shell:
        "tradeoff summary --out {output} --seeds {params.seeds} {input} 2> {log}"
