#!/usr/bin/env bash
# Run by Snakemake inside the freshly created environment (`--sdm conda`): installs this project, whose
# dependencies the environment file already pins, in editable mode, so that a change to src/ reaches the
# jobs without rebuilding the environment.
set -euo pipefail
python -m pip install --no-deps --editable "$(cd "$(dirname "$0")/.." && pwd)"
