"""A model, a GAN type and a feature extractor defined outside the package (README,
"Extending"), one class and one YAML each, selected on the command line, train and score end
to end and are recorded as such."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers import CHEAP_FID, REPO, compose_config

EXAMPLE = REPO / "examples" / "extending"


@pytest.mark.slow
def test_a_users_own_model_and_gan_type_train_from_the_command_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLE), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "gansweep.train", "--config-dir", str(EXAMPLE / "conf"),
           "+experiment=mixture_standard", "model=spectral_mlp", "gan_type=lsgan",
           "trainer.epochs=1", "trainer.max_batches_per_epoch=3", "trainer.device=cpu",
           "dataset.size=2048", "dataset.num_samples=500", f"hydra.run.dir={tmp_path / 'run'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["gan_type"] == "lsgan"
    assert summary["config"]["model"]["_target_"] == "my_gans.SpectralMLPGAN"
    assert summary["mixture_samples"] == 500 and 0 <= summary["modes_covered"] <= 8
    assert str(tmp_path / "run") in done.stdout  # a single run prints its output dir


def test_the_example_classes_build_from_their_yaml(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    gan = instantiate(OmegaConf.load(EXAMPLE / "conf" / "model" / "spectral_mlp.yaml"))
    assert gan.latent_dim == 16 and hasattr(gan.discriminator[0], "parametrizations")
    objective = instantiate(OmegaConf.load(EXAMPLE / "conf" / "gan_type" / "lsgan.yaml"))
    import torch

    targets = objective.d_targets(torch.zeros(3, 2), torch.zeros(2, 2), 0)
    assert targets.flatten().tolist() == [1, 1, 1, 0, 0]
    # LSGAN's G loss by hand: D outputs 0 and 2 -> ((0 - 1)^2 + (2 - 1)^2) / 2 = 1
    assert objective.g_loss(torch.tensor([[0.0], [2.0]])).item() == 1.0


def test_every_builtin_group_option_names_its_class():
    """Config builds objects: each group's YAML carries a _target_ that instantiate resolves."""
    cfg = compose_config()
    for key in ("model", "gan_type", "kernel", "dataset", "noise", "optimizer.d", "optimizer.g"):
        node = OmegaConf.select(cfg, key)
        assert "_target_" in node, key
    coulomb = compose_config(["gan_type=coulomb"])
    objective = instantiate(coulomb.gan_type)
    assert type(objective.kernel).__name__ == "PlummerKernel" and objective.kernel.eps(0) == 1.0



@pytest.mark.slow
def test_a_users_own_feature_extractor_scores_a_run(tmp_path, mnist_root):
    """fid=pixels (examples/extending/conf/fid/pixels.yaml names my_features.PixelFeatures):
    every metric is computed on its features, named after it, with its own reference cache."""
    env = {**os.environ, "GANSWEEP_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(EXAMPLE), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "gansweep.train", "--config-dir", str(EXAMPLE / "conf"),
           "+experiment=seed_standard", "fid=pixels", "trainer=smoke", "trainer.device=cpu",
           "trainer.batch_size=32", f"dataset.root={mnist_root}", "dataset.limit=512",
           *CHEAP_FID, f"hydra.run.dir={tmp_path / 'run'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "ok"
    assert {f"{m}_pixels" for m in ("fid", "kid", "precision", "recall", "density",
                                     "coverage")} <= set(summary)
    assert summary["fid_pixels"] > 0 and summary["objective_metric"] == "fid_pixels"
    assert summary["fid"]["weights"] == "avgpool7x7"
    assert any("pixels_avgpool7x7" in p.name for p in (tmp_path / "cache" / "stats").iterdir())


def test_a_users_extractor_is_checked_like_a_builtin(monkeypatch):
    """The registry answers for a class path as for a built-in name: its dimension bounds
    fid.num_samples, and a path that is no extractor is refused with the choices."""
    from gansweep.fid import registry
    from gansweep.schema import ConfigError, check

    monkeypatch.syspath_prepend(str(EXAMPLE))
    assert registry.info("my_features.PixelFeatures").dim == 49
    with pytest.raises(ConfigError, match="fid.num_samples=40.*must be > 49, the pixels"):
        check(compose_config(["fid.extractor=my_features.PixelFeatures", "fid.num_samples=40"]))
    with pytest.raises(ConfigError, match="fid.extractor='my_gans.SpectralMLPGAN'.*is not a "
                                          "feature extractor: use one of inception, lenet"):
        check(compose_config(["fid.extractor=my_gans.SpectralMLPGAN"]))
