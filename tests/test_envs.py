"""The conda environments in envs/ against pyproject.toml: same exact pins, nothing a stage imports missing,
and container recipes that carry the same environments (Snakemake's --containerize layout).

Building the environments or images needs conda channels or a container registry; where this machine has no
conda or container runtime those checks skip and say so, and everything else is checked."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_helpers import ROOT

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
ENVS = ROOT / "envs"
ENV_FILES = {"torch": ENVS / "torch.yaml", "plots": ENVS / "plots.yaml"}
# Packages only the Snakemake process needs (scheduling, SLURM submission, the HTML report), never a job.
DRIVER_ONLY = {"snakemake", "snakemake-executor-plugin-slurm", "pygments"}
# Subcommands of the light rules (summary table and figures) that run in envs/plots.yaml.
LIGHT_MODULES = ["tradeoff.commands.core", "tradeoff.commands.figures", "tradeoff.figures", "tradeoff.io",
                 "tradeoff.records", "tradeoff.attacks.worst", "tradeoff.attacks.sanity", "tradeoff.mixing.spec"]
RUNTIMES = ("conda", "mamba", "micromamba")
NO_CONDA = ("no conda, mamba or micromamba on PATH, and none can be installed here: the conda channels are "
            "unreachable and PyPI/Debian ship no conda runtime")


def norm(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_req(text: str) -> tuple[str, str, str]:
    """(normalized name, operator, version) of a requirement like 'torch==2.14.1' (extras/markers dropped)."""
    m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(==|>=|<=|~=|>|<|!=)?\s*([^;,\s]*)"
                     r"\s*(?:[;,].*)?", text)
    assert m, f"cannot parse requirement {text!r}"
    return norm(m.group(1)), m.group(2) or "", m.group(3)


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def project_pins() -> dict[str, str]:
    return {name: version for name, _, version in map(parse_req, pyproject()["project"]["dependencies"])}


def env_spec(path: Path) -> dict:
    spec = yaml.safe_load(path.read_text())
    assert isinstance(spec, dict) and "dependencies" in spec, f"{path}: not a conda environment file"
    return spec


def env_pip_pins(path: Path) -> dict[str, str]:
    """{name: version} of the pip section; every entry must be an exact pin."""
    pins: dict[str, str] = {}
    for dep in env_spec(path)["dependencies"]:
        if isinstance(dep, dict):
            for req in dep.get("pip", []):
                name, op, version = parse_req(req)
                assert op == "==", f"{path.name}: pip requirement {req!r} is not an exact pin"
                pins[name] = version
    return pins


def env_conda_pins(path: Path) -> dict[str, str]:
    """{name: version} of the conda packages; every one pinned to an exact version (name=X.Y.Z)."""
    pins = {}
    for dep in env_spec(path)["dependencies"]:
        if isinstance(dep, str):
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*==?\s*(\d+(?:\.\d+)+)", dep)
            assert m, f"{path.name}: conda package {dep!r} is not pinned to an exact version"
            pins[norm(m.group(1))] = m.group(2)
    return pins


def _guarded(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside a ``try`` whose handler catches ImportError (optional extras)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            ids.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return ids


def third_party_imports(paths: list[Path]) -> set[str]:
    """Top-level module names imported anywhere in ``paths`` (inside functions too), minus the stdlib, the
    project itself and imports guarded by ``except ImportError`` (optional extras say what they need)."""
    names: set[str] = set()
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        optional = _guarded(tree)
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("tradeoff", "__future__")}


def distributions(modules: set[str]) -> tuple[set[str], set[str]]:
    """(normalized distributions providing ``modules``, modules no installed distribution provides)."""
    table = md.packages_distributions()
    found, unknown = set(), set()
    for mod in modules:
        if mod in table:
            found.update(norm(d) for d in table[mod])
        else:
            unknown.add(mod)
    return found, unknown


def optional_names() -> set[str]:
    extras = pyproject()["project"].get("optional-dependencies", {})
    return {parse_req(r)[0] for reqs in extras.values() for r in reqs}


# ---------------------------------------------------------------------------------------------- pins


def test_pyproject_dependencies_and_extras_are_exact_pins():
    project = pyproject()["project"]
    for req in project["dependencies"] + [r for reqs in project["optional-dependencies"].values() for r in reqs]:
        name, op, _ = parse_req(req)
        if name == "setuptools":  # the zoo extra's upper bound on a build tool, not a pin of a used package
            continue
        assert op == "==", f"pyproject.toml: {req!r} is not an exact pin"


@pytest.mark.parametrize("env", sorted(ENV_FILES))
def test_env_pins_agree_with_pyproject(env):
    pins, project = env_pip_pins(ENV_FILES[env]), project_pins()
    assert pins, f"{env}.yaml has no pip section"
    for name, version in pins.items():
        assert name in project, f"{env}.yaml pins {name}, which pyproject.toml does not depend on"
        assert version == project[name], (f"{name}: {env}.yaml pins {version}, pyproject.toml {project[name]}")
    conda = env_conda_pins(ENV_FILES[env])
    assert set(conda) == {"python", "pip"}, f"{env}.yaml: Python packages belong in the pip section, got {conda}"
    assert conda["python"].startswith("3.") and int(conda["python"].split(".")[1]) >= 10  # requires-python


def test_pins_are_the_tested_versions():
    """The pins are the versions installed in the environment the tests run in (CI installs from them)."""
    for name, version in project_pins().items():
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            pytest.fail(f"{name} is a dependency but not installed")
        assert installed == version, f"{name}: pinned {version}, installed {installed}"


def test_torch_env_carries_every_dependency_a_job_imports():
    """Every third-party import of the package maps to a dependency, and every dependency a job needs is in
    envs/torch.yaml (the compute stages' environment)."""
    modules = third_party_imports(sorted((ROOT / "src" / "tradeoff").rglob("*.py")))
    dists, unknown = distributions(modules)
    optional = optional_names()
    project = project_pins()
    torch_env = env_pip_pins(ENV_FILES["torch"])
    missing_dist = sorted(m for m in unknown if norm(m) not in optional)
    assert not missing_dist, f"imported but provided by no installed distribution: {missing_dist}"
    for dist in sorted(dists - optional):
        if dist in project:
            assert dist in torch_env, f"the package imports {dist}, missing from envs/torch.yaml"
    for name in project:
        if name not in DRIVER_ONLY:
            assert name in torch_env, f"dependency {name} is missing from envs/torch.yaml"
    assert not DRIVER_ONLY & dists, f"the package imports {DRIVER_ONLY & dists}: not driver-only after all"


def test_plots_env_carries_what_the_light_commands_import():
    """Import the summary/figure commands and every figure module in a fresh interpreter; each third-party
    distribution it loads that the project depends on must be in envs/plots.yaml."""
    code = ("import importlib, pkgutil, sys\n"
            "import tradeoff.figures as f\n"
            f"for m in {LIGHT_MODULES!r}: importlib.import_module(m)\n"
            "for i in pkgutil.iter_modules(f.__path__): importlib.import_module('tradeoff.figures.' + i.name)\n"
            "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    loaded = {m for m in out.stdout.split() if m not in sys.stdlib_module_names and not m.startswith("_")}
    dists, _ = distributions(loaded)
    plots = env_pip_pins(ENV_FILES["plots"])
    needed = sorted(d for d in dists & set(project_pins()) if d not in plots)
    assert not needed, f"the light commands load {needed}, missing from envs/plots.yaml"


# ---------------------------------------------------------------------------------------- deployment


def snakemake_env_hash(env_file: Path) -> str:
    """The prefix name Snakemake gives a file-based conda environment in a container
    (snakemake.deployment.conda.Env.content_hash: md5 over the post-deploy script, the pin file, the file)."""
    h = hashlib.md5(usedforsecurity=False)
    for aux in (env_file.with_suffix(".post-deploy.sh"),):
        if aux.exists():
            h.update(aux.read_bytes())
    h.update(env_file.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("env", sorted(ENV_FILES))
def test_post_deploy_script_installs_the_project(env):
    script = ENV_FILES[env].with_suffix(".post-deploy.sh").read_text()
    assert "pip install --no-deps" in script, "the post-deploy script must not re-resolve the pinned dependencies"
    proc = subprocess.run(["bash", "-n", str(ENV_FILES[env].with_suffix(".post-deploy.sh"))], capture_output=True)
    assert proc.returncode == 0, proc.stderr


def test_container_recipes_are_up_to_date():
    """envs/Dockerfile and envs/tradeoff.def are what envs/containerize.py makes from the env files now."""
    proc = subprocess.run([sys.executable, str(ENVS / "containerize.py"), "--check"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    docker = (ENVS / "Dockerfile").read_text()
    for env_file in ENV_FILES.values():
        prefix = f"/conda-envs/{snakemake_env_hash(env_file)}"
        assert f"COPY envs/{env_file.name} {prefix}/environment.yaml" in docker
        assert f"conda env create --prefix {prefix} --file {prefix}/environment.yaml" in docker
        assert f"conda run --prefix {prefix} bash /opt/tradeoff/envs/{env_file.stem}.post-deploy.sh" in docker


def rule_blocks() -> dict[str, str]:
    """{rule name: its text} of every `rule` definition in workflow/rules/*.smk (`use rule` copies excluded: they
    inherit the directives of the rule they copy). A rule defined in a loop (`rule:` with a `name:` directive) is
    listed under its name's template, e.g. `figure_{_name}`."""
    blocks = {}
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = path.read_text()
        starts = [(m.start(), m) for m in re.finditer(r"^([ \t]*)(use )?rule(?: (\w+)|:)", text, re.M)]
        for i, (start, m) in enumerate(starts):
            end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
            if not m.group(2):
                block = text[start:end]
                name = m.group(3) or re.search(r"^\s+name:\s*f?\"([^\"]+)\"", block, re.M).group(1)
                blocks[name] = block
    return blocks


def test_every_rule_points_into_envs():
    """Every rule names one of the environments of envs/; the summary table and the figures the light one."""
    blocks = rule_blocks()
    assert {"train", "attacks_shard", "summary", "figure_{_name}"} <= set(blocks), sorted(blocks)
    for name, text in blocks.items():
        m = re.search(r"^\s+conda:\s*\n\s+\"\.\./\.\./envs/(\w+)\.yaml\"", text, re.M)
        assert m, f"rule {name} has no conda: directive pointing into envs/"
        assert m.group(1) in ENV_FILES, f"rule {name}: no envs/{m.group(1)}.yaml"
        light = name == "summary" or name.startswith("figure_")
        assert m.group(1) == ("plots" if light else "torch"), f"rule {name} runs in envs/{m.group(1)}.yaml"


ENV_HASH_LABEL = r"io\.github\.snakemake\.conda_env_hash[ =]\"?([0-9a-f]{64})"


def containerize(tmp_path: Path):
    """Snakemake's --containerize on a copy of the workflow (it needs conda for the environments' lines)."""
    from workflow_helpers import copy_workflow, snakemake

    work = copy_workflow(tmp_path / "wf")
    return snakemake(work, "--containerize", "--configfile", "presets/smoke.yaml", timeout=300, check=False)


@pytest.mark.slow
def test_containerize_label_matches_the_recipes(tmp_path):
    """The image label Snakemake derives from the environments the rules name (a hash over their contents, written
    before it needs conda) is the label of both recipes: the rules use exactly the environments baked in."""
    proc = containerize(tmp_path)
    m = re.search(ENV_HASH_LABEL, proc.stdout)
    assert m, proc.stdout + proc.stderr[-3000:]
    for recipe in ("Dockerfile", "tradeoff.def"):
        labels = re.findall(ENV_HASH_LABEL, (ENVS / recipe).read_text())
        assert labels == [m.group(1)], f"envs/{recipe}: label {labels}, Snakemake {m.group(1)}"


@pytest.mark.slow
def test_containerize_matches_snakemake(tmp_path):
    """Snakemake's own --containerize, from the rules' conda: directives, names the same environment prefixes."""
    proc = containerize(tmp_path)
    if proc.returncode != 0 and re.search(r"conda: command not found|Is conda installed", proc.stderr):
        pytest.skip(NO_CONDA)
    assert proc.returncode == 0, proc.stderr[-3000:]
    prefixes = set(re.findall(r"/conda-envs/([0-9a-f]{32})/environment\.yaml", proc.stdout))
    assert prefixes == {snakemake_env_hash(p) for p in ENV_FILES.values()}


@pytest.mark.slow
def test_envs_build_with_conda(tmp_path):
    """Create both environments with a conda runtime (needs conda-forge and PyPI)."""
    runtime = next((shutil.which(r) for r in RUNTIMES if shutil.which(r)), None)
    if runtime is None:
        pytest.skip(NO_CONDA)
    for name, env_file in ENV_FILES.items():
        prefix = tmp_path / name
        proc = subprocess.run([runtime, "env", "create", "--yes", "--prefix", str(prefix), "--file", str(env_file)],
                              capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0 and re.search(r"(?i)connection|resolve host|offline|timed out", proc.stderr):
            pytest.skip(f"{runtime} cannot reach its channels here: {proc.stderr.strip()[-300:]}")
        assert proc.returncode == 0, proc.stderr[-3000:]
