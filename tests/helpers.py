"""Helpers the tests import (``from tests.helpers import ...``): composing the config as
Hydra would, a user's `gansweep-train -m` on a tiny real sweep, and hand-written job dirs for
the table's tests. Fixtures live in conftest.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import DictConfig
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

CHEAP_FID = ["fid.num_samples=200", "fid.ref_limit=1000"]  # fid_lenet in about a second
TEST_DEVICE = os.environ.get("GANSWEEP_TEST_DEVICE", "cpu")
# first in every override list, so a test's own override wins; on a GPU, the tests that
# compare two runs bit for bit need deterministic kernels
ON_TEST_DEVICE = [f"trainer.device={TEST_DEVICE}",
                  f"trainer.deterministic={str(TEST_DEVICE.startswith('cuda')).lower()}"]


def compose_config(overrides: list[str] | None = None, hydra: bool = False) -> DictConfig:
    """The composed `gansweep-train` config, as Hydra would build it for these overrides
    (``hydra=True``: with Hydra's own node, as callbacks see it)."""
    with initialize_config_module(config_module="gansweep.conf", version_base="1.3"):
        return compose(config_name="train", overrides=[*ON_TEST_DEVICE, *(overrides or [])],
                       return_hydra_config=hydra)


def sweep(mnist_root: Path, sweep_dir: Path, *overrides: str,
          timeout: int = 600) -> subprocess.CompletedProcess:
    """`gansweep-train -m` on 512 real images with 1 epoch x 2 batches of 32, as a user runs it."""
    cmd = [sys.executable, "-m", "gansweep.train", "-m", *ON_TEST_DEVICE, "trainer=smoke",
           "trainer.batch_size=32",
           f"dataset.root={mnist_root}", "dataset.limit=512", f"hydra.sweep.dir={sweep_dir}",
           *CHEAP_FID, *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=sweep_dir.parent,
                          timeout=timeout)


def has_plugin(name: str) -> bool:
    """Whether the Hydra plugin ``hydra_plugins.<name>`` is installed."""
    try:
        __import__(f"hydra_plugins.{name}")
        return True
    except ImportError:
        return False


def write_job(sweep: Path, name: str, overrides: list[str], config: dict,
              summary: dict | None, metrics: int = 3) -> Path:
    """A job dir as a sweep leaves it: .hydra/overrides.yaml and config.yaml, summary.json
    (none when ``summary`` is None), ``metrics`` rows of metrics.jsonl and a grey
    samples/final.png."""
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra/overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra/config.yaml").write_text(yaml.safe_dump(config))
    if summary is not None:
        (job / "summary.json").write_text(json.dumps(summary))
    rows = [{"epoch": 0, "batch": i, "step": i, "d_loss": 1.0 / (i + 1), "g_loss": 0.5,
             "eps": 1.0, "lr_d": 1e-3, "lr_g": 1e-3, "seconds": i} for i in range(metrics)]
    (job / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (job / "samples").mkdir()
    Image.fromarray(np.full((28, 28), 128, np.uint8)).save(job / "samples/final.png")
    return job


def seed_config(name: str, gan: str, eps: float, seed_fid_inception: float, row: str) -> dict:
    """The parts of a seed preset's composed config the table reads."""
    return {"name": name, "gan_type": {"name": gan}, "kernel": {"eps": eps},
            "optimizer": {"d": {"lr": 1e-3, "decay": 1e-3}, "g": {"lr": 1e-4, "decay": 1e-3}},
            "trainer": {"epochs": 100}, "reference": {"row": row, "fid": seed_fid_inception}}


@contextmanager
def small_filesystem(folder: Path, size: str):
    """A tmpfs of ``size`` (``512k``, ``60m``) mounted at ``folder/fs`` for the block, where
    the machine lets a test mount one (else the test is skipped)."""
    mount = folder / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
