"""The packed launcher under a hostile user: a run that diverges where only a checkpoint sees
it, a run that fails, a stop that comes in one run's last batch or during its final
evaluation, a job dir another launch holds. Each run of a pack must end as it would alone,
and the others carry on (or stop, with a checkpoint, when the user stops them)."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from gansweep import artifacts
from gansweep.packed import driver
from gansweep.runs import checkpoint
from gansweep.runs.signals import Interrupted
from gansweep.runs.trainer import Run
from tests.helpers import compose_config


def _cfgs(tiny_overrides, *settings, common=()):
    return [compose_config([*tiny_overrides, "trainer.threads=1", *common, *setting])
            for setting in settings]


def _summary(out_dir):
    return json.loads((out_dir / "summary.json").read_text())


def _outcomes(outcomes):
    """Each job's summary, or the exception its outcome raises."""
    found = []
    for outcome in outcomes:
        try:
            found.append(outcome())
        except Exception as exc:  # noqa: BLE001 - the test looks at which
            found.append(exc)
    return found


def _step(out_dir):
    return checkpoint.load(out_dir / "checkpoints" / "last.pt")["counters"]["step"]


@pytest.mark.slow
def test_a_run_whose_checkpoint_finds_it_diverged_stops_alone(tiny_overrides, tmp_path):
    """Logs and pictures every 100 batches, a checkpoint every batch: the diverging run's
    non-finite weights are first seen by a checkpoint, before a batch. It stops as diverged,
    as it would alone; the others train on (it used to take the launch down, every run of
    the pack left "running")."""
    cfgs = _cfgs(tiny_overrides, ["optimizer.g.lr=1e-3"], ["optimizer.g.lr=1e30"],
                 ["optimizer.g.lr=2e-4"],
                 common=["+experiment=seed_coulomb_1", "seed=0", "trainer.epochs=1",
                         "trainer.max_batches_per_epoch=4", "trainer.sample_every=100",
                         "trainer.log_every=100", "trainer.checkpoint_every=1"])
    jobs = [(c, tmp_path / f"run{i}") for i, c in enumerate(cfgs)]
    ends = _outcomes(driver.train_group(jobs))
    assert [e["status"] for e in ends] == ["ok", "diverged", "ok"], ends
    assert "non-finite weights" in ends[1]["error"]
    assert [_summary(d)["status"] for _, d in jobs] == ["ok", "diverged", "ok"]
    assert _step(jobs[0][1]) == _step(jobs[2][1]) == 4


@pytest.mark.slow
def test_a_run_that_fails_fails_alone_and_the_pack_carries_on(tiny_overrides, tmp_path,
                                                             monkeypatch):
    """One run's evaluation after its first epoch raises: that job's outcome is its error
    (recorded as failed by job_outcome, as alone); its pack-mates finish (it used to take
    the launch down with a traceback)."""
    cfgs = _cfgs(tiny_overrides, ["seed=0"], ["seed=1"], ["seed=2"],
                 common=["+experiment=seed_coulomb_1", "trainer.epochs=2",
                         "fid.every_epochs=1"])
    real = Run.evaluate

    def evaluate(self):
        if self.cfg.seed == 1:
            raise OSError("No space left on device")
        return real(self)

    monkeypatch.setattr(Run, "evaluate", evaluate)
    jobs = [(c, tmp_path / f"run{i}") for i, c in enumerate(cfgs)]
    ends = _outcomes(driver.train_group(jobs))
    assert isinstance(ends[1], OSError), ends[1]
    assert ends[0]["status"] == ends[2]["status"] == "ok"
    assert ends[0]["epochs_done"] == ends[2]["epochs_done"] == 2


@pytest.mark.slow
def test_a_stop_in_one_runs_last_batch_checkpoints_every_run_of_the_pack(
        tiny_overrides, tmp_path, monkeypatch):
    """SIGTERM during the fused step that ends the shorter run: it stops with its final
    checkpoint, and so does the longer one at its next batch boundary; both say
    "interrupted" (they were left "running", the longer one without a checkpoint of that
    batch). The same group again finishes both, bit for bit as a pack never stopped."""
    cfgs = _cfgs(tiny_overrides, ["trainer.epochs=1", "seed=0"], ["trainer.epochs=2", "seed=1"],
                 common=["+experiment=seed_coulomb_1", "trainer.max_batches_per_epoch=3",
                         "trainer.checkpoint_every=100"])
    whole = [(c, tmp_path / f"whole{i}") for i, c in enumerate(cfgs)]
    assert [e["status"] for e in _outcomes(driver.train_group(whole))] == ["ok", "ok"]

    real, steps = driver.PackedRuns.train_batch, []

    def stopped_in_the_third(self):
        steps.append(1)
        if len(steps) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self)

    monkeypatch.setattr(driver.PackedRuns, "train_batch", stopped_in_the_third)
    jobs = [(c, tmp_path / f"stopped{i}") for i, c in enumerate(cfgs)]
    ends = _outcomes(driver.train_group(jobs))
    assert all(isinstance(e, Interrupted) for e in ends), ends
    assert [_summary(d)["status"] for _, d in jobs] == ["interrupted", "interrupted"]
    assert [_step(d) for _, d in jobs] == [3, 3]
    monkeypatch.setattr(driver.PackedRuns, "train_batch", real)
    assert [e["status"] for e in _outcomes(driver.train_group(jobs))] == ["ok", "ok"]
    for (_, out_dir), (_, reference) in zip(jobs, whole):
        a, b = (checkpoint.load(d / "checkpoints" / "last.pt") for d in (out_dir, reference))
        for net in ("generator", "discriminator"):
            assert all(torch.equal(a[net][k], v) for k, v in b[net].items()), net
        assert _summary(out_dir)["fid_lenet"] == _summary(reference)["fid_lenet"]


@pytest.mark.slow
def test_a_stop_during_one_runs_final_evaluation_stops_its_pack_mates(
        tiny_overrides, tmp_path, monkeypatch):
    """SIGTERM while the shorter run computes its final FID: that run stops there (its final
    checkpoint kept), and the longer one stops at its next batch with a checkpoint instead
    of training on to its end as if nothing had been asked."""
    cfgs = _cfgs(tiny_overrides, ["trainer.epochs=1", "seed=0"], ["trainer.epochs=3", "seed=1"],
                 common=["+experiment=seed_coulomb_1"])
    real = Run.final_samples

    def final_samples(self):
        if self.cfg.seed == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self)

    monkeypatch.setattr(Run, "final_samples", final_samples)
    jobs = [(c, tmp_path / f"run{i}") for i, c in enumerate(cfgs)]
    ends = _outcomes(driver.train_group(jobs))
    assert all(isinstance(e, Interrupted) for e in ends), ends
    assert [_summary(d)["status"] for _, d in jobs] == ["interrupted", "interrupted"]
    assert _summary(jobs[1][1])["epochs_done"] < 3


@pytest.mark.slow
def test_a_job_another_launch_holds_is_waited_for_not_counted_as_failed(
        tiny_overrides, tmp_path, monkeypatch):
    """Two launches into one sweep: a job whose dir the other holds waits for it and then
    uses (or resumes) its run, as under the basic launcher, instead of returning a refusal
    that a sweeper (halving) would count as a failed setting."""
    cfgs = _cfgs(tiny_overrides, ["seed=0"], ["seed=1"],
                 common=["+experiment=seed_coulomb_1"])
    jobs = [(c, tmp_path / f"run{i}") for i, c in enumerate(cfgs)]
    other = artifacts.RunLock(jobs[0][1]).acquire()  # the other launch, training job 0
    waited = []

    def wait(self, poll=0.5):  # the other launch ends: its lock goes
        waited.append(self.root)
        other.release()

    monkeypatch.setattr(artifacts.RunLock, "wait", wait)
    ends = _outcomes(driver.train_group(jobs))
    assert waited == [jobs[0][1]]
    assert [e["status"] if isinstance(e, dict) else e for e in ends] == ["ok", "ok"]
    assert _summary(jobs[0][1])["status"] == "ok"


@pytest.mark.slow
def test_a_run_listed_twice_in_one_pack_is_trained_once_and_both_jobs_get_its_result(
        tiny_overrides, tmp_path):
    """``model.impl=fast,reference`` (the arithmetic, not the identity) or a seed listed twice
    gives two jobs one dir: the second is neither refused by the first's lock (a failed
    setting for halving) nor trained again."""
    cfgs = _cfgs(tiny_overrides, ["model.impl=fast"], ["model.impl=reference"], ["seed=1"],
                 common=["+experiment=seed_coulomb_1"])
    jobs = [(cfgs[0], tmp_path / "run0"), (cfgs[1], tmp_path / "run0"),
            (cfgs[2], tmp_path / "run1")]
    ends = _outcomes(driver.train_group(jobs))
    assert [e["status"] if isinstance(e, dict) else e for e in ends] == ["ok"] * 3
    assert ends[0]["fid_lenet"] == ends[1]["fid_lenet"]
    rows = (tmp_path / "run0" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == len((tmp_path / "run1" / "metrics.jsonl").read_text().splitlines())
