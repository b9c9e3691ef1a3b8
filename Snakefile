# tradeoff: the accuracy-robustness trade-off, reproduced end to end.
#   snakemake --cores 2                                  the embedded default (digits + synthetic data)
#   snakemake --cores 2 --configfile presets/smoke.yaml  a tiny run (tests)
#   snakemake --profile profiles/slurm                   on a SLURM cluster
#   snakemake --sdm conda | apptainer ...                software per rule from envs/ (README)
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


from tradeoff.config import ConfigError, check_config

try:
    # relative to this file, so that the check also works when another workflow imports this one as a module
    check_config(config, workflow.source_path("workflow/schemas/config.schema.yaml"))
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


# The image (README: built from envs/Dockerfile or envs/tradeoff.def) holds the conda environments of
# envs/, built in advance; with `--sdm conda apptainer` every job runs in it, in its rule's environment.
containerized: config.get("container", "tradeoff.sif")


report: "workflow/report/workflow.rst"


wildcard_constraints:
    classifier="[^/]+",


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/zoo.smk"
include: "workflow/rules/attacks.smk"
include: "workflow/rules/certify.smk"
include: "workflow/rules/mixing.smk"
include: "workflow/rules/probabilistic.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/era.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/claims.smk"


rule all:
    """Everything: the environment check, results/summary.csv and every figure and table."""
    default_target: True
    input:
        final_targets,
