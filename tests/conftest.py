"""Shared fixtures: real MNIST (fetched once into the repo's data/ by `make test`), config
composition through Hydra's compose API, and tiny run settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from gansweep import schema  # noqa: F401 - registers the schemas
from gansweep.data import fetch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """Folder with the four verified MNIST idx files (fetched if absent)."""
    root = Path(os.environ.get("GANSWEEP_TEST_DATA", REPO / "data"))
    fetch(root)
    return root


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The composed `gansweep-train` config, as Hydra would build it for these overrides."""
    with initialize_config_module(config_module="gansweep.conf", version_base="1.3"):
        return compose(config_name="train", overrides=overrides or [])


@pytest.fixture
def tiny_overrides(mnist_root, tmp_path) -> list[str]:
    """A run of seconds: 512 real images, 2 batches of 32, samples and logs every batch,
    fid_lenet of 200 samples against the first 1000 training images."""
    return [f"dataset.root={mnist_root}", "dataset.limit=512", "trainer=smoke",
            "trainer.batch_size=32", "trainer.progress=off",
            "fid.num_samples=200", "fid.ref_limit=1000"]  # cheap fid_lenet
