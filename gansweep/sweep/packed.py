"""``hydra/launcher=packed``: a sweep's compatible jobs trained as one fused model.

    gansweep-train -m '+experiment=glob(seed_*)' seed=0,1,2 hydra/launcher=packed

Jobs whose runs share an architecture, a loss family, a batch size, a dataset, a device and
the arithmetic (``pack_key``) form a group; each group trains as one fused model of N runs in
this process (``gansweep.packed.driver``): convolutions grouped over runs, BatchNorm and
Dropout per run, KerasAdam over stacked parameters with each run's own hyperparameters, the
loss summed over runs so that each gets its own gradient. Each run keeps its own random
streams (initialisation, data order, noise, Dropout masks), its own dir, identity hash,
summary.json, metrics.jsonl, grids and checkpoints in the single-run format: a packed run
resumes, extends, re-scores and halves as a single run does, and can be continued unpacked
(and a single run continued packed). A job that fits no group (another model, optimiser or
GAN type than the packable ones) trains alone, as under the basic launcher.

The launcher works in three steps: every job goes through Hydra's ``run_job`` (its dir, its
.hydra/ files, callbacks) with a task that only prepares it (``gansweep.runs.job.prepare_job``);
the groups train; each job's return value is set from its run's summary, as the basic
launcher's task would have returned it (``gansweep.runs.job.job_outcome``).

Nothing here imports torch at module level: Hydra's plugin scan imports it in any Hydra app.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from hydra.core import utils as hydra_utils
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from gansweep.identity import PLACEMENT

log = logging.getLogger(__name__)

# what the fused model implements (gansweep.packed): other classes train alone
PACKABLE_MODELS = ("gansweep.models.DCGAN", "gansweep.models.MLPGAN")
PACKABLE_OPTIMIZERS = ("gansweep.optim.KerasAdam",)
PACKABLE_GAN_TYPES = ("gansweep.objectives.StandardGAN", "gansweep.objectives.CoulombGAN")
PACKABLE_KERNELS = ("gansweep.kernels.PlummerKernel",)
# what runs of one pack must share: the rest (learning rates, decays, betas, the kernel's
# eps and its schedule, the seed, the budget, evaluation) may differ run by run
SHARED_TRAINER = ("batch_size", "max_batches_per_epoch", "fake_mode", "precision", "device",
                  "tf32", "deterministic")


@dataclass
class PackedLauncherConf:
    _target_: str = "hydra_plugins.gansweep_packed.PackedLauncher"
    max_runs: Optional[int] = None  # runs in one fused model at most (null: a whole group)
    conv_impl: str = "auto"  # grouped | bmm | loop | auto (gansweep.packed.models.auto_conv_impl)
    cuda_graphs: bool = True  # on CUDA, capture the fused step once and replay it


class PackError(ValueError):
    """A launcher setting that cannot work; the message names it and the fix."""


def _plain(node) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def pack_key(cfg: DictConfig) -> str | None:
    """What the runs of one pack share, as a string (equal strings: one pack), or None for a
    job the fused model does not implement."""
    model, gan_type = cfg.model, cfg.gan_type
    if str(model.get("_target_")) not in PACKABLE_MODELS:
        return None
    if any(str(cfg.optimizer[net].get("_target_")) not in PACKABLE_OPTIMIZERS
           for net in ("d", "g")):
        return None
    if str(gan_type.get("_target_")) not in PACKABLE_GAN_TYPES:
        return None
    kernel = gan_type.get("kernel")
    if kernel is not None and str(kernel.get("_target_")) not in PACKABLE_KERNELS:
        return None
    dataset = {k: v for k, v in _plain(cfg.dataset).items()
               if f"dataset.{k}" not in PLACEMENT}
    shared = {
        "model": {k: v for k, v in _plain(model).items() if k not in ("impl", "name")},
        "loss": [str(gan_type._target_), str(gan_type.get("loss", ""))],
        "kernel": str(kernel._target_) if kernel is not None else None,
        "dataset": dataset, "noise": _plain(cfg.noise),
        "trainer": {k: _plain(cfg.trainer.get(k)) for k in SHARED_TRAINER},
    }
    return json.dumps(shared, sort_keys=True, default=str)


def groups(keys: Sequence[str | None], max_runs: int | None) -> list[list[int]]:
    """Job indices by pack: equal keys together (in job order), split into packs of at most
    ``max_runs``; a job with key None is a group of its own (trained alone)."""
    by_key: dict[str, list[int]] = {}
    out: list[list[int]] = []
    for index, key in enumerate(keys):
        if key is None:
            out.append([index])
        else:
            by_key.setdefault(key, []).append(index)
    for members in by_key.values():
        size = max_runs or len(members)
        out += [members[i:i + size] for i in range(0, len(members), size)]
    return sorted(out, key=lambda g: g[0])


class _Prepared:
    """A job prepared by ``run_job`` and not trained yet (the task's return value)."""

    def __init__(self, cfg: DictConfig, out_dir: Path):
        self.cfg, self.out_dir = cfg, out_dir


def _prepare(cfg: DictConfig):
    """The task ``run_job`` runs for each job: prepare it (``gansweep.runs.job.prepare_job``),
    train nothing. A job refused at the check returns its final value instead."""
    from gansweep.runs import job  # torch: this module is imported by Hydra's plugin scan

    out_dir = job.prepare_job(cfg)
    return _Prepared(cfg, out_dir) if isinstance(out_dir, Path) else out_dir


class PackedLauncherBase(Launcher):
    """The launcher's logic; Hydra instantiates ``hydra_plugins.gansweep_packed.PackedLauncher``."""

    def __init__(self, max_runs: Optional[int] = None, conv_impl: str = "auto",
                 cuda_graphs: bool = True) -> None:
        if max_runs is not None and (not isinstance(max_runs, int) or max_runs < 1):
            raise SystemExit(f"error: hydra.launcher.max_runs={max_runs!r}: must be an integer "
                             ">= 1, or null for whole groups")
        if conv_impl not in ("auto", "grouped", "bmm", "loop"):
            raise SystemExit(f"error: hydra.launcher.conv_impl={conv_impl!r}: expected one of "
                             "auto, grouped, bmm, loop")
        self.max_runs, self.conv_impl, self.cuda_graphs = max_runs, conv_impl, bool(cuda_graphs)
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        # torch: only when jobs are launched, not at Hydra's plugin scan (gansweep.runs.job
        # also guards hydra_utils.run_job against a job dir taken by a file)
        from gansweep.packed.driver import train_group
        from gansweep.runs import job

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info("Preparing %d jobs to train packed", len(job_overrides))
        returns: list[JobReturn] = []
        for offset, overrides in enumerate(job_overrides):
            idx = initial_job_idx + offset
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            sweep_config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = idx
                sweep_config.hydra.job.num = idx
            returns.append(hydra_utils.run_job(
                hydra_context=self.hydra_context, task_function=_prepare,
                config=sweep_config, job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir"))
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)

        # a job refused before training (its dir, its values) has its final return value
        # already; one whose preparation raised re-raises it there, as under the basic launcher
        prepared = {i: ret.return_value for i, ret in enumerate(returns)
                    if ret.status == JobStatus.COMPLETED
                    and isinstance(ret.return_value, _Prepared)}
        keys = [pack_key(p.cfg) if (p := prepared.get(i)) is not None else None
                for i in range(len(returns))]
        for members in groups(keys, self.max_runs):
            members = [i for i in members if i in prepared]
            if not members:
                continue
            jobs = [(prepared[i].cfg, prepared[i].out_dir) for i in members]
            if len(members) > 1:
                log.info("packing %d runs: %s", len(members),
                         ", ".join(str(prepared[i].out_dir.name) for i in members))
            results = train_group(jobs, conv_impl=self.conv_impl,
                                  cuda_graphs=self.cuda_graphs)
            for i, result in zip(members, results):
                returns[i].return_value = job.job_outcome(
                    prepared[i].cfg, prepared[i].out_dir, result, multirun=True)
        return returns
