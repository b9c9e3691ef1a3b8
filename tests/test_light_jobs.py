"""Light jobs (rules declaring the LIGHT resources and no model-running options) never import torch, neither
their command's module nor what it imports at the top: their start-up is a fifth of a heavy job's, and the DAG
runs dozens of them."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def light_commands() -> dict[str, str]:
    """{tradeoff subcommand: rule} of every light rule of the workflow (from the rules files' text)."""
    found: dict[str, str] = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        blocks = re.split(r"\n(?=(?:use )?rule )", smk.read_text())
        for block in blocks:
            name = re.match(r"(?:use )?rule (\w+)", block)
            if not name or "**LIGHT" not in block or "LIGHT_RUNTIME_ARGS" in block:
                continue
            cmd = re.search(r'tradeoff_shell\(\s*"([a-z-]+)"|"tradeoff ([a-z-]+)', block)
            if cmd:
                found[cmd.group(1) or cmd.group(2)] = name.group(1)
    return found


def test_the_workflow_has_light_rules_and_era_composite_spec_is_one():
    commands = light_commands()
    assert {"merge", "attacks-worst", "summary", "era-composite-spec"} <= set(commands), commands


def test_no_light_command_imports_torch():
    code = ("import sys\nfrom tradeoff.cli import build_parser\n"
            "for cmd in sys.argv[1:]:\n"
            "    build_parser([cmd, '--help'])\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
            "assert not bad, bad[:5]\n")
    for cmd, rule in light_commands().items():
        proc = subprocess.run([sys.executable, "-c", code, cmd], capture_output=True, text=True, timeout=120,
                              env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, f"{cmd} (rule {rule}) imports torch: {proc.stderr[-500:]}"
