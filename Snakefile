# tradeoff: the accuracy-robustness trade-off, reproduced end to end.
#   snakemake --cores 2                                  the embedded default (digits + synthetic data)
#   snakemake --cores 2 --configfile presets/smoke.yaml  a tiny run (tests)
#   snakemake --profile profiles/slurm                   on a SLURM cluster
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.0")

configfile: "config.yaml"


from tradeoff.config import ConfigError, check_config

try:
    check_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/zoo.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/certify.smk"
include: "workflow/rules/mixing.smk"
include: "workflow/rules/probabilistic.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/era.smk"
include: "workflow/rules/summary.smk"


rule all:
    default_target: True
    input:
        f"results/env/{DATASET}.json",
        "results/summary.csv",
        FIGURES,
