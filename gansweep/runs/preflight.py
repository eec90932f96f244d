"""Checks at launch, before any job trains, and the names of job dirs.

Hydra callback ``Preflight`` (conf/train.yaml): the output dir is writable, the dataset's
files are there, the FID extractor applies to the dataset and its weights are present and
verified, an Optuna search has an objective;
an Optuna study in SQLite is held by one launch at a time and trials that a killed launch
left RUNNING are marked FAIL. The launching process is named to the jobs it starts
(gansweep.runs.signals.mark_launcher), so a job in a worker process stops when it dies. The dirs'
names come from gansweep.runs.dirs.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, read_write

from gansweep import artifacts
from gansweep.runs import signals
from gansweep.device import isolated_rng
from gansweep.fid import evaluator as fid_evaluator, registry

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
        warn_if_short_of_space(config, Path(config.hydra.run.dir), 1)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        pin_sweep_dir(config, sweep_dir)
        _check_output_dir(sweep_dir, "hydra.sweep.dir")
        ACTIVE["sweep_dir"] = sweep_dir
        signals.mark_launcher()  # the jobs it starts in processes of their own watch it
        if _is_optuna(config):
            if str(OmegaConf.select(config, "fid.extractor")) == "none":
                raise SystemExit("error: an Optuna search minimises the run's FID, and fid=none "
                                 "computes none. Fix: fid=lenet (the default) or fid=inception.")
            self._claim_study(config, sweep_dir)
        self._check_assets(config)
        warn_if_short_of_space(config, sweep_dir, sweep_size(config))

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        ACTIVE.pop("sweep_dir", None)
        if self.sweep_lock is not None:
            self.sweep_lock.release()

    @staticmethod
    def _check_assets(config: DictConfig) -> None:
        try:
            fid_evaluator.preflight(config.get("fid"), dataset_reference(config))
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


def dataset_reference(config: DictConfig):
    """The launch's dataset, built (its classes read no data until ``load``) and checked by
    its own ``preflight`` where it has one (an image folder: the folder exists): its FID
    reference, or None where the fid group does not score it (``fid=none``, a dataset with
    its own evaluator)."""
    if config.get("dataset") is None:
        return None
    try:
        dataset = instantiate(config.dataset)
    except InstantiationException as exc:  # the class's own one-line message, not Hydra's
        raise SystemExit(f"error: {exc.__cause__ or exc}") from None
    if callable(getattr(dataset, "preflight", None)):
        dataset.preflight()
    if str(OmegaConf.select(config, "fid.extractor", default="none")) == "none" \
            or getattr(dataset, "evaluator", None) is not None:
        return None
    return fid_evaluator.reference_of(dataset)


def pin_sweep_dir(config: DictConfig, sweep_dir: Path) -> None:
    """Every job's config is composed again from the launch's Hydra overrides plus its own
    (seed=1, not seed=0,1,2), so a sweep dir named after the overrides would be renamed per
    job: the resolved dir joins the Hydra overrides, in every launcher's jobs alike."""
    value = str(sweep_dir)
    quote = "'" if "'" not in value else '"'
    with read_write(config.hydra.overrides.hydra):
        config.hydra.overrides.hydra.append(f"hydra.sweep.dir={quote}{value}{quote}")


def checkpoint_bytes(config: DictConfig) -> int:
    """About what one run's checkpoints take: last.pt holds G and D with Adam's two moments
    (three copies of the weights), best.pt G and D once."""
    with isolated_rng(torch.device("cpu")):  # building the networks draws initial weights
        gan = instantiate(config.model)
    weights = sum(artifacts.state_bytes(m.state_dict()) for m in (gan.generator, gan.discriminator))
    best = 0 if str(OmegaConf.select(config, "fid.extractor", default="none")) == "none" else 1
    return (3 + best) * weights


def sweep_size(config: DictConfig) -> int:
    """How many jobs the launch's overrides expand to (the product of the sweep lists;
    Optuna's n_trials), at least 1."""
    if _is_optuna(config):
        return int(OmegaConf.select(config, "hydra.sweeper.n_trials", default=1) or 1)
    loader = GlobalHydra.instance().config_loader() if GlobalHydra.instance().is_initialized() \
        else None
    jobs = 1
    for override in OverridesParser.create().parse_overrides(
            [str(o) for o in config.hydra.overrides.task]):
        if override.is_sweep_override():
            if override.value_type == ValueType.GLOB_CHOICE_SWEEP and loader is not None:
                options = loader.get_group_options(override.key_or_group)
                jobs *= len(override.value().filter(options))
            else:
                jobs *= len(list(override.sweep_string_iterator()))
    return max(jobs, 1)


def warn_if_short_of_space(config: DictConfig, out_dir: Path, jobs: int) -> None:
    """A warning (not a refusal: some jobs may be done, or space may be freed meanwhile) when
    the output dir's filesystem has less room than ``jobs`` runs' checkpoints take."""
    try:
        needed = jobs * checkpoint_bytes(config)
    except Exception as exc:  # noqa: BLE001 - an estimate only; training reports real errors
        log.debug("no checkpoint size estimate: %s", exc)
        return
    free = shutil.disk_usage(out_dir).free
    if free < needed:
        log.warning("%s has %s MB free; the checkpoints of %d run(s) take about %s MB. A run "
                    "that meets a full disk stops with its last good checkpoint kept. Fix: "
                    "free space, or choose another output dir (hydra.sweep.dir=...)",
                    out_dir, f"{free / 2**20:,.0f}", jobs, f"{needed / 2**20:,.0f}")


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
