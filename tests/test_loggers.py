"""The logger group: entries built from ``_target_`` with hydra.utils.instantiate, composed
as a list (``logger=[csv,tensorboard]``), a user's own logger class, the CSV file, and MLflow
runs read back through MLflow's own API (MlflowClient)."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import compose_config, sweep
from gansweep.runs.loggers import CsvLogger, Logger, LoggerGroup, build_logger


def need_mlflow():
    """mlflow, or a skip saying how to install it; CI (CI=true) must run these tests."""
    try:
        import mlflow
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the MLflow tests: pip install -e '.[tracking]'")
        pytest.skip("needs mlflow: pip install -e '.[tracking]'")
    return mlflow


class Recorder(Logger):
    """A user's own logger: one class (outside the package) plus its config entry."""

    last = None

    def __init__(self, run_dir, config, prefix="mine"):
        self.run_dir, self.config, self.prefix = run_dir, config, prefix
        self.rows, self.grids, self.summaries, self.closed = [], [], [], 0
        Recorder.last = self

    def log_scalars(self, row, step):
        self.rows.append((step, dict(row)))

    def log_grid(self, tag, array, step):
        self.grids.append((tag, np.asarray(array).shape, step))

    def log_summary(self, summary):
        self.summaries.append(summary)

    def close(self):
        self.closed += 1


def json_row(row: dict) -> dict:
    """A row as metrics.jsonl stores it (NaN, e.g. eps of a standard GAN, as null)."""
    return {k: None if isinstance(v, float) and v != v else v for k, v in row.items()}


def test_logger_options_build_their_classes(tmp_path):
    pytest.importorskip("tensorboard")
    assert type(build_logger(compose_config().logger, tmp_path)) is Logger  # logger=none
    one = build_logger(compose_config(["logger=tensorboard"]).logger, tmp_path)
    assert type(one).__name__ == "TensorBoardLogger"  # today's option keeps working
    one.close()
    both = build_logger(compose_config(["logger=[csv,tensorboard]"]).logger, tmp_path)
    assert isinstance(both, LoggerGroup)
    assert [type(x).__name__ for x in both.loggers] == ["CsvLogger", "TensorBoardLogger"]
    both.close()
    names = set(compose_config(["logger=many_loggers"]).logger)
    assert names == {"csv", "tensorboard", "mlflow"}


def test_logger_config_errors_name_the_key(tmp_path):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="logger.tensorboard.flush_sec"):
        compose_config(["logger=tensorboard", "logger.tensorboard.flush_sec=3"])  # a typo
    with pytest.raises(ConfigCompositionException, match="logger.tensorboard.flush_secs=soon"):
        compose_config(["logger=tensorboard", "logger.tensorboard.flush_secs=soon"])  # a type
    cfg = compose_config(["+logger.mine.prefix=x"])
    with pytest.raises(ValueError, match=r"logger\.mine has no _target_.*Fix"):
        build_logger(cfg.logger, tmp_path)


@pytest.mark.slow
def test_a_users_own_logger_sees_the_run(tiny_overrides, tmp_path):
    from gansweep.runs.trainer import run

    target = f"{Recorder.__module__}.Recorder"
    run(compose_config([*tiny_overrides, f"+logger.mine._target_={target}",
                        "+logger.mine.prefix=custom"]), tmp_path)
    mine = Recorder.last
    assert mine.prefix == "custom" and Path(mine.run_dir) == tmp_path
    assert mine.config["trainer"]["name"] == "smoke"  # the resolved config, plain containers
    jsonl = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [json_row(row) for _, row in mine.rows] == [row for row in jsonl if "d_loss" in row]
    assert mine.grids and all(tag == "samples" and len(shape) == 2 for tag, shape, _ in mine.grids)
    (summary,) = mine.summaries  # only the final one, not the "running" updates
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "ok" and mine.closed == 1


def test_a_users_own_logger_yaml_composes_with_the_shipped_ones(tmp_path):
    """docs/tracking.md: one YAML in a config dir of the user's, selected in a list."""
    (tmp_path / "my_conf" / "logger").mkdir(parents=True)
    (tmp_path / "my_conf" / "logger" / "mine.yaml").write_text(
        f"mine:\n  _target_: {Recorder.__module__}.Recorder\n  prefix: from-yaml\n")
    cfg = compose_config([f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]",
                          "logger=[csv,mine]"])
    group = build_logger(cfg.logger, tmp_path / "run", config={"seed": 0})
    assert [type(x).__name__ for x in group.loggers] == ["CsvLogger", "Recorder"]
    assert group.loggers[1].prefix == "from-yaml" and group.loggers[1].config == {"seed": 0}


@pytest.mark.slow
def test_csv_logger_writes_the_metrics_rows(tiny_overrides, tmp_path):
    from gansweep.runs.trainer import run

    run(compose_config([*tiny_overrides, "logger=csv"]), tmp_path)
    with (tmp_path / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    jsonl = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [row for row in jsonl if "d_loss" in row]
    assert len(rows) == len(losses) >= 2
    assert list(rows[0]) == list(losses[0])  # columns: the row's keys, in order
    for got, want in zip(rows, losses):
        assert json_row({k: float(v) for k, v in got.items()}) == want  # full precision


def test_csv_logger_resume_and_new_columns(tmp_path):
    log = CsvLogger(tmp_path)
    for step in range(4):
        log.log_scalars({"step": step, "loss": step / 2}, step)
    log.close()
    again = CsvLogger(tmp_path)  # a resumed run logs steps 2 and 3 again: no duplicates
    again.log_scalars({"step": 2, "loss": 9.0}, 2)
    again.log_scalars({"step": 3, "loss": 9.5, "fid": 4.0}, 3)  # a new key widens the header
    again.close()
    with (tmp_path / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["loss"], r["fid"]) for r in rows] == [
        ("0", "0.0", ""), ("1", "0.5", ""), ("2", "9.0", ""), ("3", "9.5", "4.0")]


# ---------------------------------------------------------------------------- MLflow
def mlflow_logger(run_dir: Path, db: Path, **extra):
    from gansweep.runs.mlflow_logger import MlflowLogger

    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"model": {"name": "dcgan", "bn_axis": "keras"}, "optimizer": {"d": {"lr": 2e-4}},
              "trainer": {"resume": "auto"}, "seed": 3}
    return MlflowLogger(run_dir, config, tracking_uri=f"sqlite:///{db}",
                        artifact_location=str(db.parent / "art"), **extra)


@pytest.mark.slow
def test_mlflow_logger_reads_back_through_mlflow(tmp_path):
    need_mlflow()
    from mlflow import MlflowClient

    db = tmp_path / "store" / "mlflow.db"
    log = mlflow_logger(tmp_path / "job", db, flush_secs=3600)
    for step in range(3):
        log.log_scalars({"epoch": 0, "batch": step, "step": step, "d_loss": 1.0 + step,
                         "g_loss": float("nan"), "eps": 0.5}, step)
    log.log_grid("samples", np.full((56, 28), 200, np.uint8), 2)
    log.close()  # training over; the final evaluation follows, the run stays open
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    assert client.get_run(log.run_id).info.status == "RUNNING"
    log.log_summary({"status": "ok", "batches_done": 3, "fid": 12.5, "objective": 12.5,
                     "config": {"seed": 3}, "device": "cpu"})
    run = client.get_run(log.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "job"
    assert run.data.params["model.bn_axis"] == "keras"
    assert float(run.data.params["optimizer.d.lr"]) == 2e-4 and run.data.params["seed"] == "3"
    history = client.get_metric_history(log.run_id, "d_loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 1.0), (1, 2.0), (2, 3.0)]
    assert "g_loss" not in run.data.metrics and "step" not in run.data.metrics  # NaN, counter
    assert run.data.metrics["fid"] == 12.5 and run.data.tags["gansweep.status"] == "ok"
    names = {a.path for a in client.list_artifacts(log.run_id)}
    assert "summary.json" in names
    images = [a.path for a in client.list_artifacts(log.run_id, "images")]
    assert any(p.endswith(".png") and "samples" in p for p in images)
    # a resumed job continues its run: same id, back to RUNNING, then finished again
    again = mlflow_logger(tmp_path / "job", db)
    assert again.run_id == log.run_id
    assert client.get_run(log.run_id).info.status == "RUNNING"
    again.log_summary({"status": "ok", "batches_done": 3})
    assert client.get_run(log.run_id).info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "gansweep"
    assert (db.parent / "art").is_dir()  # artifacts beside the store, not ./mlruns


@pytest.mark.parametrize("how, status", [("diverged", "FAILED"), ("interrupted", "KILLED"),
                                         ("exception", "FAILED")])
def test_mlflow_run_status_follows_the_job(tmp_path, how, status):
    need_mlflow()
    from mlflow import MlflowClient

    db = tmp_path / "mlflow.db"
    log = mlflow_logger(tmp_path / how, db)
    if how == "exception":  # an error no summary reported: close() runs in the finally
        with pytest.raises(RuntimeError):
            try:
                raise RuntimeError("boom")
            finally:
                log.close()
    else:
        log.log_summary({"status": how, "batches_done": 1})
        log.close()
    assert MlflowClient(tracking_uri=f"sqlite:///{db}").get_run(log.run_id).info.status == status


@pytest.mark.slow
def test_mlflow_two_job_sweep_is_one_experiment(mnist_root, tmp_path):
    need_mlflow()
    from mlflow import MlflowClient

    env_uri = os.environ.pop("MLFLOW_TRACKING_URI", None)  # the default store is the subject
    try:
        proc = sweep(mnist_root, tmp_path / "sweep", "logger=[csv,mlflow]", "seed=0,1")
    finally:
        if env_uri is not None:
            os.environ["MLFLOW_TRACKING_URI"] = env_uri
    assert proc.returncode == 0, proc.stderr[-3000:]
    db = tmp_path / "outputs" / "mlflow.db"  # the default: outputs/ of the launch dir
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name(str(tmp_path / "sweep"))
    runs = client.search_runs([experiment.experiment_id])
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if (p / "summary.json").exists())
    assert sorted(r.info.run_name for r in runs) == [p.name for p in jobs] and len(jobs) == 2
    for r in runs:
        assert r.info.status == "FINISHED"
        assert r.data.tags["gansweep.sweep_dir"] == str((tmp_path / "sweep").resolve())
        assert {"d_loss", "g_loss", "fid_lenet"} <= set(r.data.metrics)
        assert r.data.params["trainer.name"] == "smoke"
        assert client.list_artifacts(r.info.run_id, "images")
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]
    assert all((p / "metrics.csv").exists() for p in jobs)


# ---------------------------------------------------------------------------- extras
EXTRAS = ("scale", "tracking", "tensorboard", "browser-test")


def pinned_exactly(dist: dict, installs: list[dict]) -> bool:
    """Whether another resolved package requires exactly this pre-release (``==0.66b2``):
    opentelemetry-semantic-conventions, under mlflow, ships betas only and its SDK pins one.
    Such a pin is a choice of that package; what this test catches is a loose bound that
    lets pip drift onto pre-releases (hydra-core 1.4.0.dev via hydra-optuna-sweeper)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    name, version = canonicalize_name(dist["name"]), dist["version"]
    for other in installs:
        for text in other["metadata"].get("requires_dist", []):
            req = Requirement(text)
            if canonicalize_name(req.name) == name and any(
                    spec.operator in ("==", "===") and spec.version == version
                    for spec in req.specifier):
                return True
    return False


@pytest.mark.slow
def test_extras_resolve_without_prereleases_and_pip_check_passes(tmp_path):
    """Each extra as a fresh environment would get it (``--ignore-installed``: nothing
    installed counts), resolved against the package index; then ``pip check`` here."""
    import subprocess

    from packaging.version import Version

    repo = Path(__file__).resolve().parents[1]
    procs = {}
    for extra in EXTRAS:  # network-bound: the four resolves run at once
        report = tmp_path / f"{extra}.json"
        procs[extra] = (report, subprocess.Popen(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
             "--report", str(report), f"{repo}[{extra}]"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for extra, (report, proc) in procs.items():
        out, _ = proc.communicate(timeout=900)
        if proc.returncode != 0 and "NewConnectionError" in out and os.environ.get("CI") != "true":
            pytest.skip(f"no package index reachable: {out.strip().splitlines()[-1]}")
        assert proc.returncode == 0, f"[{extra}] does not resolve:\n{out[-3000:]}"
        assert "does not provide the extra" not in out, out
        installs = json.loads(report.read_text())["install"]
        pre = [f"{i['metadata']['name']} {i['metadata']['version']}" for i in installs
               if Version(i["metadata"]["version"]).is_prerelease
               and not pinned_exactly(i["metadata"], installs)]
        assert not pre, f"[{extra}] resolves to pre-releases: {pre}"
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
