"""Bad input gets one line before anything trains, and one job's failure stays its own: a
thread count torch refuses, a key misspelt with ``+``, a job dir name taken by a file, a
hand-made donor whose files disagree with its summary, and a full disk (the error says what
the file needs, and the run ends with a final record, not ``running``)."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from gansweep import artifacts, schema
from gansweep import pictures
from gansweep.runs import extend, summary
from gansweep.runs.checkpoint import Counters, ResumeError
from gansweep.schema import ConfigError
from gansweep.train import record_failure
from gansweep.runs.trainer import run
from tests.helpers import CHEAP_FID, ON_TEST_DEVICE, REPO, compose_config, small_filesystem
from tests.helpers import sweep as run_sweep

FIXTURE = Path(__file__).parent / "fixtures" / "previous_release" / "ring8_2ep"


def _summary(job: Path) -> dict:
    return json.loads((job / "summary.json").read_text())


# ----------------------------------------------------------------------- a bad thread count
THREADS_REFUSED = ("trainer.threads=-2 is not allowed: must be an integer >= 1 or null "
                   "(torch's default). Fix it in the config or override it, e.g. "
                   "`trainer.threads=<value>`.")


def test_a_negative_thread_count_is_one_line_before_anything_trains(mnist_root, tmp_path):
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "gansweep.train", *ON_TEST_DEVICE, "trainer=smoke",
         "trainer.threads=-2", f"dataset.root={mnist_root}", "dataset.limit=512",
         "trainer.batch_size=32", *CHEAP_FID, f"hydra.run.dir={run_dir}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"error: {THREADS_REFUSED}"
    assert "Traceback" not in done.stderr
    assert _summary(run_dir)["status"] == "failed"
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "metrics.jsonl").exists()


@pytest.mark.slow
def test_a_refused_thread_count_in_a_multirun_is_recorded_and_the_table_still_comes(
        mnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    done = run_sweep(mnist_root, sweep, "trainer.threads=-2,1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    # trainer.threads is where a job runs, not what it computes: both jobs are one run, in one
    # dir; the refused job says why in one line and the next trains it
    assert THREADS_REFUSED in done.stderr + done.stdout
    jobs = [job for job in sweep.iterdir() if job.is_dir()]
    assert len(jobs) == 1
    trained = _summary(jobs[0])
    assert trained["status"] == "ok" and trained["torch_threads"] == 1
    table = pd.read_csv(sweep / "table.csv")
    assert list(table["status"]) == ["ok"]


def test_a_refused_config_leaves_a_finished_run_in_its_dir_as_it_was(tmp_path):
    """trainer.threads is no part of a run's identity, so a single run with a bad count lands
    in the dir of the finished run with a good one: the refusal must not overwrite it."""
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    before = (run_dir / "summary.json").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "gansweep.train", *ON_TEST_DEVICE, *_mixture(2),
         "trainer.threads=-2", f"hydra.run.dir={run_dir}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"error: {THREADS_REFUSED}"
    assert (run_dir / "summary.json").read_text() == before


# ------------------------------------------------------------------ a job dir taken by a file
@pytest.mark.slow
def test_a_job_dir_taken_by_a_file_is_one_line_and_the_other_jobs_run(mnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "job0").write_text("a user's notes")
    done = run_sweep(mnist_root, sweep, "seed=0,1", "hydra.sweep.subdir=job${hydra.job.num}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "FileExistsError" not in done.stderr
    assert (f"job refused: job dir {sweep / 'job0'} is taken by a file. Fix: move or delete "
            f"{sweep / 'job0'}") in done.stdout + done.stderr
    assert (sweep / "job0").read_text() == "a user's notes"
    assert _summary(sweep / "job1")["status"] == "ok"
    assert list(pd.read_csv(sweep / "table.csv")["job"]) == ["job1"]


# --------------------------------------------------------------------- a key misspelt with +
def test_a_misspelt_top_level_key_is_refused_naming_the_nearest(tiny_overrides, tmp_path):
    cfg = compose_config([*tiny_overrides, "+optimzer.d.lr=1e-3"])
    with pytest.raises(ConfigError) as refused:
        run(cfg, tmp_path / "run")
    assert str(refused.value) == (
        "optimzer.d.lr=0.001: optimzer is not a top-level key of gansweep-train, so nothing "
        "would read it (did you mean optimizer?). Fix: optimizer.d.lr=0.001 (a key the config "
        "has takes no '+').")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_top_level_key_like_no_other_lists_the_keys():
    with pytest.raises(ConfigError, match=r"^zzz=1: zzz is not a top-level key .*\(the "
                                          r"top-level keys are keras, model, .*\)\. Fix: "
                                          r"drop \+zzz\.$"):
        schema.check(compose_config(["+zzz=1"]))


@pytest.mark.parametrize("overrides", [
    ["+experiment=seed_coulomb_1"],
    ["+experiment=mixture_eps_dim_sweep"],
    ["+experiment=mixture_standard", "dataset=grid25"],
    ["hparams_search=coulomb_optuna"],
    ["logger=[csv,tensorboard]", "+logger.mine._target_=x.Y", "+logger.mine.prefix=p"],
    [f"hydra.searchpath=[file://{REPO / 'examples' / 'extending' / 'conf'}]",
     "+experiment=mixture_standard", "model=spectral_mlp", "gan_type=lsgan", "fid=pixels"],
])
def test_the_keys_users_add_still_pass_the_check(overrides):
    """Presets (with their reference rows), the Optuna search, loggers of one's own (added
    with +) and the options of examples/extending put keys where the config has them."""
    schema.check_top_level(compose_config(overrides))


# -------------------------------------------------------- a donor whose files disagree
def _mixture(epochs: int, *extra: str) -> list[str]:
    """The settings tests/fixtures/previous_release/ring8_2ep was trained with."""
    return ["+experiment=mixture_coulomb", f"trainer.epochs={epochs}",
            "trainer.max_batches_per_epoch=5", "dataset.size=2048", "dataset.num_samples=500",
            "model.hidden=16", "trainer.sample_every=1000", "trainer.checkpoint_every=null",
            "trainer.threads=1", "trainer.progress=off", *extra]


def _hand_made_donor(sweep: Path, change) -> Path:
    """The fixture's run with its last.pt changed by ``change(state)``: summary.json still
    reports the fixture's run."""
    donor = sweep / "old"
    shutil.copytree(FIXTURE, donor)
    last = donor / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    change(state)
    last.unlink()  # copytree may have kept a link to the fixture: never write through it
    torch.save(state, last)
    return donor


def _another_seed(state: dict) -> None:
    state["fingerprint"]["seed"] = 1


def _mid_run(state: dict) -> None:
    state["counters"].update(epoch=1, batch=0, step=4)


@pytest.mark.parametrize("change, why", [
    (_another_seed, r"its checkpoints/last\.pt is of another configuration than its "
                    r"summary\.json and this job \(differs in: seed\)"),
    (_mid_run, r"its checkpoints/last\.pt \(epoch 1, batch 0, step 4\) is not the end of the "
               r"run its summary\.json reports \(2 epochs, 8 batches\)"),
])
def test_a_named_donor_whose_last_pt_disagrees_is_refused_before_anything_is_adopted(
        tmp_path, change, why):
    donor = _hand_made_donor(tmp_path / "sweep", change)
    target = tmp_path / "sweep" / "new"
    cfg = compose_config(_mixture(3, f"trainer.extend_from={donor}"))
    with pytest.raises(ResumeError, match=rf"^cannot extend {re.escape(str(donor))} into "
                                          rf"{re.escape(str(target))}: {why}\. Fix: give "):
        extend.prepare(cfg, target)
    assert not target.exists() or not any(target.iterdir())


def test_a_sibling_whose_last_pt_disagrees_is_not_a_donor(tmp_path):
    _hand_made_donor(tmp_path / "sweep", _another_seed)
    target = tmp_path / "sweep" / "new"
    cfg = compose_config(_mixture(3))
    assert extend.find_donor(cfg, target) is None
    assert extend.prepare(cfg, target) is None
    assert not target.exists() or not any(target.iterdir())


def test_the_fixtures_own_files_still_make_it_a_donor(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "sweep" / "old")
    found = extend.find_donor(compose_config(_mixture(3)), tmp_path / "sweep" / "new")
    assert found is not None and found[0] == tmp_path / "sweep" / "old"


# -------------------------------------------------------------------------------- a full disk
@pytest.fixture
def full_fs(tmp_path):
    """A 512 KB filesystem (tmpfs, where the machine lets a test mount one); ``fill()``
    leaves no byte free on it."""
    with small_filesystem(tmp_path, "512k") as mount:
        yield mount


def _fill(mount: Path) -> None:
    fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_a_sample_grid_on_a_full_disk_names_the_bytes_it_needs(full_fs):
    images = torch.linspace(-1, 1, 32 * 28 * 28).reshape(32, 1, 28, 28)
    encoded = io.BytesIO()
    Image.fromarray(pictures.image_grid(images), mode="L").save(encoded, format="PNG")
    path = full_fs / "samples" / "0000_0000.png"
    path.parent.mkdir()
    _fill(full_fs)
    with pytest.raises(artifacts.DiskFullError) as refused:
        pictures.save_grid(images, path)
    assert re.match(rf"no space left to write {re.escape(str(path))}: it needs about "
                    rf"{len(encoded.getvalue()):,} bytes and [\d,]+ are free; no "
                    r"0000_0000\.png was written\. Fix: free space there", str(refused.value))
    assert not path.exists() and not list(path.parent.iterdir())


def test_a_size_that_is_not_known_is_left_unsaid(tmp_path, monkeypatch):
    """A write cut short by a full disk says nothing of how much it needed (it does not know),
    rather than "about 0 bytes"."""
    def cut_short(handle):
        handle.write(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    path = tmp_path / "grid.png"
    with pytest.raises(artifacts.DiskFullError) as refused:
        artifacts.atomic_write(path, cut_short)
    assert re.match(rf"no space left to write {re.escape(str(path))}: [\d,]+ bytes are free; "
                    r"no grid\.png was written\. Fix:", str(refused.value))
    assert "needs" not in str(refused.value)


def test_a_run_stopped_by_a_full_disk_ends_failed_not_running(full_fs):
    """The run wrote summary.json (``running``) at its last checkpoint; then the disk filled
    up and a sample grid could not be written. Its final record still replaces that one."""
    cfg = compose_config(["+experiment=seed_standard"])
    run_dir = full_fs / "run"
    run_dir.mkdir()
    artifacts.write_json(summary.entries("running", cfg, Counters(epoch=1, step=5),
                                         pid=os.getpid()), run_dir / "summary.json")
    _fill(full_fs)
    error = artifacts.DiskFullError(f"no space left to write {run_dir}/samples/0001_0000.png")
    record_failure(run_dir, cfg, error)
    record = _summary(run_dir)
    assert record["status"] == "failed"
    assert record["error"] == f"DiskFullError: {error}"
