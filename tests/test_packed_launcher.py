"""``hydra/launcher=packed``: compatible jobs of a sweep trained as one fused model, each run
still a run (its dir, streams, checkpoints, summary), stopping, diverging and resuming alone."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gansweep.runs import checkpoint
from gansweep.sweep.packed import PackedLauncherBase, groups, pack_key
from tests.helpers import compose_config, sweep

# 1 epoch of 2 batches of 32, an FID at its end (tests/helpers.sweep)
TINY = ["trainer.threads=1"]
# the fused step sums per-run losses in another order than the run alone: float32 numbers
# agree to a few ulps per step, compounding over the steps of a tiny run
RTOL = 1e-4


def _jobs(sweep_dir):
    return {p.name.split("_", 1)[1]: p for p in sorted(sweep_dir.iterdir())
            if p.is_dir() and (p / "summary.json").exists()}


def _summary(job):
    return json.loads((job / "summary.json").read_text())


# ----------------------------------------------------------------------------- grouping
def test_runs_that_differ_only_in_scalars_share_a_pack():
    a = compose_config(["+experiment=seed_coulomb_1"])
    b = compose_config(["+experiment=seed_coulomb_6", "seed=2", "trainer.epochs=7",
                        "trainer.threads=1"])
    assert pack_key(a) == pack_key(b) is not None


@pytest.mark.parametrize("change", [["+experiment=seed_standard"],
                                    ["+experiment=seed_coulomb_1", "trainer.batch_size=64"],
                                    ["+experiment=seed_coulomb_1", "model.dropout=0.3"],
                                    ["+experiment=seed_coulomb_1", "trainer.precision=bf16"],
                                    ["+experiment=mixture_coulomb"]])
def test_runs_that_differ_in_what_the_fused_model_shares_do_not(change):
    assert pack_key(compose_config(["+experiment=seed_coulomb_1"])) != pack_key(
        compose_config(change))


def test_a_model_the_fused_model_does_not_implement_trains_alone():
    cfg = compose_config(["+experiment=seed_coulomb_1"])
    cfg.model._target_ = "my_gans.SpectralMLPGAN"
    assert pack_key(cfg) is None


def test_groups_keep_job_order_and_split_at_max_runs():
    keys = ["a", "b", "a", None, "a", "b"]
    assert groups(keys, None) == [[0, 2, 4], [1, 5], [3]]
    assert groups(keys, 2) == [[0, 2], [1, 5], [3], [4]]


@pytest.mark.parametrize("bad", [dict(max_runs=0), dict(max_runs=-1), dict(conv_impl="fft")])
def test_a_launcher_setting_that_cannot_work_is_one_line(bad):
    with pytest.raises(SystemExit, match="hydra.launcher"):
        PackedLauncherBase(**bad)


# ----------------------------------------------------------------------------- end to end
PACK = ["+experiment=seed_coulomb_1,seed_coulomb_4", "seed=0,1", "trainer.threads=1",
        "trainer.epochs=2", "fid.every_epochs=1"]


def _last(job):
    return checkpoint.load(job / "checkpoints" / "last.pt")


def _assert_like_alone(packed_job, alone_job):
    """The same run packed and alone: its streams bit for bit (data order, noise, Dropout
    masks: the generators end in the same states), its counters, and each weight tensor to
    0.1% in mean absolute difference over mean absolute value. The fused step sums in
    another order, and float32 rounding flips a ReLU branch or a near-zero gradient's sign
    here and there, which Adam turns into a whole step for that element (single elements
    differ by up to a few 1e-3 of the scale: tests/test_packed_math.py); a hyperparameter
    routed to the wrong run moves every element by its learning rate each step, some 10%.
    """
    a, b = _last(packed_job), _last(alone_job)
    assert a["counters"]["step"] == b["counters"]["step"] > 0
    for stream in ("torch", "noise"):
        assert torch.equal(a["rng"][stream], b["rng"][stream]), stream
    assert torch.equal(a["perm"], b["perm"])
    assert a["opt_d"]["iterations"] == b["opt_d"]["iterations"]
    for net in ("generator", "discriminator"):
        for key, value in b[net].items():
            if value.is_floating_point() and value.numel() > 1 and not key.endswith("bias"):
                scale = value.abs().mean().item()
                assert (a[net][key] - value).abs().mean().item() <= 1e-3 * scale, key
    sa, sb = _summary(packed_job), _summary(alone_job)
    assert sa["status"] == sb["status"] == "ok" and sa["epochs_done"] == sb["epochs_done"]
    assert math.isclose(sa["fid_lenet"], sb["fid_lenet"], rel_tol=1e-3)


@pytest.mark.slow
def test_a_packed_sweep_trains_each_run_as_the_basic_launcher_does(mnist_root, tmp_path):
    packed = sweep(mnist_root, tmp_path / "packed", *PACK, "hydra/launcher=packed")
    assert packed.returncode == 0, packed.stderr[-3000:]
    assert "packing 4 runs" in packed.stderr + packed.stdout
    alone = sweep(mnist_root, tmp_path / "alone", *PACK)
    assert alone.returncode == 0, alone.stderr[-3000:]
    jobs_packed, jobs_alone = _jobs(tmp_path / "packed"), _jobs(tmp_path / "alone")
    assert jobs_packed.keys() == jobs_alone.keys() and len(jobs_packed) == 4
    for name in jobs_packed:  # same dir names: same identities
        _assert_like_alone(jobs_packed[name], jobs_alone[name])
        assert (jobs_packed[name] / "samples" / "final.png").exists()
    assert (tmp_path / "packed" / "table.md").exists()
    before = {name: (job / "metrics.jsonl").read_text() for name, job in jobs_packed.items()}
    again = sweep(mnist_root, tmp_path / "packed", *PACK, "hydra/launcher=packed")
    assert again.returncode == 0, again.stderr[-3000:]
    assert {name: (job / "metrics.jsonl").read_text()  # finished: skipped, not trained again
            for name, job in _jobs(tmp_path / "packed").items()} == before


@pytest.mark.slow
def test_a_diverging_run_stops_alone_and_the_pack_carries_on(mnist_root, tmp_path):
    proc = sweep(mnist_root, tmp_path / "s", "+experiment=seed_coulomb_1", "seed=0",
                 "optimizer.g.lr=1e-3,1e30", "trainer.threads=1", "hydra/launcher=packed",
                 "trainer.epochs=2", "trainer.max_batches_per_epoch=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = {name: _summary(job)["status"] for name, job in _jobs(tmp_path / "s").items()}
    assert sorted(status.values()) == ["diverged", "ok"], status
    ok = next(job for name, job in _jobs(tmp_path / "s").items() if status[name] == "ok")
    assert _summary(ok)["epochs_done"] == 2 and math.isfinite(_summary(ok)["fid_lenet"])


@pytest.mark.slow
def test_a_pack_stopped_mid_way_resumes_to_the_numbers_of_a_pack_never_stopped(
        tiny_overrides, tmp_path, monkeypatch):
    """SIGTERM after the third fused step: every run of the pack checkpoints and stops; the
    same group again resumes each, and ends with the numbers of the pack that never stopped,
    bit for bit (the same runs in the same fused arithmetic)."""
    import os
    import signal

    from gansweep.packed import driver
    from gansweep.runs.signals import Interrupted

    cfgs = [compose_config([*tiny_overrides, *setting, "trainer.epochs=2", "trainer.threads=1",
                            "trainer.max_batches_per_epoch=3"])
            for setting in (["+experiment=seed_coulomb_1", "seed=0"],
                            ["+experiment=seed_coulomb_6", "seed=1"])]
    whole = driver.train_group([(c, tmp_path / f"whole{i}") for i, c in enumerate(cfgs)])
    assert [o()["status"] for o in whole] == ["ok", "ok"]

    real, steps = driver.PackedRuns.train_batch, []

    def stopped_after_three(self):
        out = real(self)
        steps.append(1)
        if len(steps) == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # as a user's kill: every run stops
        return out

    monkeypatch.setattr(driver.PackedRuns, "train_batch", stopped_after_three)
    jobs = [(c, tmp_path / f"stopped{i}") for i, c in enumerate(cfgs)]
    for outcome in driver.train_group(jobs):
        with pytest.raises(Interrupted):
            outcome()
    for _, out_dir in jobs:
        assert _summary(out_dir)["status"] == "interrupted"
        assert _last(out_dir)["counters"]["step"] == 3
    monkeypatch.setattr(driver.PackedRuns, "train_batch", real)
    assert [o()["status"] for o in driver.train_group(jobs)] == ["ok", "ok"]
    for i, (_, out_dir) in enumerate(jobs):
        a, b = _last(out_dir), _last(tmp_path / f"whole{i}")
        for part in ("generator", "discriminator"):
            for key, value in b[part].items():
                assert torch.equal(a[part][key], value), (part, key)
        for opt in ("opt_d", "opt_g"):
            assert a[opt]["iterations"] == b[opt]["iterations"]
            for k, state in b[opt]["state"].items():
                assert all(torch.equal(a[opt]["state"][k][m], state[m]) for m in ("m", "v"))
        assert {k: v for k, v in a["counters"].items() if k != "seconds"} == \
            {k: v for k, v in b["counters"].items() if k != "seconds"}
        assert all(torch.equal(a["rng"][s], b["rng"][s]) for s in b["rng"])
