# The claims stage: each paper's headline claim checked on the run's per-point records (results/claims.csv,
# results/claims.md), with the paper's number, ours, a 95% interval and a verdict. It reads every other stage's
# records, so a stage switched off makes its claims "not testable" rather than failing.


include: "helpers/claims.smk"


localrules:
    claims,


rule claims:
    """Check each paper's claims on the per-point records: numbers, 95% intervals and verdicts."""
    input:
        summary="results/summary.csv",
        records=claims_inputs,
        choices=claims_choices,
    output:
        csv=report("results/claims.csv", caption="../report/claims.rst", category="Claims"),
        md="results/claims.md",
    log:
        "logs/claims.log",
    benchmark:
        "results/benchmarks/claims.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        records=lambda w: J(claims_record_map()),
        options=J(claims_options()),
        choices=CLAIMS_CHOICES,
    shell:
        "tradeoff claims --records {params.records:q} --summary {input.summary} --options {params.options:q} "
        "--choices {params.choices} --out {output.csv} 2> {log}"
