"""`gansweep-train`: the Hydra entry point; a job's steps are ``gansweep.runs.job``'s, its run
``gansweep.runs.trainer.run``.

    gansweep-train +experiment=seed_coulomb_1
    gansweep-train -m '+experiment=glob(seed_*)' trainer=quick
    gansweep-train -m +experiment=seed_coulomb_1 kernel.eps=0.1,1,10 optimizer.d.lr=1e-3,1e-4

A job that fails records ``status: failed`` and its error in summary.json (traceback in
error.txt) and, in a multirun, lets the sweep carry on; a single run exits with the error.
A job refused because its dir holds another configuration's run writes nothing there, nor
does one whose dir name is taken by a regular file (one line; the other jobs run). A dir that
another process holds (its lock) refuses a single run; a sweep's job waits for that process
(another launch training the same run) and then takes its result, so a busy job is never
counted as a failed one. A job that a launcher runs in a child process stops when its
launcher dies (gansweep.runs.signals.launcher_watch). What can be checked before training is
checked at launch (gansweep.runs.preflight).
Ctrl-C or SIGTERM prints one line, and an interrupted multirun still gets its table.
"""

from __future__ import annotations

import importlib
import signal
import sys
from importlib.resources import files
from pathlib import Path

import hydra
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gansweep import schema  # noqa: F401 - the schemas
from gansweep.report.aggregate import aggregate
from gansweep.runs import dirs  # noqa: F401 - the dir-name resolvers
# a job's steps, here for those who import them from the entry point
from gansweep.runs.job import (PROCESS_THREADS, guard_job_dirs, job_outcome,  # noqa: F401
                               launcher_device, launcher_threads, prepare_job, record_failure,
                               train_job)
from gansweep.runs.preflight import ACTIVE


@hydra.main(version_base="1.3", config_path="pkg://gansweep.conf", config_name="train")
def _main(cfg: DictConfig) -> float | None:
    out_dir = prepare_job(cfg)
    if not isinstance(out_dir, Path):  # refused at the check, recorded
        return out_dir
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    return job_outcome(cfg, out_dir, lambda: train_job(cfg, out_dir, multirun), multirun)


def _table_of_interrupted_sweep() -> None:
    sweep_dir = ACTIVE.pop("sweep_dir", None)
    if sweep_dir is None or not sweep_dir.is_dir():
        return
    try:
        aggregate([sweep_dir], echo=False)
        print(f"table of the jobs so far: {sweep_dir / 'table.md'}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - the interruption is what gets reported
        print(f"gansweep-table failed on {sweep_dir}: {exc}", file=sys.stderr)


USAGE = """gansweep-train: train GANs on MNIST or 2-D mixtures, one run or a Hydra sweep.

usage: gansweep-train [-m] [group=option ...] [key=value ...]

  gansweep-train +experiment=seed_coulomb_1                 one preset of the 2018 study
  gansweep-train -m '+experiment=glob(seed_*)'              all seven presets, then the table
  gansweep-train -m +experiment=seed_coulomb_1 kernel.eps=0.1,1,10 seed=0,1,2
  gansweep-train --cfg job [overrides]                      print the composed config
  gansweep-train --hydra-help                               Hydra's own flags

Results: a single run prints its output dir; a sweep writes one dir per job and
table.{md,html,csv} in the sweep dir (gansweep-table rebuilds it). README.md has more.
"""


def app_help() -> str:
    """``--help``: the app's groups and options (not the schemas Hydra keeps beside them),
    and the experiment presets with their first comment line."""
    lines = [USAGE, "Config groups (group=option; * marks the default):"]
    with initialize_config_module(config_module="gansweep.conf", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        defaults = loader.load_configuration("train", overrides=[], run_mode=RunMode.RUN)
        choices = defaults.hydra.runtime.choices
        for group in sorted(loader.list_groups("")):
            if group in ("hydra", "experiment", "schema"):  # schema: types, not options
                continue
            options = loader.get_group_options(group)
            marked = [f"{o}*" if choices.get(group) == o else o for o in options]
            lines.append(f"  {group:<15} {', '.join(marked)}")
    lines += ["", "Presets (+experiment=NAME):"]
    for path in sorted(files("gansweep.conf").joinpath("experiment").iterdir(),
                       key=lambda p: p.name):
        if path.name.endswith(".yaml"):
            text = [ln.lstrip("# ").strip() for ln in path.read_text().splitlines()
                    if ln.startswith("#") and "@package" not in ln]
            lines.append(f"  {path.name[:-5]:<22} {text[0] if text else ''}")
    return "\n".join(lines)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # outside the training loop, which installs its own handlers


def main() -> None:
    """`gansweep-train`: the Hydra main, with one line instead of a traceback on Ctrl-C or
    SIGTERM anywhere (a job's own checkpointing handles them during training)."""
    if any(arg in ("--help", "-h") for arg in sys.argv[1:]):
        print(app_help())
        return
    signal.signal(signal.SIGTERM, _interrupt)
    guard_job_dirs()  # the launchers imported since this module was
    try:
        _main()
    except KeyboardInterrupt:
        _table_of_interrupted_sweep()
        print("interrupted; run the same command again to resume (finished jobs are skipped)",
              file=sys.stderr)
        raise SystemExit(130) from None
    except SystemExit as exc:
        if exc.code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
            _table_of_interrupted_sweep()
        raise


if __name__ == "__main__":
    # `python -m gansweep.train`: run the module under its own name, so that the task function
    # Hydra hands to joblib workers is gansweep.train's, which they import (and with it the
    # job-dir guard), not a copy of __main__'s
    importlib.import_module("gansweep.train").main()
