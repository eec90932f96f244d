"""Experiment loggers beside metrics.jsonl and summary.json (which are always written).

The ``logger`` config group holds one entry per logger, each naming its class with
``_target_`` (conf/logger/*.yaml), so several compose as a list, as in
lightning-hydra-template: ``logger=[csv,tensorboard]``, ``logger=many_loggers``, ``logger=none``.
``build_logger`` builds every entry with ``hydra.utils.instantiate`` and hands the trainer one
object that fans out to all of them.

A logger of your own is one class plus one YAML: the class takes ``run_dir`` and ``config``
(the resolved run config as plain containers) besides its own settings, and has the four
methods of ``Logger`` (docs/tracking.md shows an example).

- ``tensorboard``: scalars, sample grids and final metrics under ``<run dir>/tensorboard``
  (``pip install 'gansweep[tensorboard]'``)
- ``csv``: one row per logged step in ``<run dir>/metrics.csv`` (standard library only)
- ``mlflow``: an MLflow run per job in a local SQLite store (gansweep.runs.mlflow_logger;
  ``pip install 'gansweep[tracking]'``)
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Mapping

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

# counters, not measurements: they are the step axis, never a curve of their own
COUNTERS = ("epoch", "batch", "step")


class Logger:
    """What the trainer calls; every method is optional for a subclass (no-ops here)."""

    def log_scalars(self, row: dict[str, Any], step: int) -> None:
        """One metrics row (the ``metrics.jsonl`` row) at a training step."""

    def log_grid(self, tag: str, array, step: int) -> None:
        """A sample grid as a (H, W) uint8 array ((H, W, 3) for RGB images)."""

    def log_summary(self, summary: dict[str, Any]) -> None:
        """The run's final summary.json (its ``status`` says how the run ended). It may
        come after ``close()``: the final evaluation runs once training's loggers closed."""

    def close(self) -> None:
        """Flush and release files; called once training stops, also on errors."""


def scalars(row: Mapping[str, Any], skip=COUNTERS) -> dict[str, float]:
    """The row's finite numbers (bools, strings, inf and NaN left out), by key."""
    return {key: float(value) for key, value in row.items()
            if key not in skip and isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value)}


class LoggerGroup(Logger):
    """Several loggers as one: each call goes to all of them in config order."""

    def __init__(self, loggers: list[Logger]):
        self.loggers = loggers

    def log_scalars(self, row, step):
        for logger in self.loggers:
            logger.log_scalars(row, step)

    def log_grid(self, tag, array, step):
        for logger in self.loggers:
            logger.log_grid(tag, array, step)

    def log_summary(self, summary):
        for logger in self.loggers:
            logger.log_summary(summary)

    def close(self):
        errors = []
        for logger in self.loggers:  # one failing close must not leave the others open
            try:
                logger.close()
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the rest
                errors.append(exc)
        if errors:
            raise errors[0]


class TensorBoardLogger(Logger):
    def __init__(self, run_dir: Path, config: dict | None = None, flush_secs: int = 30,
                 subdir: str = "tensorboard"):
        try:  # tensorboard is optional (gansweep[tensorboard]): imported by the logger that needs it
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch raises ImportError when tensorboard is missing
            raise ImportError(
                "logger=tensorboard needs the tensorboard package. Fix: "
                "pip install 'gansweep[tensorboard]' (or run with logger=none).") from exc
        self.writer = SummaryWriter(str(Path(run_dir) / subdir), flush_secs=flush_secs)
        self.closed = False

    def log_scalars(self, row, step):
        for key, value in scalars(row).items():
            self.writer.add_scalar(key, value, step)

    def log_grid(self, tag, array, step):
        if array.ndim == 3:  # an RGB grid (H, W, 3)
            self.writer.add_image(tag, torch.as_tensor(array), step, dataformats="HWC")
        else:
            self.writer.add_image(tag, torch.as_tensor(array)[None], step, dataformats="CHW")

    def log_summary(self, summary):
        step = int(summary.get("batches_done") or 0)
        for key, value in scalars(summary, skip=()).items():
            self.writer.add_scalar(f"final/{key}", value, step)
        if self.closed:  # the writer reopened its file for these: close it again
            self.writer.close()
        else:
            self.writer.flush()

    def close(self):
        self.writer.close()
        self.closed = True


class CsvLogger(Logger):
    """``<run dir>/metrics.csv``: one row per logged step, one column per key of the rows.

    Columns are the keys in order of first appearance; a key that appears later (not the
    case for the trainer's rows today) rewrites the file once with the wider header, so a
    column never shifts under existing rows. A resumed run first drops the rows at or after
    its first new step (they are logged again), as metrics.jsonl does."""

    def __init__(self, run_dir: Path, config: dict | None = None, filename: str = "metrics.csv"):
        self.path = Path(run_dir) / filename
        self.columns: list[str] = []
        self.file = None
        self.writer = None

    def _open(self, step: int) -> None:
        old = []
        if self.path.exists():
            with self.path.open(newline="") as f:
                old = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) < step]
        self.columns = list(dict.fromkeys(k for r in old for k in r))
        self._rewrite(old)

    def _rewrite(self, rows: list[dict]) -> None:
        if self.file:
            self.file.close()
        self.file = self.path.open("w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=self.columns)
        self.writer.writeheader()
        self.writer.writerows(rows)

    def log_scalars(self, row, step):
        if self.file is None:
            self._open(step)
        new = [key for key in row if key not in self.columns]
        if new:
            self.file.flush()
            with self.path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            self.columns += new
            self._rewrite(rows)
        self.writer.writerow(row)
        self.file.flush()  # a crash or kill loses no logged row

    def close(self):
        if self.file:
            self.file.close()
            self.file = None


def build_logger(cfg, run_dir: Path, config: dict | None = None) -> Logger:
    """One logger for the ``logger`` config group: none, one, or a group of several.

    ``cfg`` maps each logger's name to its config (``_target_`` plus its settings);
    ``config`` is the run's resolved config as plain containers (MLflow logs it as params)."""
    if cfg is None:
        return Logger()
    if not isinstance(cfg, (DictConfig, Mapping)):
        raise ValueError(f"logger: expected a mapping of logger name to its config, got {cfg!r}. "
                         "Fix: choose options of the logger group, e.g. logger=[csv,tensorboard].")
    loggers = []
    for name, node in cfg.items():
        if not isinstance(node, (DictConfig, Mapping)) or "_target_" not in node:
            shown = OmegaConf.to_container(node) if isinstance(node, DictConfig) else node
            raise ValueError(
                f"logger.{name} has no _target_ (got {shown!r}). "
                f"Fix: name the logger's class, e.g. logger.{name}._target_=mypkg.MyLogger, or "
                "select a shipped option: logger=none|csv|tensorboard|mlflow|many_loggers.")
        # _partial_: the run dir and the config reach the class as they are (not as config)
        loggers.append(instantiate(node, _partial_=True)(run_dir=Path(run_dir), config=config))
    if not loggers:
        return Logger()
    return loggers[0] if len(loggers) == 1 else LoggerGroup(loggers)
