"""``logger=mlflow``: one MLflow run per job in a local SQLite tracking store.

By default the store is ``outputs/mlflow.db`` with artifacts in ``outputs/mlartifacts``
(both beside the run and sweep dirs, relative to where gansweep-train was launched), so
``mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db`` shows every run. A multirun's
jobs share one experiment named after the sweep dir (also the tag ``gansweep.sweep_dir``);
single runs go to the experiment ``gansweep``. Each run gets the resolved config as params
(flattened, ``model.bn_axis``), the metrics rows per step, sample grids as images, the
final summary as metrics plus ``summary.json``, and ends FINISHED, FAILED or KILLED as the
job did. A resumed job continues its MLflow run (its id is kept in ``<run dir>/mlflow.json``).

Needs ``pip install 'gansweep[tracking]'``. Uses MlflowClient with an explicit run id, not
mlflow's global active run, so jobs of one process never write into each other's runs.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from filelock import FileLock
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import to_absolute_path

from gansweep.runs.loggers import Logger, scalars

log = logging.getLogger(__name__)

# summary.json status -> MLflow run status
STATUS = {"ok": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "interrupted": "KILLED"}
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
# summary.json entries that are the config again (logged as params) rather than results
NOT_SUMMARY = ("config", "fingerprint", "identity")


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts as ``a.b.c`` keys; leaves as strings (JSON for non-strings)."""
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    text = tree if isinstance(tree, str) else json.dumps(tree, default=str)
    return {prefix[:-1]: text[:MAX_PARAM_LENGTH]}


def absolute_uri(uri: str) -> tuple[str, Path | None]:
    """A ``sqlite:///relative/path`` URI made absolute against the launch dir (Hydra's
    original cwd), its folder created; other URIs unchanged. Returns (uri, database path)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri, None
    path = Path(to_absolute_path(uri[len(prefix):]))
    path.parent.mkdir(parents=True, exist_ok=True)
    return prefix + str(path), path


def sweep_dir() -> str | None:
    """The multirun's sweep dir when this job is part of one (None for a single run)."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return str(HydraConfig.get().sweep.dir)


class MlflowLogger(Logger):
    def __init__(self, run_dir: Path, config: dict | None = None,
                 tracking_uri: str = "sqlite:///outputs/mlflow.db",
                 artifact_location: str = "outputs/mlartifacts",
                 experiment: str | None = None, run_name: str | None = None,
                 flush_secs: float = 30):
        try:  # mlflow is optional (gansweep[tracking]): it loads with this logger only
            from mlflow import MlflowClient
        except ImportError as exc:
            raise ImportError(
                "logger=mlflow needs the mlflow package. Fix: pip install 'gansweep[tracking]' "
                "(or run without logger=mlflow).") from exc
        self.run_dir = Path(run_dir)
        self.flush_secs = flush_secs
        self.tracking_uri, db = absolute_uri(tracking_uri)
        sweep = sweep_dir()
        name = experiment or sweep or "gansweep"
        if "://" not in artifact_location:
            artifact_location = Path(to_absolute_path(artifact_location)).as_uri()
        # parallel jobs (joblib, submitit) may create the database and the experiment at once
        lock = FileLock(f"{db}.lock") if db else contextlib.nullcontext()
        with lock:
            self.client = MlflowClient(tracking_uri=self.tracking_uri)
            found = self.client.get_experiment_by_name(name)
            experiment_id = (found.experiment_id if found else self.client.create_experiment(
                name, artifact_location=f"{artifact_location}/{_safe(name)}"))
        resume = str(((config or {}).get("trainer") or {}).get("resume", "auto")) != "never"
        self.run_id = (self._previous_run(experiment_id) if resume else None)
        if self.run_id is None:
            tags = {"gansweep.run_dir": str(self.run_dir.resolve())}
            if sweep:
                tags["gansweep.sweep_dir"] = str(Path(sweep).resolve())
            run = self.client.create_run(experiment_id, run_name=run_name or self.run_dir.name,
                                         tags=tags)
            self.run_id = run.info.run_id
            (self.run_dir / "mlflow.json").write_text(json.dumps(
                {"tracking_uri": self.tracking_uri, "run_id": self.run_id}, indent=1))
        self._log_params(flatten(config or {}))
        self.pending: list = []
        self.operations: list = []  # metric batches handed to MLflow's async writer
        self.last_flush = time.monotonic()
        self.terminated = False
        atexit.register(self._at_exit)
        log.info("mlflow run %s in experiment %r of %s", self.run_id, name, self.tracking_uri)

    def _previous_run(self, experiment_id: str) -> str | None:
        """The run this run dir logged to before (a resumed job), reopened; else None."""
        try:
            saved = json.loads((self.run_dir / "mlflow.json").read_text())
        except (OSError, ValueError):
            return None
        if saved.get("tracking_uri") != self.tracking_uri:
            return None
        from mlflow.exceptions import MlflowException  # optional package: see __init__

        try:
            run = self.client.get_run(saved["run_id"])
        except (MlflowException, KeyError):
            return None
        if run.info.lifecycle_stage != "active" or run.info.experiment_id != experiment_id:
            return None
        self.client.update_run(run.info.run_id, status="RUNNING")
        return run.info.run_id

    def _log_params(self, params: dict[str, str]) -> None:
        """MLflow refuses to change a param: a resumed run keeps its first values (a longer
        trainer.epochs, say) and says which differ."""
        from mlflow.entities import Param  # optional package: see __init__

        old = self.client.get_run(self.run_id).data.params
        changed = sorted(k for k, v in params.items() if k in old and old[k] != v)
        if changed:
            log.warning("mlflow run %s keeps its first values of %s", self.run_id,
                        ", ".join(changed))
        new = [Param(k, v) for k, v in params.items() if k not in old]
        if new:
            self.client.log_batch(self.run_id, params=new)

    def log_scalars(self, row, step):
        from mlflow.entities import Metric  # optional package: see __init__

        now = int(time.time() * 1000)
        self.pending += [Metric(k, v, now, step) for k, v in scalars(row).items()]
        # SQLite commits cost milliseconds: batch them (MLflow takes 1000 metrics per call)
        if len(self.pending) >= 1000 or time.monotonic() - self.last_flush >= self.flush_secs:
            self.flush()

    def flush(self, wait: bool = False) -> None:
        """Hands the buffered metrics to MLflow's background writer (a SQLite commit of a
        few thousand metrics takes seconds: not on the training thread); ``wait``: until
        everything handed over is in the store."""
        if self.pending:
            self.operations.append(
                self.client.log_batch(self.run_id, metrics=self.pending, synchronous=False))
            self.pending = []
        self.last_flush = time.monotonic()
        if wait:
            for operation in self.operations:
                operation.wait()
            self.operations = []

    def log_grid(self, tag, array, step):
        # key + step: the UI's image view with a step slider; files under images/
        self.client.log_image(self.run_id, array, key=tag, step=step)

    def log_summary(self, summary):
        from mlflow.entities import Metric, RunTag  # optional package: see __init__

        self.flush(wait=True)
        step = int(summary.get("batches_done") or 0)
        now = int(time.time() * 1000)
        results = {k: v for k, v in summary.items() if k not in NOT_SUMMARY}
        status = str(summary.get("status"))
        self.client.log_batch(
            self.run_id, metrics=[Metric(k, v, now, step) for k, v in scalars(results).items()],
            tags=[RunTag("gansweep.status", status)])
        self.client.log_dict(self.run_id, summary, "summary.json")
        if status in STATUS:
            self._terminate(STATUS[status])

    def _terminate(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)
        self.terminated = True
        atexit.unregister(self._at_exit)

    def close(self):
        """Flushes. The run stays open for the final summary unless training stopped on an
        exception that no summary reported (then FAILED, KILLED for Ctrl-C)."""
        self.flush(wait=True)
        exc = sys.exc_info()[1]
        if exc is not None and not self.terminated:
            self._terminate("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")

    def _at_exit(self) -> None:
        """A process that ends before the run's final summary (an error in the final
        evaluation, say) leaves no run RUNNING forever."""
        if not self.terminated:
            with contextlib.suppress(Exception):
                self.flush(wait=True)
                self._terminate("FAILED")


def _safe(name: str) -> str:
    """An experiment name as one folder name under the artifact location."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("_") or "default"
