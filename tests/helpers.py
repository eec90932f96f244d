"""Helpers the tests import (``from tests.helpers import ...``): composing the config as
Hydra would, and a user's `gansweep-train -m` on a tiny real sweep. Fixtures live in
conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parents[1]

CHEAP_FID = ["fid.num_samples=200", "fid.ref_limit=1000"]  # fid_lenet in about a second
TEST_DEVICE = os.environ.get("GANSWEEP_TEST_DEVICE", "cpu")
# first in every override list, so a test's own override wins; on a GPU, the tests that
# compare two runs bit for bit need deterministic kernels
ON_TEST_DEVICE = [f"trainer.device={TEST_DEVICE}",
                  f"trainer.deterministic={str(TEST_DEVICE.startswith('cuda')).lower()}"]


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The composed `gansweep-train` config, as Hydra would build it for these overrides."""
    with initialize_config_module(config_module="gansweep.conf", version_base="1.3"):
        return compose(config_name="train", overrides=[*ON_TEST_DEVICE, *(overrides or [])])


def sweep(mnist_root: Path, sweep_dir: Path, *overrides: str,
          timeout: int = 600) -> subprocess.CompletedProcess:
    """`gansweep-train -m` on 512 real images with 1 epoch x 2 batches of 32, as a user runs it."""
    cmd = [sys.executable, "-m", "gansweep.train", "-m", *ON_TEST_DEVICE, "trainer=smoke",
           "trainer.batch_size=32",
           f"dataset.root={mnist_root}", "dataset.limit=512", f"hydra.sweep.dir={sweep_dir}",
           *CHEAP_FID, *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=sweep_dir.parent,
                          timeout=timeout)
