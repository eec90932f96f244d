"""A job of ``gansweep-train`` (one run, or one job of a sweep under any launcher), from
Hydra's view of it to its return value:

- ``prepare_job``: every value checked before torch or a device sees one, its device, its
  thread count, plain progress lines in a multirun;
- ``train_job``: its run (``gansweep.runs.trainer.run``), in a sweep stopped when its launcher
  dies and waiting for a busy dir's holder (``run_when_free``);
- ``job_outcome``: its return value, a failure recorded in its dir (summary.json "failed",
  error.txt), a refusal writing nothing there, a stop signal ending the sweep, resumable.

A job dir name taken by a regular file is refused in one line (``guard_job_dirs``, around
Hydra's ``run_job``). The launchers (Hydra's, ``gansweep.sweep.packed``) and the entry point
(``gansweep.train``) call these.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import os
import sys
import traceback
from pathlib import Path

import hydra.core.utils as hydra_utils
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from omegaconf import DictConfig

from gansweep import artifacts, schema
from gansweep.device import job_device, warn_if_gpu_hidden
from gansweep.runs.checkpoint import ResumeError
from gansweep.runs.signals import Interrupted, launcher_watch, orphaned
from gansweep.runs.trainer import run

log = logging.getLogger("gansweep.train")

# torch's thread count as this process started, before any job changed it: a job that sets no
# count gets this one back, so a job's numbers never depend on an earlier job in the process
PROCESS_THREADS = torch.get_num_threads()


def record_failure(out_dir: Path, cfg: DictConfig, exc: BaseException) -> str:
    """summary.json with status failed and the error's first line; error.txt the traceback.
    summary.json first: on a full disk it is the record that matters (a stale ``running``
    one would outlive the run), and ``artifacts.write_record`` makes room for it."""
    first_line = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    try:
        artifacts.write_record({"status": "failed", "name": cfg.get("name"),
                                "gan_type": str(cfg.gan_type.name), "error": first_line,
                                "objective": math.inf}, out_dir / "summary.json")
    except OSError as written:  # an unwritable output dir: the log and the exit status say it
        log.warning("no failed record in %s: %s", out_dir, written)
    try:
        (out_dir / "error.txt").write_text("".join(traceback.format_exception(exc)))
    except OSError:
        pass  # the record above, the log and the exit status still say it
    return first_line


def _finished_run(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a finished run's summary.json (status ok)."""
    try:
        return json.loads((out_dir / "summary.json").read_text()).get("status") == "ok"
    except (OSError, ValueError, AttributeError):
        return False


def _record_refusal(out_dir: Path, cfg: DictConfig, exc: Exception) -> None:
    """The failed record of a job the value checks refused, written under the dir's lock.
    A placement key (trainer.threads) or a key nothing reads does not change the dir's name,
    so the dir may hold a finished run of the same configuration, which stays as it was, or
    a run another process is training, whose dir it is."""
    try:
        with artifacts.RunLock(out_dir):
            if _finished_run(out_dir):
                log.error("job refused: %s (the finished run in %s is kept)", exc, out_dir)
                return
            message = record_failure(out_dir, cfg, exc)
    except artifacts.RunLocked as busy:
        log.error("job refused: %s (nothing written: %s)", exc, busy)
        return
    except OSError:  # no lock in an unwritable dir: record_failure says what it can
        message = record_failure(out_dir, cfg, exc)
    log.error("job failed: %s (traceback in %s)", message, out_dir / "error.txt")


def _failed(out_dir: Path, cfg: DictConfig, exc: Exception, multirun: bool,
            refused_at_check: bool = False) -> float:
    """Record a job's failure (``_record_refusal`` for one the value checks refused) and
    carry on (a multirun: the sweeper sees the worst value) or exit with it (a single run)."""
    if refused_at_check:
        _record_refusal(out_dir, cfg, exc)
    else:
        message = record_failure(out_dir, cfg, exc)
        log.error("job failed: %s (traceback in %s)", message, out_dir / "error.txt")
    if not multirun:
        raise SystemExit(f"error: {exc}") from None
    return math.inf


# Hydra's launchers make a job's dir (hydra.core.utils.run_job) before the job runs, outside
# it: a regular file of that name raises FileExistsError there and takes the rest of the launch
# and its table down with a traceback. Each launcher module binds run_job by name, so the
# guard wraps it in Hydra's module (for launchers imported later) and in those imported by
# now; this module guards at import, which in a joblib worker comes after the launcher's.
LAUNCHER_MODULES = ("hydra._internal.core_plugins.basic_launcher",
                    "hydra_plugins.hydra_joblib_launcher._core")


def guard_job_dirs() -> None:
    """A job whose dir name is taken by a file (or whose path runs through one) is refused
    with one line naming it and the fix; in a multirun the other jobs run and the sweeper
    sees the worst value for it, as for a job refused for another process's lock."""
    for module in (hydra_utils, *(sys.modules.get(name) for name in LAUNCHER_MODULES)):
        if module is not None and hasattr(module, "run_job"):
            module.run_job = _guarded(module.run_job)


def _guarded(run_job):
    if getattr(run_job, "guards_job_dirs", False):
        return run_job
    signature = inspect.signature(run_job)

    @functools.wraps(run_job)
    def guarded(*args, **kwargs):
        try:
            return run_job(*args, **kwargs)
        except (FileExistsError, NotADirectoryError) as exc:
            blocker = artifacts.blocking_file(Path(exc.filename)) if exc.filename else None
            if blocker is None:
                raise
            call = signature.bind(*args, **kwargs).arguments
            where = ("is taken by a file" if str(blocker) == str(exc.filename)
                     else f"cannot be made: {blocker} is a file")
            message = (f"job dir {exc.filename} {where}. Fix: move or delete {blocker} (or "
                       "choose another hydra.sweep.dir / hydra.run.dir), then run the same "
                       "command again")
            if call.get("job_subdir_key") is None:  # a single run
                raise SystemExit(f"error: {message}") from None
            log.error("job refused: %s", message)
            config = call["config"]
            refused = JobReturn(overrides=list(config.hydra.overrides.task), hydra_cfg=config,
                                working_dir=os.getcwd(), status=JobStatus.COMPLETED)
            refused.return_value = math.inf
            return refused

    guarded.guards_job_dirs = True
    return guarded


guard_job_dirs()


def launcher_threads(hydra_cfg) -> int | None:
    """Torch threads per job when Hydra's joblib launcher runs jobs side by side.

    n_jobs parallel jobs each with torch's default (all cores) would oversubscribe the CPU;
    each job gets cores // n_jobs threads instead. Other launchers: None (torch's default).
    """
    launcher = hydra_cfg.get("launcher") or {}
    if "joblib" not in str(launcher.get("_target_", "")):
        return None
    cores = os.cpu_count() or 1
    n_jobs = launcher.get("n_jobs") or -1
    n_jobs = cores if n_jobs < 0 else n_jobs
    return max(1, cores // max(1, n_jobs))


def launcher_device(hydra_cfg, device: str) -> str:
    """``trainer.device`` for this job: jobs that Hydra's joblib launcher runs side by side
    go round-robin over the visible GPUs (by job number); other launchers give each job its
    own machine or GPUs (SLURM sets CUDA_VISIBLE_DEVICES), so ``device`` stays as it is."""
    launcher = hydra_cfg.get("launcher") or {}
    warn_if_gpu_hidden(device, launcher)
    if "joblib" not in str(launcher.get("_target_", "")):
        return device
    return job_device(device, hydra_cfg.job.get("num"))


def run_when_free(cfg: DictConfig, out_dir: Path) -> dict:
    """``run``, and where another process holds the dir (another launch into the same sweep
    training this job, or a worker of a killed launch finishing it), wait for that process
    and run again: its finished run is then skipped and its result returned; one it left
    unfinished (stopped, killed) is resumed. Never a refusal counted as a failed run."""
    while True:
        try:
            return run(cfg, out_dir)
        except artifacts.RunLocked as exc:
            holder = exc.holder
            log.warning("job dir %s is in use by pid %s on host %s (since %s): waiting for it "
                        "to finish, then using its result", out_dir, holder.get("pid", "?"),
                        holder.get("host", "?"), holder.get("since", "?"))
            artifacts.RunLock(out_dir).wait()


def prepare_job(cfg: DictConfig) -> Path | float:
    """What a job sets before it trains, from Hydra's view of it (inside Hydra's ``run_job``):
    every value checked (before torch or a device sees one), plain progress lines in a
    multirun, its device under the joblib launcher, torch's thread count. Returns its output
    dir, or the return value of a job refused at the check (recorded as failed)."""
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    try:  # every value (trainer.threads among them) before torch or a device sees it
        schema.check(cfg)
    except schema.ConfigError as exc:
        return _failed(out_dir, cfg, exc, hydra_cfg.mode == RunMode.MULTIRUN,
                       refused_at_check=True)
    if hydra_cfg.mode == RunMode.MULTIRUN and str(cfg.trainer.progress) == "auto":
        cfg.trainer.progress = "lines"  # a multirun's log gets plain lines, not a bar
    cfg.trainer.device = launcher_device(hydra_cfg, str(cfg.trainer.device))
    # always set: jobs of a multirun share a process, and a job's count must not leak into the next
    torch.set_num_threads(cfg.trainer.threads or launcher_threads(hydra_cfg) or PROCESS_THREADS)
    return out_dir


def job_outcome(cfg: DictConfig, out_dir: Path, train, multirun: bool) -> float | None:
    """The job's return value (its objective) from ``train()`` (its summary): a failure is
    recorded in its dir (summary.json "failed", error.txt) and, in a multirun, returns inf so
    that sweepers carry on; a refused dir is left untouched; a stop signal ends the sweep,
    resumable."""
    try:
        summary = train()
    except Interrupted as exc:  # SIGTERM/SIGINT: stop the whole sweep, resumable
        log.warning("%s; checkpoint saved in %s: run the same command again to resume",
                    exc, out_dir)
        if orphaned():  # its launcher is gone: nothing will hand this worker another job
            logging.shutdown()
            os._exit(128 + exc.signum)
        raise SystemExit(128 + exc.signum) from None
    except (ResumeError, artifacts.RunLocked) as exc:  # not this job's dir: write nothing there
        log.error("job refused: %s", exc)
        if not multirun:
            raise SystemExit(f"error: {exc}") from None
        return math.inf
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, then reported
        return _failed(out_dir, cfg, exc, multirun)
    if not multirun:
        print(f"run dir: {out_dir}")  # where summary.json, samples/ and checkpoints/ are
    return summary.get("objective")


def train_job(cfg: DictConfig, out_dir: Path, multirun: bool) -> dict:
    """A job's run: in a sweep, stopped if its launcher dies (a worker of a killed launcher
    must not train on, holding the dir) and waiting for a busy dir's holder."""
    if not multirun:
        return run(cfg, out_dir)
    with launcher_watch():
        return run_when_free(cfg, out_dir)
