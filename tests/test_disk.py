"""A full disk, which keeping more runs and checkpoints makes likelier: a run that meets it
stops with one line naming the file, the bytes needed and free, and that the last good
checkpoint is kept; a launch warns when the filesystem has less room than its checkpoints."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from gansweep import artifacts
from gansweep.runs import preflight
from tests.helpers import compose_config, small_filesystem


@pytest.fixture
def small_fs(tmp_path):
    """A 60 MB filesystem (tmpfs), where the machine lets a test mount one."""
    with small_filesystem(tmp_path, "60m") as mount:
        yield mount


@pytest.mark.slow
def test_a_run_on_a_full_filesystem_stops_with_one_line_and_its_last_checkpoint(small_fs):
    """MLP G and D of width 1024: last.pt is ~17 MB before Adam's first step and ~51 MB
    after it, so the second checkpoint cannot be written beside the first on 60 MB."""
    run_dir = small_fs / "run"
    cmd = [sys.executable, "-m", "gansweep.train", "+experiment=mixture_coulomb",
           "trainer.epochs=2", "trainer.max_batches_per_epoch=4", "trainer.checkpoint_every=2",
           "model.hidden=1024", "dataset.size=4096", "trainer.progress=off", "trainer.device=cpu",
           f"hydra.run.dir={run_dir}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HYDRA_FULL_ERROR": "0"})
    assert done.returncode != 0
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: no space left to write {run_dir}/checkpoints/last.pt: it "
                            "needs about ")
    assert "are free; the last good last.pt is kept. Fix: free space" in error
    assert "inline_container" not in done.stderr  # torch's own words do not reach the user
    state = artifacts.load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["counters"]["step"] == 0 and torch.isfinite(
        state["generator"][next(iter(state["generator"]))]).all()
    assert not list((run_dir / "checkpoints").glob(".last.pt.tmp*"))  # no partial file left


def test_torchs_write_error_on_a_full_disk_becomes_the_one_line(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    artifacts.save_checkpoint({"w": torch.zeros(4)}, path)
    good = path.read_bytes()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(artifacts.shutil, "disk_usage", lambda p: usage(100, 90, 10))

    def enforce_fail(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos "
                           "31266048 vs 31265936")

    monkeypatch.setattr(artifacts.torch, "save", enforce_fail)
    with pytest.raises(artifacts.DiskFullError) as refused:
        artifacts.save_checkpoint({"w": torch.zeros(1000)}, path)
    assert str(refused.value) == (
        f"no space left to write {path}: it needs about 4,000 bytes and 10 are free; the last "
        "good last.pt is kept. Fix: free space there, or move the output dir "
        "(hydra.sweep.dir=... / hydra.run.dir=...) and run the same command again")
    assert path.read_bytes() == good


def test_other_write_errors_pass_through(tmp_path, monkeypatch):
    monkeypatch.setattr(artifacts.torch, "save", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.EACCES, "Permission denied")))
    with pytest.raises(PermissionError):
        artifacts.save_checkpoint({"w": torch.zeros(4)}, tmp_path / "last.pt")


def test_a_launch_warns_when_the_sweeps_checkpoints_do_not_fit(tmp_path, monkeypatch, caplog):
    cfg = compose_config(["+experiment=seed_coulomb_1"], hydra=True)
    with open_dict(cfg):
        cfg.hydra.overrides.task = ["+experiment=seed_coulomb_1,seed_standard", "seed=0,1,2"]
    assert preflight.sweep_size(cfg) == 6
    per_run = preflight.checkpoint_bytes(cfg)
    assert 110 * 2**20 < per_run < 130 * 2**20  # 7.8 M parameters: last.pt and best.pt
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda p: usage(0, 0, 5 * per_run))
    with caplog.at_level(logging.WARNING, logger="gansweep.preflight"):
        preflight.warn_if_short_of_space(cfg, tmp_path, preflight.sweep_size(cfg))
    assert "the checkpoints of 6 run(s) take about" in caplog.text
    caplog.clear()
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda p: usage(0, 0, 7 * per_run))
    preflight.warn_if_short_of_space(cfg, Path(tmp_path), 6)
    assert caplog.text == ""
