"""Config validation: the default is valid; each kind of mistake stops with one line naming the key."""

import subprocess
import sys

import pytest
import yaml
from preset_helpers import preset_config

from tradeoff.config import ConfigError, check_config


@pytest.fixture
def default(root):
    return yaml.safe_load((root / "config.yaml").read_text())


@pytest.fixture
def schema(root):
    return root / "workflow" / "schemas" / "config.schema.yaml"


def test_default_and_presets_are_valid(root, default, schema):
    check_config(default, schema)
    for preset in sorted((root / "presets").glob("*.yaml")):
        if "layer" not in yaml.safe_load(preset.read_text()):  # a layer is checked under the presets built on it
            check_config(preset_config(root, preset.stem), schema)  # each with the layers it builds on


def test_a_preset_given_without_its_base_layer_is_refused(root, default, schema):
    _merge(default, yaml.safe_load((root / "presets" / "cifar10.yaml").read_text()))
    with pytest.raises(ConfigError, match=r"^config error at base: .*presets/cifar\.yaml"):
        check_config(default, schema)


def _merge(base, update):
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


@pytest.mark.parametrize("mutate,key,words", [
    (lambda c: c["attacks"].__setitem__("run", ["clean", "pgd", "autoattack"]), "era.robustness.combine.1",
     "is not run"),
    (lambda c: c["era"]["robustness"].__setitem__("combine", []), "era.robustness.attack_correct", "needs"),
    (lambda c: c["attacks"].__setitem__("shards", 0), "attacks.shards", "minimum"),
    (lambda c: c["mixing"].__setitem__("temperatures", {"g": 1.0}), "mixing.temperatures", ""),
    (lambda c: c["threats"][0].__setitem__("eps", -0.1), "threats.0.eps", "less than or equal to the minimum"),
    (lambda c: c["threats"][0].__setitem__("eps", 0), "threats.0.eps", "less than or equal to the minimum"),
    (lambda c: c["threats"][0].__setitem__("norm", "L1"), "threats.0.norm", "not one of"),
    (lambda c: c["threats"].append({"norm": "Linf", "eps": 0.3}), "threats.2", "duplicate"),
    (lambda c: c.__setitem__("threats", []), "threats", "non-empty"),
    (lambda c: c["era"].__setitem__("threats", [{"norm": "Linf", "eps": 0.2}]), "era.threats.0", "not an entry"),
    (lambda c: c["mixing"].__setitem__("threats", [{"norm": "L2", "eps": 0.3}]), "mixing.threats.0", "not an entry"),
    (lambda c: c["probabilistic"].__setitem__("threats", [{"norm": "Linf", "eps": 0.3}] * 2),
     "probabilistic.threats", "twice"),
    (lambda c: c["models"]["variance"].__setitem__("threats", [{"norm": "Linf", "eps": 0.5}]),
     "models.variance.threats.0", "not an entry"),
    (lambda c: c["era"].__setitem__("threats", None), "era.models.3", "not trained at linf-0.3"),
    (lambda c: c["models"]["trades"].__setitem__("threats", [{"norm": "Linf", "eps": 0.3}]),
     "models.era.threats", "its init"),
    (lambda c: c["certify"].__setitem__("mix_standard", "trades"), "certify.mix_standard", "threat-free"),
    (lambda c: c["era"]["composite"].__setitem__("compare", ["nope"]), "era.composite.compare.0", "not a model"),
    # nested typos are errors naming their path, not silently dropped settings
    (lambda c: c["models"]["trades"]["params"].__setitem__("bta", 6.0), "models.trades.params", "'bta'"),
    (lambda c: c["models"]["pgd_at"]["train"].__setitem__("epoch", 30), "models.pgd_at.train", "'epoch'"),
    (lambda c: c["models"]["standard"]["params"].__setitem__("steps", 3), "models.standard.params", "'steps'"),
    (lambda c: c["models"]["pgd_at"]["params"].__setitem__("steps", 0), "models.pgd_at.params.steps", "minimum"),
    (lambda c: c["mixing"].__setitem__("alphas", [1.5]), "mixing.alphas.0", "maximum"),
    (lambda c: c["probabilistic"].__setitem__("kappa", 0.5), "probabilistic.kappa", "maximum of 0.5"),
    (lambda c: c["claims"].__setitem__("confidence", 1.2), "claims.confidence", "maximum of 1"),
    (lambda c: c["claims"].__setitem__("resample", 10), "claims", "'resample'"),
    (lambda c: c["era"]["composite"].__setitem__("compare", ["standard"]), "era.composite.standard", "differ"),
    (lambda c: c["mixing"].__setitem__("robust", "standard"), "mixing.robust", "must differ"),
    (lambda c: c["zoo"].__setitem__("models", {"trades": {"name": "X", "threat_model": "Linf", "sha256": None}}),
     "zoo.models.trades", "already a model"),
    (lambda c: c["train"].__setitem__("epochs", "ten"), "train.epochs", "integer"),
    (lambda c: c.__setitem__("dataset", "imagenet"), "dataset", "not one of"),
    (lambda c: c["attacks"].pop("pgd"), "attacks.pgd", "missing key"),
    (lambda c: c.pop("seed"), "seed", "missing key"),
    (lambda c: c["train"].__setitem__("learning_rate", 0.1), "train", "learning_rate"),
    (lambda c: c["models"]["trades"].__setitem__("init", "nope"), "models.trades.init", "not a model"),
    # sizes: splits against the dataset, point counts against the test split (before any job, not inside one)
    (lambda c: c["data"]["digits"].__setitem__("n_test", 5000), "data.digits.n_test", "1,797 digits examples"),
    (lambda c: c["data"]["digits"].__setitem__("n_calib", 1437), "data.digits.n_test", "must be smaller"),
    (lambda c: c["data"]["mnist"].__setitem__("n_test", 20000), "data.mnist.n_test", "10,000 points"),
    (lambda c: c["data"]["cifar10"].__setitem__("n_calib", 50000), "data.cifar10.n_calib", "leaves none"),
    (lambda c: c["certify"].__setitem__("points", 100000), "certify.points", "test split has 360"),
    (lambda c: c["probabilistic"].__setitem__("points", 361), "probabilistic.points", "test split has 360"),
    # a preset layer given without the layer it builds on
    (lambda c: c.__setitem__("base", "cifar"), "base", "presets/cifar.yaml"),
])
def test_each_mistake_gives_one_line_naming_the_key(default, schema, mutate, key, words):
    mutate(default)
    with pytest.raises(ConfigError) as info:
        check_config(default, schema)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"config error at {key}")
    assert words in message


@pytest.mark.slow
def test_snakemake_stops_before_any_job(root, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("threats: [{norm: Linf, eps: -1}]\n")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad)], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "config error at threats.0.eps" in proc.stdout + proc.stderr


def test_config_check_loads_neither_torch_nor_scipy(root):
    # Snakemake validates the config on every invocation (a dry run included): it must stay fast
    code = (
        "import sys, yaml\n"
        "from tradeoff.config import check_config\n"
        f"check_config(yaml.safe_load(open({str(root / 'config.yaml')!r})), "
        f"{str(root / 'workflow' / 'schemas' / 'config.schema.yaml')!r})\n"
        "heavy = sorted(m for m in ('torch', 'scipy', 'pandas') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
