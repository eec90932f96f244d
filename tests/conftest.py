"""Shared fixtures: real MNIST (fetched once into the repo's data/ by `make test`), tiny
run settings, and hand-written sweep dirs for the table. Helpers to import (compose_config,
sweep, write_job, ...) are in tests/helpers.py.

The suite runs on CPU wherever it runs (``trainer.device=auto`` would pick a GPU and
compare CUDA tensors with CPU ones); ``GANSWEEP_TEST_DEVICE=cuda`` runs it on a GPU
instead. Tests marked ``gpu`` run only where CUDA is available and are skipped elsewhere;
``slow`` ones (end-to-end runs, Inception) are left out by `make test-fast`.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch

from gansweep import schema  # noqa: F401 - registers the schemas
from gansweep.data import fetch
from tests.helpers import CHEAP_FID, REPO, seed_config, write_job

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


@pytest.fixture
def synthetic_sweep(tmp_path) -> Path:
    """The seven seed presets' job dirs, one per status the table knows: two ok, failed,
    diverged, running (this process), missing (no summary.json) and stopped (a dead pid)."""
    sweep = tmp_path / "sweep"
    ok = {"status": "ok", "epochs_done": 100, "batches_done": 46800, "wall_seconds": 10.0,
          "final_sample": "samples/final.png"}
    write_job(sweep, "0_seed_standard", ["+experiment=seed_standard"],
              seed_config("seed_standard", "standard", 1.0, 14.66, "Standard GAN"),
              {**ok, "name": "seed_standard", "gan_type": "standard", "fid_lenet": 3.0})
    write_job(sweep, "1_seed_coulomb_1", ["+experiment=seed_coulomb_1"],
              seed_config("seed_coulomb_1", "coulomb", 1.0, 52.32, "Coulomb No.1"),
              {**ok, "name": "seed_coulomb_1", "gan_type": "coulomb", "fid_lenet": 20.0})
    write_job(sweep, "2_seed_coulomb_2", ["+experiment=seed_coulomb_2"],
              seed_config("seed_coulomb_2", "coulomb", 1.0, 90.82, "Coulomb No.2"),
              {"status": "failed", "name": "seed_coulomb_2", "gan_type": "coulomb",
               "error": "ConfigError: kernel.eps=0.0 is not allowed"})
    write_job(sweep, "3_seed_coulomb_3", ["+experiment=seed_coulomb_3"],
              seed_config("seed_coulomb_3", "coulomb", 1.0, 106.5, "Coulomb No.3"),
              {"status": "diverged", "name": "seed_coulomb_3", "gan_type": "coulomb",
               "error": "non-finite loss at epoch 3, batch 7", "epochs_done": 3,
               "last_sample": "samples/final.png"})
    write_job(sweep, "4_seed_coulomb_4", ["+experiment=seed_coulomb_4"],
              seed_config("seed_coulomb_4", "coulomb", 0.1, 108.0, "Coulomb No.4"),
              {"status": "running", "name": "seed_coulomb_4", "gan_type": "coulomb",
               "pid": os.getpid(), "host": socket.gethostname(), "epochs_done": 1})
    write_job(sweep, "5_seed_coulomb_5", ["+experiment=seed_coulomb_5"],
              seed_config("seed_coulomb_5", "coulomb", 10.0, 118.4, "Coulomb No.5"), None)
    write_job(sweep, "6_seed_coulomb_6", ["+experiment=seed_coulomb_6"],
              seed_config("seed_coulomb_6", "coulomb", 1.0, 149.9, "Coulomb No.6"),
              {"status": "running", "name": "seed_coulomb_6", "gan_type": "coulomb",
               "pid": 2**22 + 12345, "host": socket.gethostname()})  # above Linux's pid_max
    return sweep


@pytest.fixture
def seeded_sweep(tmp_path) -> Path:
    """Setting A (lr 1e-3): seeds 0,1,2 ok. Setting B (lr 1e-4): seed 0 ok, seed 1 failed,
    seed 2 diverged. Setting C (lr 1e-5): seeds 0,1 ok, far worse than A."""
    sweep = tmp_path / "sweep"
    values = {"1e-3": [10.0, 12.0, 11.0], "1e-4": [11.5], "1e-5": [40.0, 42.0]}
    number = 0
    for lr, fids in values.items():
        for seed in range(3):
            if lr == "1e-5" and seed == 2:
                continue
            config = seed_config("seed_standard", "standard", 1.0, 14.66, "Standard GAN")
            config["optimizer"]["d"]["lr"] = float(lr)
            config["seed"] = seed
            summary = {"status": "ok", "name": "seed_standard", "gan_type": "standard",
                       "epochs_done": 2, "batches_done": 4, "wall_seconds": 1.0}
            if seed < len(fids):
                summary.update({"fid_lenet": fids[seed], "recall_lenet": 0.1 * (seed + 1),
                                "precision_lenet": 0.5})
            elif seed == 1:
                summary = {"status": "failed", "error": "RuntimeError: boom",
                           "name": "seed_standard", "gan_type": "standard"}
            else:
                summary = {"status": "diverged", "error": "non-finite loss",
                           "name": "seed_standard", "gan_type": "standard", "epochs_done": 1}
            job = write_job(sweep, f"{number}_seed_standard",
                            [f"optimizer.d.lr={lr}", f"seed={seed}"], config, summary)
            if summary["status"] == "ok":  # an every_epochs curve: epoch 0, then the final
                with open(job / "metrics.jsonl", "a") as f:
                    f.write(json.dumps({"epoch": 0, "step": 1, "fid_lenet": fids[seed] + 5,
                                        "recall_lenet": 0.05}) + "\n")
            number += 1
    return sweep
