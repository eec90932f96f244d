"""Results are attributed only to the config that produced them (job dirs, the table,
pinned run dirs), no code runs from a checkpoint file, processes do not race on shared files
(the FID reference cache, a run dir), and settings or files that cannot work fail at launch
with one clear line."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gansweep import artifacts
from gansweep.runs.checkpoint import ResumeError
from gansweep.fid import cache as fid_cache, extractors as fid_extractors
from gansweep.report import aggregate
from gansweep.schema import ConfigError
from gansweep.runs.trainer import run
from tests.helpers import CHEAP_FID, compose_config, has_plugin, seed_config, write_job
from tests.helpers import sweep as run_sweep


def _summary(job: Path) -> dict:
    return json.loads((job / "summary.json").read_text())


def _wait_for(predicate, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _train_cmd(mnist_root, run_dir, *extra):
    return [sys.executable, "-m", "gansweep.train", "+experiment=seed_coulomb_1",
            f"dataset.root={mnist_root}", "dataset.limit=512", "trainer=smoke",
            "trainer.batch_size=32", "trainer.epochs=3", "trainer.max_batches_per_epoch=6",
            f"hydra.run.dir={run_dir}", *CHEAP_FID, *extra]


# ----------------------------------------------------------------------------- 1. identity
@pytest.mark.slow
def test_a_relaunch_with_a_changed_override_gets_its_own_job_dir(mnist_root, tmp_path):
    """Relaunching a finished sweep with kernel.eps changed trains the new config in a new
    job dir; nothing of the first config is skipped over, overwritten or mislabelled. The
    name holds a '/', which must not nest job dirs out of the table's sight."""
    sweep = tmp_path / "sweep"
    first = run_sweep(mnist_root, sweep, "+experiment=seed_coulomb_1", "name=grid/a",
                      "kernel.eps=1")
    assert first.returncode == 0, first.stderr[-2000:]
    second = run_sweep(mnist_root, sweep, "+experiment=seed_coulomb_1", "name=grid/a",
                       "kernel.eps=5")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "already finished" not in second.stdout + second.stderr
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2 and all(j.name.startswith("0_grid-a_") for j in jobs)
    for job in jobs:  # each dir's files all describe one config
        eps = _summary(job)["config"]["kernel"]["eps"]
        assert f"kernel.eps={eps:g}" in (job / ".hydra/overrides.yaml").read_text()
        state = artifacts.load_checkpoint(job / "checkpoints/last.pt")
        assert state["config"]["kernel"]["eps"] == eps
    table = pd.read_csv(sweep / "table.csv")
    fids = {j.name: _summary(j)["fid_lenet"] for j in jobs}
    for _, row in table.iterrows():
        assert row["eps0"] == _summary(Path(row["path"]))["config"]["kernel"]["eps"]
        assert row["fid_lenet"] == pytest.approx(fids[row["job"]])
    assert sorted(table["eps0"]) == [1.0, 5.0]

    third = run_sweep(mnist_root, sweep, "+experiment=seed_coulomb_1", "name=grid/a",
                      "kernel.eps=5")  # the same config again: skipped
    assert third.returncode == 0 and "already finished" in third.stdout + third.stderr
    assert len([p for p in sweep.iterdir() if p.is_dir()]) == 2


@pytest.mark.slow
def test_a_pinned_dir_holding_another_configs_finished_run_is_refused(tiny_overrides, tmp_path):
    base = [*tiny_overrides, "+experiment=seed_coulomb_1"]
    run(compose_config(base), tmp_path)
    before = (tmp_path / "summary.json").read_bytes()
    with pytest.raises(ResumeError, match="different configuration.*differs in: kernel"):
        run(compose_config([*base, "kernel.eps=5"]), tmp_path)
    assert (tmp_path / "summary.json").read_bytes() == before
    # the same training with a different FID setting is evaluated again, not retrained
    again = run(compose_config([*base, "fid.num_samples=300"]), tmp_path)
    assert again["status"] == "ok" and again["fid"]["num_samples"] == 300
    assert again["batches_done"] == json.loads(before)["batches_done"]


def test_the_table_reads_settings_from_the_runs_own_record(tmp_path):
    config = seed_config("seed_coulomb_1", "coulomb", 1.0, 52.32, "Coulomb No.1")
    relaunched = {**config, "kernel": {"eps": 5.0}}  # what a later launch wrote into .hydra/
    write_job(tmp_path / "sweep", "0_seed_coulomb_1", ["kernel.eps=5"], relaunched,
              {"status": "ok", "name": "seed_coulomb_1", "gan_type": "coulomb",
               "fid_lenet": 20.0, "config": config})
    write_job(tmp_path / "sweep", "1_seed_coulomb_1", ["kernel.eps=2"],
              {**config, "kernel": {"eps": 2.0}}, None)
    frame = aggregate.collect([tmp_path / "sweep"])
    assert list(frame["eps0"]) == [1.0, 2.0]
    assert list(frame["param:kernel.eps"]) == ["1", "2"]


# ----------------------------------------------------------------------------- 2. pickle
class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # unpickling this creates the marker file
        return (open, (str(self.marker), "w"))


def test_a_crafted_checkpoint_is_refused_and_nothing_in_it_runs(tiny_overrides, tmp_path):
    run_dir, marker = tmp_path / "run", tmp_path / "pwned"
    torch.save({"generator": {}, "payload": _Payload(marker)}, tmp_path / "evil.pt")
    (run_dir / "checkpoints").mkdir(parents=True)
    (tmp_path / "evil.pt").rename(run_dir / "checkpoints/last.pt")
    with pytest.raises(artifacts.CheckpointError, match="refused to unpickle.*Fix:"):
        run(compose_config(tiny_overrides), run_dir)
    assert not marker.exists()


@pytest.mark.slow
def test_checkpoints_hold_only_tensors_and_plain_containers(tiny_overrides, tmp_path):
    run(compose_config([*tiny_overrides, "+experiment=seed_coulomb_1"]), tmp_path)
    state = torch.load(tmp_path / "checkpoints/last.pt", weights_only=True)  # no allowlist
    assert state["config"]["gan_type"]["name"] == "coulomb"
    assert type(state["config"]["gan_type"]["name"]) is str


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_truncated_or_empty_checkpoint_gives_one_clear_line(tiny_overrides, tmp_path, damage):
    cfg = compose_config([*tiny_overrides, "+experiment=seed_coulomb_1", "trainer.epochs=2"])
    path = tmp_path / "checkpoints/last.pt"
    artifacts.save_checkpoint({"w": torch.ones(10000)}, path)
    data = path.read_bytes()
    path.write_bytes(b"" if damage == "empty" else data[:len(data) // 2])
    with pytest.raises(artifacts.CheckpointError, match=f"{damage}.*Fix: delete") as info:
        run(cfg, tmp_path)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- 3. FID cache
_CHILD = """
import json, sys, time
from pathlib import Path
from gansweep.fid import cache as fid_cache, extractors as fid_extractors
cache, data, go, log = map(Path, sys.argv[1:5])
original = fid_cache._compute_reference
def counted(*args, **kwargs):
    with open(log, "a") as f:
        f.write("computed\\n")
    time.sleep(1.0)  # keep the window open so that every process meets a cold cache
    return original(*args, **kwargs)
fid_cache._compute_reference = counted
ext = fid_extractors.load_extractor("lenet", "cpu", cache)
while not go.exists():
    time.sleep(0.01)
mu, sigma, meta = fid_cache.reference_stats(ext, data, 500, cache, progress=False)
print(json.dumps([float(mu.sum()), float(sigma.sum())]))
"""


@pytest.mark.slow
def test_processes_on_a_cold_reference_cache_compute_it_once(mnist_root, tmp_path):
    cache, go, log = tmp_path / "cache", tmp_path / "go", tmp_path / "computed.log"
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(cache), str(mnist_root),
                               str(go), str(log)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    time.sleep(1.0)
    go.touch()
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-1500:] for _, e in outputs]
    assert len({out for out, _ in outputs}) == 1  # identical statistics everywhere
    assert log.read_text().count("computed") == 1
    assert not list((cache / "stats").glob("*.partial*"))


def test_a_corrupt_cached_reference_is_named_and_recomputed(mnist_root, tmp_path, caplog):
    ext = fid_extractors.load_extractor("lenet", "cpu", tmp_path)
    good = fid_cache.reference_stats(ext, mnist_root, 300, tmp_path, progress=False)
    path = next((tmp_path / "stats").glob("ref_*.npz"))
    path.write_bytes(path.read_bytes()[:200])  # torn
    with caplog.at_level("WARNING", logger="gansweep.fid"):
        again = fid_cache.reference_stats(ext, mnist_root, 300, tmp_path, progress=False)
    assert str(path) in caplog.text and "corrupt" in caplog.text
    np.testing.assert_array_equal(again[0], good[0])
    np.testing.assert_array_equal(again[1], good[1])


# ----------------------------------------------------------------------------- 4. launch
def test_missing_inception_weights_fail_before_training(tiny_overrides, tmp_path, monkeypatch):
    from gansweep.fid.inception import WeightsError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no hub copy of the weights
    cfg = compose_config([*tiny_overrides, "fid=inception", f"fid.cache_dir={tmp_path / 'c'}",
                          "fid.fetch=false", "fid.num_samples=2100", "fid.ref_limit=2100"])
    with pytest.raises(WeightsError, match="missing. Fix: run `gansweep-fid fetch-weights"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run/metrics.jsonl").exists()


@pytest.mark.slow
@pytest.mark.skipif(not has_plugin("hydra_optuna_sweeper"), reason="pip install 'gansweep[scale]'")
def test_an_optuna_search_without_fid_is_refused_at_launch(mnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_sweep(mnist_root, sweep, "hparams_search=coulomb_optuna", "fid=none",
                     "hydra.sweeper.n_trials=1")
    assert proc.returncode == 1
    assert "fid=none" in proc.stderr and "Traceback" not in proc.stderr
    assert not [p for p in sweep.iterdir() if p.is_dir()]


@pytest.mark.slow
def test_a_second_process_on_the_same_run_dir_refuses_naming_the_holder(mnist_root, tmp_path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(_train_cmd(mnist_root, run_dir), cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _lines(run_dir / "metrics.jsonl") >= 1)
        cfg = compose_config([f"dataset.root={mnist_root}", "dataset.limit=512",
                              "+experiment=seed_coulomb_1", "trainer=smoke",
                              "trainer.batch_size=32", *CHEAP_FID])
        with pytest.raises(artifacts.RunLocked,
                           match=f"pid {holder.pid} on host {socket.gethostname()}"):
            run(cfg, run_dir)
        assert _summary(run_dir)["pid"] == holder.pid
    finally:
        holder.terminate()
        holder.wait(timeout=120)


@pytest.mark.slow
def test_sigterm_during_the_final_fid_is_resumable_without_retraining(mnist_root, tmp_path):
    run_dir = tmp_path / "run"
    # a cold cache of all 60000 reference images: the FID takes long enough to be hit
    cmd = _train_cmd(mnist_root, run_dir, "trainer.epochs=1", "fid.ref_limit=null",
                     f"fid.cache_dir={tmp_path / 'cache'}")
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    log = run_dir / "train.log"
    _wait_for(lambda: log.exists() and "reference statistics" in log.read_text())
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, output[-2000:]
    assert "Traceback" not in output
    summary = _summary(run_dir)
    assert summary["status"] == "interrupted" and "final evaluation" in summary["error"]
    rows = _lines(run_dir / "metrics.jsonl")

    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    summary = _summary(run_dir)
    assert summary["status"] == "ok" and summary["fid_lenet"] > 0
    assert summary["batches_done"] == 6 and _lines(run_dir / "metrics.jsonl") == rows
    assert "resumed from" in log.read_text()


@pytest.mark.slow
def test_ctrl_c_on_a_multirun_prints_one_line_and_leaves_a_table(mnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "gansweep.train", "-m", "+experiment=seed_coulomb_1",
           "kernel.eps=1,5", "trainer=smoke", "trainer.batch_size=32", "trainer.epochs=3",
           "trainer.max_batches_per_epoch=6", f"dataset.root={mnist_root}", "dataset.limit=512",
           f"hydra.sweep.dir={sweep}", *CHEAP_FID]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    _wait_for(lambda: any(_lines(j / "metrics.jsonl") >= 1 for j in sweep.glob("1_*")))
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT
    assert "Traceback" not in output
    assert output.count("run the same command again to resume") == 1
    table = pd.read_csv(sweep / "table.csv")
    assert list(table["status"]) == ["ok", "interrupted"]


@pytest.mark.slow
def test_an_unwritable_run_dir_is_one_line_at_launch(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gansweep.train", "hydra.run.dir=/proc/gansweep"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: hydra.run.dir=/proc/gansweep is not writable. Fix: choose a writable folder, "
        "e.g. hydra.run.dir=outputs/..."]


# ----------------------------------------------------------------------------- 5. Optuna
@pytest.mark.slow
@pytest.mark.skipif(not has_plugin("hydra_optuna_sweeper"), reason="pip install 'gansweep[scale]'")
def test_an_optuna_study_resumes_from_its_sqlite_file(mnist_root, tmp_path):
    import optuna

    sweep = tmp_path / "sweep"
    # TPE after 2 random trials: the relaunch samples from the study's history, not again
    # from the seeded random start (whose repeats would be skipped as the same configs)
    args = ("hparams_search=coulomb_optuna", "hydra.sweeper.n_trials=3",
            "hydra.sweeper.sampler.n_startup_trials=2")
    first = run_sweep(mnist_root, sweep, *args)
    assert first.returncode == 0, first.stderr[-2000:]
    storage = f"sqlite:///{sweep}/optuna_1ep.db"  # trainer=smoke: 1 epoch
    stale = optuna.load_study(study_name="coulomb_search", storage=storage).ask()  # a killed trial
    second = run_sweep(mnist_root, sweep, *args)
    assert second.returncode == 0, second.stderr[-2000:]
    trials = optuna.load_study(study_name="coulomb_search", storage=storage).get_trials()
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == 6 and trials[stale.number].state.name == "FAIL"
    # job numbers restart at 0 on each launch; every trial still has its own job dir
    jobs = [p for p in sweep.iterdir() if p.is_dir()]
    assert len(jobs) == 6
    recorded = sorted(_summary(j)["config"]["kernel"]["eps"] for j in jobs)
    assert recorded == pytest.approx(sorted(t.params["kernel.eps"] for t in trials
                                            if t.state.name == "COMPLETE"))


# ----------------------------------------------------------------------------- 6. small
def test_seed_fid_and_rank_only_beside_the_seed_presets_settings(tmp_path):
    sweep = tmp_path / "sweep"
    ok = {"status": "ok", "gan_type": "coulomb", "epochs_done": 100, "batches_done": 46800}
    settings = {"d_lr": 1e-3, "d_decay": 1e-3, "g_lr": 1e-4, "g_decay": 1e-3, "eps0": 1.0}
    for num, eps in enumerate((1.0, 5.0, 10.0)):
        config = seed_config("seed_coulomb_1", "coulomb", eps, 52.32, "Coulomb No.1")
        config["reference"]["settings"] = settings
        write_job(sweep, f"{num}_seed_coulomb_1", [f"kernel.eps={eps}"], config,
                  {**ok, "name": "seed_coulomb_1", "fid_lenet": 20.0 + num, "config": config})
    frame = aggregate.aggregate([sweep], echo=False)
    assert frame.loc[0, "seed_fid_inception"] == 52.32 and frame.loc[0, "vs_seed"] == "seed settings"
    assert frame.loc[1:, "seed_fid_inception"].isna().all()
    # our rank is the generic table's, over every ok run; the study's rank only where the
    # row has its preset's settings
    assert frame["rank"].tolist() == [1, 2, 3]
    assert "seed_rank" not in frame or frame.loc[1:, "seed_rank"].isna().all()
    assert frame.loc[1, "vs_seed"] == "not comparable: eps0=5 (seed 1)"
    md = (sweep / "table.md").read_text()
    assert "Seed ranking reproduced" not in md and "differ from their seed preset" in md


def test_table_md_escapes_html_in_free_text(synthetic_sweep):
    summary = synthetic_sweep / "2_seed_coulomb_2/summary.json"
    data = json.loads(summary.read_text())
    data["error"] = "ValueError: <img src=x onerror=alert(1)>"
    summary.write_text(json.dumps(data))
    aggregate.aggregate([synthetic_sweep], echo=False)
    md = (synthetic_sweep / "table.md").read_text()
    assert "<img src=x" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md


def test_table_out_into_a_new_directory(synthetic_sweep, tmp_path):
    out = tmp_path / "new" / "tables"
    assert aggregate.main([str(synthetic_sweep), "--out", str(out)]) == 0
    assert (out / "table.md").exists() and (out / "table.html").exists()


@pytest.mark.parametrize("override, text", [
    ("fid.num_samples=128", "fid.num_samples=128 is not allowed: must be > 128"),
    ("fid.ref_limit=128", "fid.ref_limit=128 is not allowed: must be > 128"),
    ("seed=-1", "seed=-1 is not allowed"),
    (f"seed={2**32}", f"seed={2**32} is not allowed"),
])
def test_values_that_cannot_work_are_refused_before_training(tiny_overrides, tmp_path,
                                                             override, text):
    with pytest.raises(ConfigError, match=text.replace(".", r"\.")):
        run(compose_config([*tiny_overrides, override]), tmp_path / "run")
    assert not (tmp_path / "run/metrics.jsonl").exists()


def test_an_unwritable_dataset_root_names_the_setting(tiny_overrides, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cfg = compose_config([*tiny_overrides, f"dataset.root={blocker / 'mnist'}"])
    with pytest.raises(Exception, match=r"not writable.*Fix: point dataset\.root") as info:
        run(cfg, tmp_path / "run")
    assert "npm" not in str(info.value)
