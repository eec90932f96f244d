"""A sweep's numbers hold when launches overlap, repeat or die: a job that another process is
training is waited for and its result used (never counted as a failed run), the workers of a
killed launcher stop instead of training on, a run is found in the sweep dir whatever its job
number and counts once in the table and in halving's means, a change of where jobs run
(threads, the data's folder) continues the same sweep, and halving.json is strict JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from gansweep import artifacts
from gansweep.sweep import halving
from gansweep.runs.dirs import sweep_name
from gansweep.identity import identity_hash
from gansweep.report import halving as halving_report
from gansweep.report.grouping import group_seeds
from gansweep.report.table import collect, findings
from gansweep.runs.trainer import Run
from tests.helpers import CHEAP_FID, ON_TEST_DEVICE, compose_config, has_plugin, write_job
from tests.helpers import sweep as run_sweep

TINY = ["trainer=smoke", "trainer.batch_size=32", "dataset.limit=512", *CHEAP_FID]


def _summary(job: Path) -> dict:
    return json.loads((job / "summary.json").read_text())


def _wait_for(predicate, what: str, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _strict_json(text: str):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def _halving_cmd(mnist_root: Path, sweep: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gansweep.train", "-m", "hydra/sweeper=halving",
            *ON_TEST_DEVICE, *TINY, "trainer.threads=1", f"dataset.root={mnist_root}",
            "+experiment=seed_standard", "hydra.sweeper.min_epochs=1",
            "hydra.sweeper.max_epochs=2", "hydra.sweeper.eta=2",
            f"hydra.sweep.dir={sweep}", *extra]


# ----------------------------------------------------------------------------- busy jobs
@pytest.mark.slow
def test_a_busy_job_is_waited_for_and_its_result_used_not_counted_as_failed(mnist_root,
                                                                            tmp_path):
    """Two launches at once into one halving sweep: the job the other launch is training
    waits for it, then takes its finished run (not trained again) and its objective; the
    setting is ranked on it, nothing is recorded as failed, and the sweep exits 0."""
    sweep = tmp_path / "sweep"
    job_overrides = [*TINY, "trainer.threads=1", f"dataset.root={mnist_root}",
                     "+experiment=seed_standard", "optimizer.d.lr=1e-4", "seed=0",
                     "trainer.epochs=1"]
    cfg = compose_config(job_overrides)
    busy = sweep / f"0_seed_standard_{identity_hash(cfg)}"  # rung 1's first job
    lock = artifacts.RunLock(busy).acquire()  # another launch is training it
    log = tmp_path / "launch.log"
    try:
        with open(log, "w") as out:
            proc = subprocess.Popen(_halving_cmd(mnist_root, sweep, "optimizer.d.lr=1e-4,1e-3",
                                                 "seed=0"),
                                    cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
        waiting = f"job dir {busy} is in use by pid {os.getpid()}"
        _wait_for(lambda: waiting in log.read_text() or proc.poll() is not None,
                  "the launch to reach the busy job")
        assert waiting in log.read_text(), log.read_text()[-3000:]
        assert proc.poll() is None  # waiting, not carrying on without the job
        threads = torch.get_num_threads()
        try:
            Run(cfg, busy).train()  # the holder finishes the run
        finally:
            torch.set_num_threads(threads)  # the run set 1 in this process
        objective = _summary(busy)["objective"]
    finally:
        lock.release()
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    output = log.read_text()
    assert f"{busy} already finished" in output  # its run was used, not trained again
    assert "no setting of rung 1 finished" not in output
    record = _strict_json((sweep / "halving.json").read_text())
    first = record["rungs"][0]["settings"]
    assert all(s["mean"] is not None and None not in s["objective"] for s in first)
    held = next(s for s in first if busy.name in s["jobs"])
    assert held["objective"] == [pytest.approx(objective)]


def test_a_dead_holders_lock_does_not_keep_a_job_waiting(tmp_path):
    """The OS drops the lock of a holder killed with kill -9 (its stale .lock.owner stays):
    the waiting job goes on at once."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from gansweep.artifacts import RunLock; "
         f"held = RunLock({str(tmp_path)!r}).acquire(); print('held', flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(artifacts.RunLocked, match=f"pid {holder.pid}") as refused:
            artifacts.RunLock(tmp_path).acquire()
        assert refused.value.holder["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / ".lock.owner").exists()  # stale, and no obstacle
    artifacts.RunLock(tmp_path).wait()
    artifacts.RunLock(tmp_path).acquire().release()


@pytest.mark.slow
@pytest.mark.skipif(not has_plugin("hydra_joblib_launcher"), reason="pip install 'gansweep[scale]'")
def test_the_workers_of_a_killed_joblib_launcher_stop_with_a_checkpoint(mnist_root, tmp_path):
    """kill -9 of a joblib launcher: its workers stop at the next batch boundary with a
    checkpoint (``interrupted``, resumable) and exit, instead of training on and holding
    their run dirs' locks against the relaunch."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "gansweep.train", "-m", "hydra/launcher=joblib",
           "hydra.launcher.n_jobs=2", *ON_TEST_DEVICE, *TINY, "trainer.threads=1",
           f"dataset.root={mnist_root}",
           "+experiment=seed_standard", "seed=0,1", "trainer.epochs=6",
           "trainer.max_batches_per_epoch=16", f"hydra.sweep.dir={sweep}"]
    launcher = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    workers: list[int] = []
    try:
        def training() -> bool:
            summaries = [_summary(p.parent) for p in sweep.glob("*/summary.json")]
            return len(summaries) == 2 and all(s.get("status") == "running" for s in summaries)

        _wait_for(training, "both jobs to train")
        workers = [_summary(p.parent)["pid"] for p in sweep.glob("*/summary.json")]
        assert launcher.pid not in workers  # they run in worker processes
        launcher.kill()
        launcher.wait()
        _wait_for(lambda: all(_summary(p.parent)["status"] != "running"
                              for p in sweep.glob("*/summary.json")), "the workers to stop")
        for job in sweep.glob("*/summary.json"):
            summary = _summary(job.parent)
            assert summary["status"] == "interrupted", summary
            assert summary["epochs_done"] < 6
            artifacts.RunLock(job.parent).acquire().release()  # nothing holds it now

        def gone(pid: int) -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"

        _wait_for(lambda: all(gone(pid) for pid in workers), "the workers to exit")
    finally:
        for pid in workers:  # only if the test failed: the workers it started
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ----------------------------------------------------------------------------- one run, once
@pytest.mark.slow
def test_a_longer_or_reordered_sweep_list_finds_the_runs_it_already_trained(mnist_root,
                                                                           tmp_path):
    """In a pinned sweep dir, a second launch whose list grew (job numbers shift) trains only
    the new jobs, and one whose seeds are reordered trains nothing: each run is found
    whatever its job number, and the table counts every seed once."""
    sweep = tmp_path / "sweep"
    base = ["+experiment=seed_standard", "trainer.threads=1"]
    first = run_sweep(mnist_root, sweep, *base, "optimizer.d.lr=1e-5", "seed=0,1")
    assert first.returncode == 0, first.stderr[-2000:]
    trained = {p.name: _summary(p)["wall_seconds"] for p in sweep.iterdir() if p.is_dir()}

    grown = run_sweep(mnist_root, sweep, *base, "optimizer.d.lr=1e-4,1e-5", "seed=0,1")
    assert grown.returncode == 0, grown.stderr[-2000:]
    output = grown.stdout + grown.stderr
    assert output.count("training seed_standard") == 2  # lr 1e-4 only
    assert all(f"{name} already finished" in output for name in trained)
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 4
    assert {name: _summary(sweep / name)["wall_seconds"] for name in trained} == trained
    groups = pd.read_csv(sweep / "table_groups.csv")
    assert sorted(groups["seeds"]) == ["0,1", "0,1"]
    assert list(groups["fid_lenet_n"]) == [2, 2]

    reordered = run_sweep(mnist_root, sweep, *base, "optimizer.d.lr=1e-5", "seed=1,0")
    assert reordered.returncode == 0, reordered.stderr[-2000:]
    assert "training seed_standard" not in reordered.stdout + reordered.stderr
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == jobs


def test_the_table_counts_a_run_found_in_two_dirs_once(tmp_path):
    """A sweep dir from before relaunches found a run whatever its job number can hold one
    run in two dirs: the table counts it once (the finished one), and says which dir it
    left out; the same dir named twice counts once too."""
    sweep = tmp_path / "sweep"
    def job(name: str, seed: int, status: str, fid: float | None) -> Path:
        config = {"name": "seed_standard", "gan_type": {"name": "standard"}, "seed": seed,
                  "optimizer": {"d": {"lr": 1e-4}}, "trainer": {"epochs": 1}}
        summary = {"status": status, "name": "seed_standard", "gan_type": "standard",
                   "epochs_done": 1 if status == "ok" else 0, "config": config,
                   "identity": {"seed": seed, "optimizer": {"d": {"lr": 1e-4}},
                                "trainer.epochs": 1}}
        if fid is not None:
            summary["fid_lenet"] = fid
        return write_job(sweep, name, [f"seed={seed}"], config, summary)

    job("0_seed_standard_aaaaaaaa", 0, "ok", 10.0)
    job("1_seed_standard_bbbbbbbb", 1, "ok", 12.0)
    job("2_seed_standard_aaaaaaaa", 0, "ok", 10.0)  # seed 0 again, under a later number
    job("3_seed_standard_cccccccc", 2, "interrupted", None)
    job("4_seed_standard_cccccccc", 2, "ok", 14.0)  # seed 2 finished in its second dir
    frame = collect([sweep, sweep / "1_seed_standard_bbbbbbbb"])
    assert sorted(frame["job"]) == ["0_seed_standard_aaaaaaaa", "1_seed_standard_bbbbbbbb",
                                    "4_seed_standard_cccccccc"]
    groups = group_seeds(frame, "fid_lenet")
    assert len(groups) == 1
    assert groups.at[0, "fid_lenet_n"] == 3 and groups.at[0, "seeds"] == "0,1,2"
    assert groups.at[0, "fid_lenet_mean"] == pytest.approx(12.0)
    assert ("Counted once (2): 2_seed_standard_aaaaaaaa repeats 0_seed_standard_aaaaaaaa; "
            "3_seed_standard_cccccccc repeats 4_seed_standard_cccccccc") in " ".join(
                findings(frame))


@pytest.mark.slow
def test_halving_averages_a_seed_listed_twice_once(mnist_root, tmp_path):
    """``seed=0,0,1``: two runs per setting and rung, each trained and averaged once."""
    sweep = tmp_path / "sweep"
    done = subprocess.run(_halving_cmd(mnist_root, sweep, "seed=0,0,1"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "repeat another's overrides" in done.stdout + done.stderr
    record = _strict_json((sweep / "halving.json").read_text())
    assert record["seeds"] == 2
    for rung in record["rungs"]:
        (setting,) = rung["settings"]
        assert len(setting["objective"]) == 2 and len(set(setting["jobs"])) == 2
    assert len([p for p in sweep.iterdir() if p.is_dir()]) == 4  # 2 runs x 2 rungs


# ----------------------------------------------------------------------------- placement
def test_where_jobs_run_is_not_part_of_the_sweep_dir_name():
    """trainer.threads, dataset.root and the other placement keys name no sweep; a command
    without them keeps the name it always had."""
    plain = ["+experiment=seed_standard", "seed=0,1"]
    assert sweep_name(plain) == "+experiment=seed_standard_seed=0-1_58250308"
    for placed in (["trainer.threads=1"], ["trainer.threads=2", "dataset.root=/elsewhere"],
                   ["dataset.fetch=false", "fid.cache_dir=/tmp/cache", "fid.fetch=false"]):
        assert sweep_name([*plain, *placed]) == sweep_name(plain)
    halving_sweep = sweep_name(
        ["+experiment=seed_standard", "optimizer.d.lr=1e-5,1e-4", "seed=0,1",
         "trainer.epochs=3", "fid.num_samples=500"],
        ["hydra/sweeper=halving", "hydra.sweeper.eta=2", "hydra.launcher.n_jobs=2"])
    assert halving_sweep == ("+experiment=seed_standard_hydra.sweeper.eta=2_hydra-sweeper="
                             "halving_optimizer.d._e369cddb")
    assert sweep_name(["+experiment=seed_standard", "seed=0,1", "kernel.eps=2"]) != \
        sweep_name(plain)


@pytest.mark.slow
def test_a_relaunch_with_other_threads_or_data_folder_continues_the_same_sweep(mnist_root,
                                                                              tmp_path):
    elsewhere = tmp_path / "data_elsewhere"
    elsewhere.symlink_to(mnist_root)
    def launch(root: Path, threads: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "gansweep.train", "-m", *ON_TEST_DEVICE, *TINY,
             f"dataset.root={root}", f"trainer.threads={threads}",
             "+experiment=seed_standard"], cwd=tmp_path, capture_output=True, text=True,
            timeout=600)

    first = launch(mnist_root, 1)
    assert first.returncode == 0, first.stderr[-2000:]
    again = launch(elsewhere, 2)
    assert again.returncode == 0, again.stderr[-2000:]
    (sweep,) = (tmp_path / "outputs" / "multirun").iterdir()  # one sweep, not two
    assert "already finished" in again.stdout + again.stderr
    assert len([p for p in sweep.iterdir() if p.is_dir()]) == 1


# ----------------------------------------------------------------------------- halving, small
def test_halving_json_is_strict_json_with_null_for_a_failed_run(tmp_path):
    """A failed run's objective (inf) is written as null, which JSON has (Infinity it has
    not); the table's reader takes the record as it did."""
    record = {"budget": "trainer.epochs", "ladder": [1, 2], "eta": 2, "settings": 2, "seeds": 2,
              "rungs": [{"budget": 1, "tied_at_cut": None, "settings": [
                  {"setting": "a", "overrides": ["a"], "objective": [float("inf"), 685.69],
                   "mean": None, "rank": 2, "promoted": False, "jobs": [None, None]},
                  {"setting": "b", "overrides": ["b"], "objective": [1.0, float("nan")],
                   "mean": None, "rank": 2, "promoted": False, "jobs": [None, None]}]}]}
    halving.write_record(record, tmp_path / "halving.json")
    written = _strict_json((tmp_path / "halving.json").read_text())
    assert [s["objective"] for s in written["rungs"][0]["settings"]] == [[None, 685.69],
                                                                         [1.0, None]]
    frame = halving_report.rung_frame(halving_report.read(tmp_path))
    assert list(frame["trainer.epochs=1"]) == ["-", "-"]


def test_a_max_batch_size_of_zero_is_refused_in_one_line():
    with pytest.raises(SystemExit) as refused:
        halving.HalvingSweeperBase(max_batch_size=0)
    assert str(refused.value) == ("error: hydra.sweeper.max_batch_size=0: must be >= 1, or "
                                  "null for a whole rung at once")
