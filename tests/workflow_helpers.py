"""Running the Snakemake workflow from tests: copies of the workflow in temp dirs, dry-run parsing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ["Snakefile", "config.yaml", "workflow", "profiles", "presets", "envs"]


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest / name)
    return dest


def env() -> dict[str, str]:
    e = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    e["PATH"] = bindir + os.pathsep + e.get("PATH", "")
    e.setdefault("OMP_NUM_THREADS", "1")
    return e


def snakemake(workdir: Path, *args: str, timeout: int = 1500, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env())
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def planned_outputs(workdir: Path, *args: str) -> dict[str, list[str]]:
    """Dry-run and return {rule: [outputs it would (re)create]} (rule `all` excluded)."""
    proc = snakemake(workdir, "-n", *args)
    return parse_plan(proc.stdout + proc.stderr)


def parse_plan(text: str) -> dict[str, list[str]]:
    """{rule: [outputs]} from the text of a dry run (rule `all` excluded; {} when nothing is to be done)."""
    plan: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not m or m.group(1) == "all":
            continue
        out = re.search(r"^\s+output: (.+)$", block, re.M)
        plan.setdefault(m.group(1), []).extend(o.strip() for o in out.group(1).split(",")) if out else None
    if "Nothing to be done" in text:
        return {}
    return plan
