"""Shared fixtures: real MNIST (fetched once into the repo's data/ by `make test`), config
composition through Hydra's compose API, and tiny run settings.

The suite runs on CPU wherever it runs (``trainer.device=auto`` would pick a GPU and
compare CUDA tensors with CPU ones); ``GANSWEEP_TEST_DEVICE=cuda`` runs it on a GPU
instead. Tests marked ``gpu`` run only where CUDA is available and are skipped elsewhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from gansweep import schema  # noqa: F401 - registers the schemas
from gansweep.data import fetch

REPO = Path(__file__).resolve().parents[1]


CHEAP_FID = ["fid.num_samples=200", "fid.ref_limit=1000"]  # fid_lenet in about a second
TEST_DEVICE = os.environ.get("GANSWEEP_TEST_DEVICE", "cpu")
# before any cuBLAS handle exists, so a later deterministic test is deterministic (no-op on CPU)
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
# first in every override list, so a test's own override wins; on a GPU, the tests that
# compare two runs bit for bit need deterministic kernels
ON_TEST_DEVICE = [f"trainer.device={TEST_DEVICE}",
                  f"trainer.deterministic={str(TEST_DEVICE.startswith('cuda')).lower()}"]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (a `gpu` test)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """Folder with the four verified MNIST idx files (fetched if absent)."""
    root = Path(os.environ.get("GANSWEEP_TEST_DATA", REPO / "data"))
    fetch(root)
    return root


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The composed `gansweep-train` config, as Hydra would build it for these overrides."""
    with initialize_config_module(config_module="gansweep.conf", version_base="1.3"):
        return compose(config_name="train", overrides=[*ON_TEST_DEVICE, *(overrides or [])])


@pytest.fixture
def tiny_overrides(mnist_root, tmp_path) -> list[str]:
    """A run of seconds: 512 real images, 2 batches of 32, samples and logs every batch,
    fid_lenet of 200 samples against the first 1000 training images."""
    return [f"dataset.root={mnist_root}", "dataset.limit=512", "trainer=smoke",
            "trainer.batch_size=32", "trainer.progress=off", *CHEAP_FID]


def sweep(mnist_root: Path, sweep_dir: Path, *overrides: str,
          timeout: int = 600) -> subprocess.CompletedProcess:
    """`gansweep-train -m` on 512 real images with 1 epoch x 2 batches of 32, as a user runs it."""
    cmd = [sys.executable, "-m", "gansweep.train", "-m", *ON_TEST_DEVICE, "trainer=smoke",
           "trainer.batch_size=32",
           f"dataset.root={mnist_root}", "dataset.limit=512", f"hydra.sweep.dir={sweep_dir}",
           *CHEAP_FID, *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=sweep_dir.parent,
                          timeout=timeout)
