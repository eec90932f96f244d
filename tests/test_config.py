"""Every preset composes, carries the seed table exactly, and bad values are refused."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from tests.helpers import compose_config
from gansweep.schema import ConfigError, check
from gansweep.report.studies import keras2018
from gansweep.trainer import Run

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
