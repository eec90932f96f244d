"""Shared fixtures: real MNIST (fetched once into the repo's data/ by `make test`) and tiny
run settings. Helpers to import (compose_config, sweep, ...) are in tests/helpers.py.

The suite runs on CPU wherever it runs (``trainer.device=auto`` would pick a GPU and
compare CUDA tensors with CPU ones); ``GANSWEEP_TEST_DEVICE=cuda`` runs it on a GPU
instead. Tests marked ``gpu`` run only where CUDA is available and are skipped elsewhere;
``slow`` ones (end-to-end runs, Inception) are left out by `make test-fast`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from gansweep import schema  # noqa: F401 - registers the schemas
from gansweep.data import fetch
from tests.helpers import CHEAP_FID, REPO

# before any cuBLAS handle exists, so a later deterministic test is deterministic (no-op on CPU)
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


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


@pytest.fixture
def tiny_overrides(mnist_root, tmp_path) -> list[str]:
    """A run of seconds: 512 real images, 2 batches of 32, samples and logs every batch,
    fid_lenet of 200 samples against the first 1000 training images."""
    return [f"dataset.root={mnist_root}", "dataset.limit=512", "trainer=smoke",
            "trainer.batch_size=32", "trainer.progress=off", *CHEAP_FID]
