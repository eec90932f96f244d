"""Successive halving as a Hydra sweeper: ``hydra/sweeper=halving``.

    gansweep-train -m hydra/sweeper=halving +experiment=mixture_coulomb \\
        kernel.eps=0.3,1,3 kernel.dim=3,4,6 optimizer.d.lr=1e-4,3e-4,1e-3 seed=0,1,2 \\
        hydra.sweeper.min_epochs=3 hydra.sweeper.max_epochs=27 hydra.sweeper.eta=3

The grid is the basic sweeper's (command-line lists, ``glob(...)``, ``range(...)``); jobs that
differ only in ``seed`` are one setting. The budget is ``trainer.epochs`` on a ladder from
``min_epochs`` to ``max_epochs``, each rung ``eta`` times the one below (the lowest rounded
down so that the top is exactly ``max_epochs``). Every setting trains at the lowest rung;
after each rung the settings are ranked by the mean over seeds of what their jobs return
(``fid.objective``, or ``dataset.objective`` for the 2-D mixtures: lower is better) and the
best 1/eta (at least one) go on to the next rung, whose jobs extend their runs exactly
(gansweep.runs.extend) instead of training from step 0. Jobs run through the configured launcher.

A setting's mean is over distinct runs: a job listed twice (``seed=0,0,1``) is launched once,
and jobs that land in one run dir (the same identity, gansweep.runs.dirs) count once.

Every rung is recorded in ``<sweep dir>/halving.json`` (budget, each setting's objective per
seed and mean, its rank, whether it was promoted; a failed or unscored run's objective as
null), and the sweep's table shows the rungs and how far each rung's ranking agrees with the
next (gansweep.report.halving). Relaunching the same command resumes: finished jobs are
skipped, a rung stopped mid-way continues its jobs. A job that another launch is training
waits for it and takes its result (gansweep.runs.job.run_when_free): busy is not failed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from gansweep.runs.dirs import override_key

log = logging.getLogger(__name__)

BUDGET = "trainer.epochs"
RECORD = "halving.json"


@dataclass
class HalvingSweeperConf:
    _target_: str = "hydra_plugins.gansweep_halving.HalvingSweeper"
    min_epochs: int = 1  # the lowest rung's budget
    max_epochs: int = 9  # the top rung's budget: the full one
    eta: int = 3  # each rung eta times the one below; 1/eta of the settings go up
    max_batch_size: Optional[int] = None  # jobs handed to the launcher at once (null: a rung)
    params: Optional[Dict[str, str]] = None  # grid entries written in the config


class HalvingError(ValueError):
    """A halving sweep that cannot run as asked; the message names the setting and the fix."""


def ladder(min_epochs: int, max_epochs: int, eta: int) -> list[int]:
    """The rungs' budgets, lowest first: max_epochs / eta^k for k = K..0, the largest K with
    max_epochs / eta^K >= min_epochs, rounded down (and never below 1)."""
    if not (isinstance(eta, int) and eta >= 2):
        raise HalvingError(f"hydra.sweeper.eta={eta!r}: must be an integer >= 2 (the factor "
                           "between rungs)")
    if not (isinstance(min_epochs, int) and isinstance(max_epochs, int)
            and 1 <= min_epochs <= max_epochs):
        raise HalvingError(f"hydra.sweeper.min_epochs={min_epochs!r}, max_epochs="
                           f"{max_epochs!r}: need integers with 1 <= min_epochs <= max_epochs")
    rungs = [max_epochs]
    while rungs[0] // eta >= min_epochs:
        rungs.insert(0, rungs[0] // eta)
    if len(rungs) < 2:
        raise HalvingError(f"hydra.sweeper.min_epochs={min_epochs}, max_epochs={max_epochs}, "
                           f"eta={eta}: one rung only (max_epochs / eta < min_epochs), so "
                           "nothing would be halved. Fix: lower min_epochs or eta, or raise "
                           "max_epochs")
    return rungs


def setting_of(job: Sequence[str]) -> tuple[str, ...]:
    """A job's setting: its overrides without the seed (seeds of a setting are averaged)."""
    return tuple(o for o in job if override_key(o) != "seed")


def labels(settings: list[tuple[str, ...]]) -> dict[tuple, str]:
    """Each setting named by the overrides that differ between settings (all of them when
    there is one setting)."""
    shared = set.intersection(*(set(s) for s in settings)) if len(settings) > 1 else set()
    return {s: " ".join(o for o in s if o not in shared) or "(defaults)" for s in settings}


def promote(scores: dict[tuple, float], eta: int) -> list[tuple]:
    """The best ceil(n / eta) settings (lowest mean objective; ties kept in grid order),
    never one whose runs failed or diverged (an infinite mean)."""
    keep = max(1, math.ceil(len(scores) / eta))
    ranked = sorted(scores, key=lambda s: (scores[s], list(scores).index(s)))
    return [s for s in ranked[:keep] if math.isfinite(scores[s])]


def ranks(scores: dict[tuple, float]) -> dict[tuple, int]:
    """1 for the lowest mean; equal means share the better rank (1, 2, 2, 4)."""
    return {s: 1 + sum(other < value for other in scores.values())
            for s, value in scores.items()}


def tied_at_cut(scores: dict[tuple, float], promoted: list[tuple]) -> dict | None:
    """Where promotion had to choose among equal means: the settings sharing the last
    promoted setting's mean, and how many of them went up (None: the cut fell between two
    different means, or nothing was promoted)."""
    if not promoted:
        return None
    cut = scores[promoted[-1]]
    tie = [s for s, v in scores.items() if v == cut]
    going = sum(s in promoted for s in tie)
    return None if going == len(tie) else {"mean": cut, "settings": len(tie), "promoted": going}


def mean_objective(values: list[float]) -> float:
    """The mean over seeds; a failed or unscored seed (inf, NaN, None) makes it inf."""
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return math.inf
    return statistics.fmean(values)


def check_objective(config: DictConfig) -> None:
    """Refuse, before anything trains, a sweep whose runs return no objective to rank by."""
    dataset = str(OmegaConf.select(config, "dataset._target_", default=""))
    if dataset.endswith("MNIST") and str(OmegaConf.select(config, "fid.extractor",
                                                          default="none")) == "none":
        raise HalvingError("a halving sweep ranks settings by fid.objective, and fid=none "
                           "computes none. Fix: fid=lenet (the default) or fid=inception")


class HalvingSweeperBase(Sweeper):
    """The sweeper's logic; Hydra takes plugins only from the ``hydra_plugins`` package, so
    the class it instantiates is ``hydra_plugins.gansweep_halving.HalvingSweeper``."""

    def __init__(self, min_epochs: int = 1, max_epochs: int = 9, eta: int = 3,
                 max_batch_size: Optional[int] = None,
                 params: Optional[Dict[str, str]] = None) -> None:
        self.min_epochs, self.max_epochs, self.eta = min_epochs, max_epochs, eta
        self.max_batch_size, self.params = max_batch_size or None, params or {}
        try:  # a ladder that cannot be built is refused before any job, in one line
            self.rungs = ladder(min_epochs, max_epochs, eta)
            if max_batch_size is not None and max_batch_size < 1:
                raise HalvingError(f"hydra.sweeper.max_batch_size={max_batch_size}: must be "
                                   ">= 1, or null for a whole rung at once")
        except HalvingError as exc:
            raise SystemExit(f"error: {exc}") from None
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def grid(self, arguments: List[str]) -> list[list[str]]:
        """Every job of the grid (the basic sweeper's expansion), without a budget."""
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*(f"{k}={v}" for k, v in self.params.items()),
                                            *arguments])
        owned = [o.input_line for o in overrides if o.key_or_group == BUDGET]
        if owned:
            raise HalvingError(f"{owned[0]}: the halving sweeper sets {BUDGET} itself, rung by "
                               "rung. Fix: drop it and set hydra.sweeper.min_epochs / "
                               "max_epochs / eta")
        return BasicSweeper.split_arguments(overrides, None)[0]

    def sweep(self, arguments: List[str]) -> Any:
        try:
            check_objective(self.config)
            jobs = self.grid(arguments)
        except HalvingError as exc:
            raise SystemExit(f"error: {exc}") from None
        distinct = [list(job) for job in dict.fromkeys(tuple(job) for job in jobs)]
        if len(distinct) < len(jobs):
            log.warning("halving: %d job(s) of the grid repeat another's overrides (a seed "
                        "listed twice?); each run is trained and counted once",
                        len(jobs) - len(distinct))
            jobs = distinct
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        settings = list(dict.fromkeys(setting_of(job) for job in jobs))
        label = labels(settings)
        record = {"budget": BUDGET, "ladder": self.rungs, "eta": self.eta,
                  "settings": len(settings), "seeds": len(jobs) // max(len(settings), 1),
                  "rungs": []}
        survivors, job_idx, returns = settings, 0, []
        for index, budget in enumerate(self.rungs):
            batch = [[*job, f"{BUDGET}={budget}"] for job in jobs if setting_of(job) in survivors]
            log.info("rung %d/%d: %s=%d, %d settings, %d jobs", index + 1, len(self.rungs),
                     BUDGET, budget, len(survivors), len(batch))
            results = []
            for start in range(0, len(batch), self.max_batch_size or len(batch)):
                chunk = batch[start:start + (self.max_batch_size or len(batch))]
                results += list(self.launcher.launch(chunk, initial_job_idx=job_idx))
                job_idx += len(chunk)
            returns.append(results)
            values: dict[tuple, list] = {s: [] for s in survivors}
            dirs: dict[tuple, list] = {s: [] for s in survivors}
            for job, result in zip(batch, results):
                value = result.return_value  # re-raises a job's exception, as Hydra's sweepers
                setting, where = setting_of(job[:-1]), _job_dir(result, sweep_dir)
                if where is not None and where in dirs[setting]:
                    continue  # the same run (one identity, one dir): one value of the mean
                values[setting].append(None if value is None else float(value))
                dirs[setting].append(where)
            scores = {s: mean_objective(v) for s, v in values.items()}
            last = index == len(self.rungs) - 1
            promoted = [] if last else promote(scores, self.eta)
            rank = ranks(scores)
            tied = tied_at_cut(scores, promoted)
            if tied:
                log.warning("halving: rung %d (%s=%d): %d settings tie at the cut (mean "
                            "objective %s) and %d of them go up, taken in grid order: this "
                            "rung cannot rank them. A larger hydra.sweeper.min_epochs or an "
                            "objective that separates them at this budget would", index + 1,
                            BUDGET, budget, tied["settings"], tied["mean"], tied["promoted"])
            record["rungs"].append({
                "budget": budget, "tied_at_cut": tied,
                "settings": [{"setting": label[s], "overrides": list(s),
                              "objective": values[s],
                              "mean": scores[s] if math.isfinite(scores[s]) else None,
                              "rank": rank[s], "promoted": s in promoted,
                              "jobs": dirs[s]} for s in survivors]})
            write_record(record, sweep_dir / RECORD)
            if not last:
                survivors = [s for s in survivors if s in promoted]
                if not survivors:
                    log.warning("halving: no setting of rung %d finished with an objective; "
                                "stopping there", index + 1)
                    break
        best = min(record["rungs"][-1]["settings"], key=lambda s: (s["rank"], s["setting"]))
        log.info("halving: best setting %s (mean objective %s at %s=%d); rungs in %s",
                 best["setting"], best["mean"], BUDGET, self.rungs[-1], sweep_dir / RECORD)
        return returns


def json_safe(value):
    """``value`` with every non-finite float as None: JSON has no Infinity or NaN (a failed
    run's objective is inf), and a strict reader refuses them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_record(record: dict, path: Path) -> None:
    """halving.json, replaced atomically (a reader never sees half a record)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(json_safe(record), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _job_dir(result, sweep_dir: Path) -> str | None:
    """A launched job's dir, relative to the sweep dir."""
    try:
        out = Path(result.hydra_cfg.hydra.runtime.output_dir).resolve()
        return str(out.relative_to(sweep_dir.resolve()))
    except (AttributeError, ValueError, TypeError):
        return None
