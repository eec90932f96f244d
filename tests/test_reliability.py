"""Fault injection: kills, torn checkpoints, divergence and bad input lose nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers import CHEAP_FID, ON_TEST_DEVICE, compose_config
from tests.helpers import sweep as run_sweep
from gansweep import artifacts
from gansweep.gan import step
from gansweep.artifacts import OutputDirError
from gansweep.data import DataError
from gansweep.runs.checkpoint import ResumeError
from gansweep.runs.trainer import Run, run
from gansweep.schema import ConfigError


def _train_cmd(mnist_root, run_dir, *extra):
    return [sys.executable, "-m", "gansweep.train", "+experiment=seed_coulomb_1",
            f"dataset.root={mnist_root}", "dataset.limit=512", "trainer=smoke", *ON_TEST_DEVICE,
            "trainer.batch_size=32", "trainer.epochs=3", "trainer.max_batches_per_epoch=6",
            "trainer.checkpoint_every=2", "trainer.sample_every=3", f"hydra.run.dir={run_dir}",
            *CHEAP_FID, *extra]  # the final FID's 3,000 samples would prove nothing more here


def _rows(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def _weights(run_dir):
    state = torch.load(run_dir / "checkpoints/last.pt", weights_only=False)
    return {**state["generator"], **{f"d.{k}": v for k, v in state["discriminator"].items()}}


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_equals_an_uninterrupted_run(mnist_root, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_train_cmd(mnist_root, straight), check=True, capture_output=True, cwd=tmp_path)

    proc = subprocess.Popen(_train_cmd(mnist_root, killed), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill in the second epoch, between checkpoints
        metrics = killed / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 9:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((killed / "summary.json").read_text())["status"] == "running"
    assert len(_rows(killed)) < 18

    resumed = subprocess.run(_train_cmd(mnist_root, killed), capture_output=True, text=True,
                             cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in (killed / "train.log").read_text()
    assert _rows(killed) == _rows(straight)
    a, b = _weights(straight), _weights(killed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in (killed / "samples").iterdir()) == \
        sorted(p.name for p in (straight / "samples").iterdir())
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["batches_done"] == 18

    # relaunching a finished run skips it
    again = subprocess.run(_train_cmd(mnist_root, killed), capture_output=True, text=True,
                           cwd=tmp_path)
    assert again.returncode == 0 and "already finished" in (killed / "train.log").read_text()


def test_a_checkpoint_torn_mid_write_leaves_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    artifacts.save_checkpoint({"step": 1, "w": torch.ones(1000)}, path)

    def torn_save(obj, handle):
        handle.write(b"\x80\x02partial")
        raise OSError("No space left on device")
    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError):
        artifacts.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert artifacts.load_checkpoint(path)["step"] == 1


def test_metrics_truncation_drops_rows_after_the_checkpoint_and_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in range(5)) + '{"step": 5, "d_')
    artifacts.truncate_metrics(path, 3)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [0, 1, 2]


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_of_another_config(tiny_overrides, tmp_path):
    run(compose_config([*tiny_overrides, "+experiment=seed_coulomb_1"]), tmp_path)
    other = compose_config([*tiny_overrides, "+experiment=seed_coulomb_1", "kernel.eps=0.1",
                            "trainer.epochs=2"])
    with pytest.raises(ResumeError, match="differs in: kernel"):
        Run(other, tmp_path).train()
    fresh = compose_config([*tiny_overrides, "+experiment=seed_coulomb_1", "kernel.eps=0.1",
                            "trainer.resume=never"])
    assert run(fresh, tmp_path)["status"] == "ok"


@pytest.mark.slow
def test_nan_stops_the_run_as_diverged_and_keeps_the_last_good_checkpoint(tiny_overrides, tmp_path,
                                                                          monkeypatch):
    cfg = compose_config([*tiny_overrides, "trainer.max_batches_per_epoch=4"])
    r = Run(cfg, tmp_path)
    g_step = step.g_step

    def poisoned(parts, z):  # the third G update writes NaN into G's weights
        loss = g_step(parts, z)
        if r.counters.step == 2:
            with torch.no_grad():
                r.g.fc1.weight[0, 0] = float("nan")
        return loss
    monkeypatch.setattr(step, "g_step", poisoned)
    summary = r.train()
    assert summary["status"] == "diverged" and summary["diverged_at"]["step"] == 3
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["status"] == "diverged" and saved["last_sample"] == "samples/0000_0002.png"
    good = torch.load(tmp_path / "checkpoints/last.pt", weights_only=False)
    assert good["counters"]["step"] == 2 and torch.isfinite(good["generator"]["fc1.weight"]).all()
    assert not (tmp_path / "samples/final.png").exists()


@pytest.mark.slow
def test_a_diverging_and_a_failing_job_do_not_take_the_sweep_down(mnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_sweep(mnist_root, sweep, "+experiment=seed_coulomb_1", "optimizer.g.lr=1e-3,1e30",
                     "kernel.eps=1,0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    statuses = {}
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        summary = json.loads((job / "summary.json").read_text())
        overrides = (job / ".hydra/overrides.yaml").read_text()
        statuses[("1e+30" in overrides, "kernel.eps=0" in overrides)] = summary
    assert statuses[(False, False)]["status"] == "ok"
    assert statuses[(True, False)]["status"] == "diverged"
    for key in ((False, True), (True, True)):
        assert statuses[key]["status"] == "failed"
        assert "kernel.eps=0.0 is not allowed" in statuses[key]["error"]


@pytest.mark.parametrize("override, error, text", [
    ("optimizer.d.lr=0", ConfigError, "optimizer.d.lr=0.0"),
    ("optimizer.g.decay=-1e-3", ConfigError, "optimizer.g.decay"),
    ("kernel.eps=-1", ConfigError, "kernel.eps"),
    ("kernel.eps_half_life=0", ConfigError, "kernel.eps_half_life"),
    ("trainer.batch_size=1024", ConfigError, "512 training samples"),
    ("dataset.limit=0", ConfigError, "dataset.limit"),
])
def test_bad_values_fail_before_anything_is_written(tiny_overrides, tmp_path, override, error, text):
    cfg = compose_config([*tiny_overrides, "+experiment=seed_coulomb_1", override])
    with pytest.raises(error, match=text.replace(".", r"\.")):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_request_without_cuda(tiny_overrides, tmp_path):
    with pytest.raises(ConfigError, match="CUDA is not available"):
        run(compose_config([*tiny_overrides, "trainer.device=cuda"]), tmp_path)


def test_missing_data_with_fetch_disabled_names_the_command(tiny_overrides, tmp_path):
    cfg = compose_config([*tiny_overrides, f"dataset.root={tmp_path / 'empty'}", "dataset.fetch=false"])
    with pytest.raises(DataError, match="gansweep-data fetch"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_unwritable_output_dir(tiny_overrides, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputDirError, match="not writable.*hydra.run.dir"):
        run(compose_config(tiny_overrides), blocker / "run")


@pytest.mark.slow
def test_single_run_exits_with_the_error_and_records_it(mnist_root, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gansweep.train", "optimizer.d.lr=-1",
                           f"dataset.root={mnist_root}", f"hydra.run.dir={tmp_path}/r"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert "optimizer.d.lr=-1.0 is not allowed" in proc.stderr
    summary = json.loads((tmp_path / "r/summary.json").read_text())
    assert summary["status"] == "failed" and "optimizer.d.lr" in summary["error"]


@pytest.mark.slow
def test_sigterm_checkpoints_and_marks_the_run_interrupted(mnist_root, tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(_train_cmd(mnist_root, run_dir), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        metrics = run_dir / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "run the same command again to resume" in output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["error"] == "stopped by SIGTERM"
    state = torch.load(run_dir / "checkpoints/last.pt", weights_only=False)
    assert state["counters"]["step"] == summary["batches_done"] >= 3
