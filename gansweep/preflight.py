"""Checks at launch, before any job trains, and the names of job dirs.

Hydra callback ``Preflight`` (conf/train.yaml): the output dir is writable, the FID
extractor's weights are present and verified, an Optuna search has an objective;
an Optuna study in SQLite is held by one launch at a time and trials that a killed launch
left RUNNING are marked FAIL. The dirs' names come from gansweep.dirs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from gansweep import artifacts
from gansweep.fid import evaluator as fid_evaluator, registry
from gansweep.dirs import SWEEP_NAME_ENV, sweep_name

log = logging.getLogger(__name__)


# the multirun in progress in this process (for its table when it is interrupted)
ACTIVE: dict[str, Path] = {}


def _check_output_dir(path: Path, key: str) -> None:
    try:
        artifacts.ensure_writable(path)
    except artifacts.OutputDirError:
        raise SystemExit(f"error: {key}={path} is not writable. Fix: choose a writable "
                         f"folder, e.g. {key}=outputs/...") from None


def _is_optuna(config: DictConfig) -> bool:
    return "optuna" in str(OmegaConf.select(config, "hydra.sweeper._target_", default=""))


class Preflight(Callback):
    """Hydra callback: checks that need no training, once per launch, before any job runs:
    the output dir is writable, the FID extractor's weights are present and verified, an
    Optuna search has an objective (not ``fid=none``); an Optuna study
    in SQLite is held by one launch at a time, and trials an interrupted launch left RUNNING
    are marked FAIL."""

    def __init__(self) -> None:
        self.sweep_lock: artifacts.RunLock | None = None

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _check_output_dir(Path(config.hydra.run.dir), "hydra.run.dir")
        self._check_assets(config)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        os.environ[SWEEP_NAME_ENV] = sweep_name(config.hydra.overrides.task)
        sweep_dir = Path(config.hydra.sweep.dir)
        _check_output_dir(sweep_dir, "hydra.sweep.dir")
        ACTIVE["sweep_dir"] = sweep_dir
        if _is_optuna(config):
            if str(OmegaConf.select(config, "fid.extractor")) == "none":
                raise SystemExit("error: an Optuna search minimises the run's FID, and fid=none "
                                 "computes none. Fix: fid=lenet (the default) or fid=inception.")
            self._claim_study(config, sweep_dir)
        self._check_assets(config)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        ACTIVE.pop("sweep_dir", None)
        os.environ.pop(SWEEP_NAME_ENV, None)
        if self.sweep_lock is not None:
            self.sweep_lock.release()

    @staticmethod
    def _check_assets(config: DictConfig) -> None:
        try:
            fid_evaluator.preflight(config.get("fid"))
        except (registry.UnknownExtractor, RuntimeError, ValueError, OSError) as exc:
            raise SystemExit(f"error: {exc}") from None

    def _claim_study(self, config: DictConfig, sweep_dir: Path) -> None:
        storage = str(OmegaConf.select(config, "hydra.sweeper.storage", default=None) or "")
        if not storage.startswith("sqlite:///"):
            return
        self.sweep_lock = artifacts.RunLock(sweep_dir, ".optuna.lock")
        try:
            self.sweep_lock.acquire()
        except artifacts.RunLocked as exc:
            raise SystemExit(f"error: the Optuna study of {exc}") from None
        if Path(storage[len("sqlite:///"):]).exists():
            fail_stale_trials(storage, str(config.hydra.sweeper.study_name))


def fail_stale_trials(storage: str, study_name: str) -> int:
    """Mark FAIL the trials a killed launch left RUNNING (this launch holds the study's lock,
    so no other process is running them); returns how many."""
    import optuna  # optional (gansweep[scale]): only an Optuna sweep with a study gets here

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # no such study yet
        return 0
    stale = [t for t in study.get_trials(deepcopy=False)
             if t.state == optuna.trial.TrialState.RUNNING]
    for trial in stale:
        if hasattr(study._storage, "set_trial_state_values"):  # optuna >= 3
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        else:
            study._storage.set_trial_state(trial._trial_id, optuna.trial.TrialState.FAIL)
    if stale:
        log.warning("marked %d Optuna trial(s) left RUNNING by an interrupted launch as FAIL: %s",
                    len(stale), ", ".join(str(t.number) for t in stale))
    return len(stale)
