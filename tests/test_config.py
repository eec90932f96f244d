"""Every preset composes, carries the seed table exactly, and bad values are refused."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ValidationError

from tests.helpers import compose_config
from gansweep.schema import ConfigError, check
from gansweep.report.studies import keras2018
from gansweep.runs.trainer import Run

SEED_TABLE = {
    # name: (gan_type, D lr, D decay, G lr, G decay, eps0, seed FID)
    "seed_standard": ("standard", 1e-5, 1e-4, 1e-4, 1e-4, None, 14.66),
    "seed_coulomb_1": ("coulomb", 1e-3, 1e-3, 1e-3, 1e-3, 1.0, 52.32),
    "seed_coulomb_2": ("coulomb", 1e-4, 1e-3, 1e-3, 1e-3, 1.0, 90.82),
    "seed_coulomb_3": ("coulomb", 1e-3, 1e-4, 1e-4, 1e-3, 1.0, 106.5),
    "seed_coulomb_4": ("coulomb", 1e-3, 1e-3, 1e-3, 1e-3, 0.1, 108.0),
    "seed_coulomb_5": ("coulomb", 1e-3, 1e-2, 1e-3, 1e-2, 10.0, 118.4),
    "seed_coulomb_6": ("coulomb", 1e-3, 1e-4, 1e-3, 1e-4, 1.0, 149.9),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SEED_TABLE))
def test_seed_presets_carry_the_seed_table(name):
    cfg = compose_config([f"+experiment={name}"])
    gan, d_lr, d_decay, g_lr, g_decay, eps0, fid = SEED_TABLE[name]
    assert cfg.name == name
    assert str(cfg.gan_type.name) == gan
    assert (cfg.optimizer.d.lr, cfg.optimizer.d.decay) == (d_lr, d_decay)
    assert (cfg.optimizer.g.lr, cfg.optimizer.g.decay) == (g_lr, g_decay)
    assert cfg.optimizer.d.beta_1 == cfg.optimizer.g.beta_1 == 0.5
    if eps0 is not None:
        assert cfg.kernel.eps == eps0
        assert cfg.kernel.dim == 3 and cfg.kernel.eps_half_life == 5000
        assert cfg.kernel.ignore_self_potential is True
    # the published row the preset names: its FID and settings in the study plug-in
    published_fid, _, settings = keras2018.PUBLISHED_ROWS[cfg.reference.row]
    assert cfg.reference.study == "keras2018" and published_fid == fid
    assert settings == {"d_lr": d_lr, "d_decay": d_decay, "g_lr": g_lr, "g_decay": g_decay,
                        **({"eps0": eps0} if eps0 is not None else {})}
    # the seed's shared settings
    assert cfg.trainer.batch_size == 128 and cfg.trainer.epochs == 100
    assert str(cfg.noise.dist) == "uniform" and (cfg.noise.low, cfg.noise.high) == (-1.0, 1.0)
    assert str(cfg.trainer.fake_mode) == "eval" and str(cfg.model.bn_axis) == "keras"
    check(cfg)


def test_default_config_is_faithful_standard_gan():
    cfg = compose_config()
    assert str(cfg.gan_type.name) == "standard" and str(cfg.gan_type.loss) == "keras_bce"
    assert cfg.model.bn_momentum == 0.99 and cfg.model.bn_epsilon == 1e-3
    assert cfg.model.leaky_slope == 0.2 and cfg.model.dropout == 0.5
    assert str(cfg.model.init) == "keras"
    # Keras 2.1.3 (docs/fidelity.md): zero-debiased BN averages, biased variance for the
    # 2-D layers, the fused batch norm's n/(n-1) for the conv's, eps 1e-7
    assert cfg.keras.release == "2.1.3"
    assert cfg.model.bn_zero_debias and str(cfg.model.bn_var_dense) == "biased"
    assert str(cfg.model.bn_var_conv) == "unbiased"
    assert cfg.optimizer.d.epsilon == cfg.optimizer.g.epsilon == 1e-7


def test_command_line_overrides_reach_the_config():
    cfg = compose_config(["+experiment=seed_coulomb_1", "kernel.eps=0.1",
                          "optimizer.d.lr=1e-4", "trainer=quick", "noise=normal"])
    assert cfg.kernel.eps == 0.1 and cfg.optimizer.d.lr == 1e-4
    assert cfg.trainer.name == "quick" and cfg.trainer.batch_size == 128
    assert str(cfg.noise.dist) == "normal"


@pytest.mark.parametrize("override", [
    "gan_type.name=wgan",        # not a choice
    "optimizer.d.lr=fast",       # not a float
    "trainer.epoch=3",           # unknown key (typo)
    "model.bn_axis=rows",        # not a choice
])
def test_schema_rejects_bad_overrides(override):
    with pytest.raises((ValidationError, ConfigCompositionException)):
        compose_config([override])


@pytest.mark.parametrize("override, key", [
    ("optimizer.d.lr=0", "optimizer.d.lr"),
    ("optimizer.g.lr=-1e-3", "optimizer.g.lr"),
    ("optimizer.d.decay=-0.1", "optimizer.d.decay"),
    ("kernel.eps=0", "kernel.eps"),
    ("kernel.eps_half_life=-5", "kernel.eps_half_life"),
    ("trainer.epochs=0", "trainer.epochs"),
    ("noise.low=1", "noise.low"),
    ("trainer.device=tpu", "trainer.device"),  # a string, checked here: auto|cpu|cuda[:N]
    ("trainer.device=cuda:x", "trainer.device"),
    ("trainer.checkpoint_every=0", "trainer.checkpoint_every"),
    ("trainer.checkpoint_minutes=0", "trainer.checkpoint_minutes"),
])
def test_validation_names_key_and_value(override, key):
    cfg = compose_config(["+experiment=seed_coulomb_1", override])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check(cfg)


def test_batch_larger_than_data_is_refused(mnist_root, tmp_path):
    cfg = compose_config(["dataset.limit=100", f"dataset.root={mnist_root}"])
    with pytest.raises(ConfigError, match="trainer.batch_size=128.*100 training samples"):
        Run(cfg, tmp_path)


@pytest.mark.slow
def test_help_shows_the_apps_groups_and_presets_not_the_schemas():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "gansweep.train", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "gan_type        coulomb, standard*" in done.stdout
    assert "seed_coulomb_1" in done.stdout and "+experiment=" in done.stdout
    assert "_schema" not in done.stdout


@pytest.mark.parametrize("override, key", [
    ("optimizer.g.beta_1=1", "optimizer.g.beta_1"),  # the same dataclass as optimizer.d
    ("model.dropout=1.5", "model.dropout"),
    ("dataset.limit=0", "dataset.limit"),
    ("seed=-1", "seed"),
])
def test_schema_errors_name_the_key_from_the_root(override, key):
    with pytest.raises(ConfigError, match="^" + key.replace(".", r"\.") + "="):
        check(compose_config([override]))


def test_the_compose_api_works_with_nothing_imported_first():
    """A fresh interpreter: initialize_config_module + compose, no gansweep import before."""
    import subprocess
    import sys

    code = ("from hydra import initialize_config_module, compose\n"
            "with initialize_config_module(config_module='gansweep.conf', version_base='1.3'):\n"
            "    cfg = compose(config_name='train', overrides=['+experiment=seed_coulomb_1'])\n"
            "print(cfg.gan_type._target_, cfg.kernel.eps)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["gansweep.objectives.CoulombGAN", "1.0"]


# ----------------------------------------------------------------------------- one source
def _shipped_options():
    """(group, option, its YAML as written, the schema it names or None) for every option
    under conf/ (experiment presets and the root config aside)."""
    from hydra.core.config_store import ConfigStore

    from tests.helpers import REPO

    repo = ConfigStore.instance().repo["schema"]
    for path in sorted((REPO / "conf").glob("*/*.yaml")):
        group = path.parent.name
        if group in ("experiment", "hparams_search"):
            continue
        raw = OmegaConf.load(path)
        schema = None
        for entry in raw.get("defaults", []):
            if isinstance(entry, str) and entry.startswith("/schema/"):
                sub, name = entry[len("/schema/"):].split("@")[0].split("/")
                schema = repo[sub][f"{name}.yaml"].node
        yield group, path.stem, raw, schema


def _leaves(node, prefix=""):
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            yield from _leaves(child, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", child


def _raw_value(raw: DictConfig, dotted: str):
    """The value a YAML writes for a dotted key, unresolved (``${kernel}`` stays as text)."""
    node = raw
    for part in dotted.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return MISSING
        node = node._get_node(part)
    return node._value() if not isinstance(node, DictConfig) else node


def test_schemas_type_and_check_but_hold_no_values():
    """Every value lives in the YAML: a schema field with a value would be a second default
    that can disagree with the option's (the impl and checkpoint-cadence bugs)."""
    valued = []
    for group, option, raw, schema in _shipped_options():
        if schema is None:
            continue
        for key, node in _leaves(schema):
            if not node._is_missing() and not key.startswith("_"):  # _target_, _partial_
                valued.append(f"schema of {group}/{option}: {key}={node._value()!r}")
    assert not valued, "move these values into the YAML:\n" + "\n".join(sorted(set(valued)))


def test_no_value_is_defined_twice_with_two_values():
    """A key the schema and the option's YAML both set must have one value. The YAML sets
    every key of its schema (no value falls through to a schema default)."""
    clashes, unset = [], []
    for group, option, raw, schema in _shipped_options():
        if schema is None:
            continue
        for key, node in _leaves(schema):
            mine = _raw_value(raw, key)
            if mine is MISSING:
                unset.append(f"{group}/{option}: {key}")
            elif not node._is_missing() and str(node._value()) != str(mine):
                clashes.append(f"{group}/{option}: {key} = {node._value()!r} and {mine!r}")
    assert not clashes, "\n".join(clashes)
    # options built on another option (trainer=quick on full, fid=inception on lenet) inherit
    inherit = {o for g, o, raw, _ in _shipped_options() for e in raw.get("defaults", [])
               if isinstance(e, str) and not e.startswith(("/", "_"))}
    assert not [u for u in unset if u.split(":")[0].split("/")[1] not in inherit], unset


# what the run passes at build time, beside the config (gansweep.fid.evaluator.build_evaluator,
# gansweep.runs.loggers.build_logger)
CONTEXT = {"gansweep.fid.FidEvaluator": {"data_root", "device", "fetch_data", "reference"},
           "gansweep.models.DCGAN": {"generator"},  # the run's stream (gansweep.gan.state)
           "gansweep.models.MLPGAN": {"generator"},
           "gansweep.loggers.CsvLogger": {"run_dir", "config"},
           "gansweep.loggers.TensorBoardLogger": {"run_dir", "config"},
           "gansweep.mlflow_logger.MlflowLogger": {"run_dir", "config"}}


@pytest.mark.parametrize("overrides", [[], ["+experiment=seed_coulomb_1", "noise=normal"],
                                       ["+experiment=mixture_coulomb"],
                                       ["logger=many_loggers"], ["fid=inception"],
                                       ["dataset=image_folder", "fid=inception"]],
                         ids=["default", "coulomb", "mixture", "loggers", "inception",
                              "image_folder"])
def test_classes_take_every_value_from_the_config(overrides):
    """A class built by ``_target_`` gets each parameter it has a default for from the
    config (or the run's context), so a constructor default that differs from the YAML (as
    KerasAdam's beta_1=0.9, Keras' signature, beside the seed's 0.5) never decides a run."""
    import inspect

    from hydra.utils import get_object

    cfg = compose_config(overrides)
    missing = []

    def visit(node, where):
        if isinstance(node, DictConfig) and not node._is_none():
            if "_target_" in node:
                target = get_object(str(node._target_))
                params = inspect.signature(target).parameters
                given = set(node) | CONTEXT.get(str(node._target_), set())
                missing.extend(f"{where} ({node._target_}): {name}" for name, p in params.items()
                               if p.default is not inspect.Parameter.empty and name not in given
                               and p.kind is not inspect.Parameter.VAR_KEYWORD)
            for key in node:
                child = node._get_node(key)
                if isinstance(child, DictConfig):
                    visit(child, f"{where}.{key}" if where else str(key))

    visit(cfg, "")
    assert not missing, "set these in the YAML:\n" + "\n".join(missing)


def test_schemas_never_show_as_options():
    """Hydra lists a group's options when one is missing; the schemas are stored outside the
    groups (schema/<group>/<option>), so only real options are offered."""
    with pytest.raises(ConfigCompositionException) as refused:
        compose_config(["model=nonexistent"])
    offered = str(refused.value).split("Available options in 'model':")[1].split("Config")[0]
    assert offered.split() == ["dcgan_mnist", "mlp"]
    from gansweep.train import app_help

    groups = app_help().split("Config groups")[1].split("Presets")[0]
    assert "schema" not in groups and "dcgan_mnist*, mlp" in groups


def test_checkpoints_holding_the_schemas_enums_under_their_old_path_still_load(tmp_path,
                                                                             monkeypatch):
    """Checkpoints written before configs were stored as plain strings pickled the schemas'
    str enums as ``gansweep.schema.<name>``, where all of them lived then: each loads, under
    that path and under the one it has now, and nothing else is let through."""
    import torch

    from gansweep import schema
    from gansweep.gan.schema import Impl
    from gansweep.runs import checkpoint
    from gansweep.runs.schema import Precision

    old = tmp_path / "old.pt"
    with monkeypatch.context() as patch:
        patch.setattr(Impl, "__module__", "gansweep.schema")  # pickled as the old path
        torch.save({"impl": Impl.fast}, old)
    assert b"gansweep.schema" in old.read_bytes()
    assert checkpoint.load(old)["impl"] is Impl.fast
    now = tmp_path / "now.pt"
    torch.save({"precision": Precision.bf16}, now)
    assert checkpoint.load(now)["precision"] is Precision.bf16
    assert set(schema.CHOICES) >= {Impl, Precision, schema.MixtureName, schema.FidExtractor}
    other = tmp_path / "other.pt"
    torch.save({"path": tmp_path}, other)
    with pytest.raises(Exception, match="refused to unpickle it, nothing in it was run"):
        checkpoint.load(other)
