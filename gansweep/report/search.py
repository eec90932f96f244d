"""A successive-halving sweep read against the full grid of the same settings:
``gansweep-table <halving sweep dir> --against <grid sweep dir> --report <page.md>``.

The grid trained every setting and seed at the halving sweep's top budget from step 0; the
halving sweep (gansweep.sweep.halving) trained them all at its lowest rung and extended the best
1/eta rung by rung. The block says, from the job dirs only:

- what each spent: jobs, batches each job trained itself (an extended job without those of
  the run it continued) and the seconds its training loop took (summary.json's
  ``wall_seconds``, likewise net of the run it continued);
- each one's winner, and the halving winner's regret: the grid's mean objective of the
  halving winner against the grid's best mean, and whether it lies inside the best setting's
  95% interval over seeds (the halving winner's rank in the grid, with ties as the table's);
- how far each rung's ranking predicts the full budget's (Spearman's rho between the rung's
  means and the grid's on the settings the rung trained), and how far each rung agrees with
  the next (the halving sweep's own record);
- whether the halving runs at the top budget equal the grid's runs of the same setting and
  seed (every number of summary.json but wall time, and the final sample image's bytes):
  exact extension at scale;
- every setting: the grid's mean ± 95% interval and rank, and what halving did with it.

Settings are matched by the run's identity (gansweep.identity) without the seed and the
budget, so the two sweeps may list their overrides in any order. The objective is the one the
sweeper ranked by (``objective_metric`` in summary.json; shown in its own direction).
The markdown block is gansweep.report.search_page's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gansweep.report import grouping
from gansweep.report import halving as halving_report
from gansweep.report.table import read_summary

IGNORED = ("seed", "trainer.epochs")  # what a setting's runs may differ in


class SearchError(ValueError):
    """The two sweep dirs cannot be compared (no halving record, no finished runs, ...)."""


def setting_key(summary: dict) -> str | None:
    """The run's identity without seed and budget, as canonical JSON (None: no identity)."""
    identity = summary.get("identity")
    if not isinstance(identity, dict):
        return None
    return json.dumps({k: v for k, v in identity.items() if k not in IGNORED}, sort_keys=True)


def _donor(job: Path, summary: dict) -> dict:
    """The summary of the run ``job`` continued (by its recorded path, else by its name
    beside ``job``: a sweep dir that moved)."""
    run = (summary.get("extended_from") or {}).get("run")
    if not run:
        return {}
    found = read_summary(Path(run))
    return found or read_summary(job.parent / Path(run).name)


def own_cost(job: Path, summary: dict) -> tuple[int, float]:
    """Batches and training seconds this job spent itself (without the run it continued)."""
    donor = _donor(job, summary)
    seconds = (summary.get("wall_seconds") or 0.0) - (donor.get("wall_seconds") or 0.0)
    return halving_report.own_batches(summary), float(seconds)


def objective_value(summary: dict) -> tuple[str | None, float]:
    """(metric, value) the sweeper ranked by, in the metric's own direction."""
    metric = summary.get("objective_metric")
    value = summary.get(metric) if metric else None
    if value is None:
        value = summary.get("objective")
    return metric, (math.nan if value is None else float(value))


def _lower(metric: str | None) -> bool:
    try:
        return grouping.lower_is_better(metric) if metric else True
    except KeyError:
        return True


def _metrics(summary: dict) -> dict:
    """Every number the run's evaluation wrote, and the numbers it left empty (None), for the
    bit-equality check; wall time aside."""
    skip = {"wall_seconds", "seconds_per_step_median"}
    return {k: v for k, v in summary.items() if k not in skip and (
        v is None or isinstance(v, (int, float)) and not isinstance(v, bool))}


def _final_image(job: Path, summary: dict) -> bytes | None:
    name = summary.get("final_sample")
    try:
        return (job / name).read_bytes() if name else None
    except OSError:
        return None


def _predictors(runs: dict[str, list[dict]]) -> list[str]:
    """The evaluated metrics the runs recorded (FID-family and mixture metrics), in a fixed
    order: the objective's kind first as the table lists them."""
    names = {k for summaries in runs.values() for x in summaries for k, v in x.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)
             and (k.startswith(grouping.METRIC_PREFIXES) or k in grouping.MIXTURE_DIRECTIONS)}
    return sorted(names)


@dataclass
class Search:
    metric: str
    lower: bool
    grid: pd.DataFrame  # one row per setting: key, label, values, n, mean, ci_low, ci_high, rank
    record: dict
    cost: dict  # "grid"/"halving": jobs, batches, seconds
    rungs: list[dict] = field(default_factory=list)  # budget, settings, rho vs grid, ...
    exact: dict = field(default_factory=dict)  # compared, equal, differing
    predictors: list[dict] = field(default_factory=list)  # metric, settings, distinct, rho
    winners: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what is not like for like
    markdown: str = ""


def _seeds(seeds) -> str:
    return "{" + ", ".join(str(s) for s in sorted(seeds, key=grouping.order_key)) + "}"


def _same(a, b) -> bool:
    """Equal to the bit; NaN equals NaN (two identical failed evaluations)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _jobs(sweep_dir: Path) -> list[tuple[Path, dict]]:
    return [(p, s) for p in sorted(sweep_dir.iterdir())
            if p.is_dir() and (s := read_summary(p))]


def seed_of(summary: dict):
    """The run's seed (its identity's, else summary.json's)."""
    identity = summary.get("identity")
    return identity.get("seed") if isinstance(identity, dict) and "seed" in identity \
        else summary.get("seed")


def _cost(sweep_dir: Path, jobs: list[tuple[Path, dict]], notes: list[str]) -> dict:
    """Jobs, batches and training seconds over every job dir of a sweep, each net of the run
    it continued; a job whose donor's summary cannot be read is named (its seconds then
    include the donor's)."""
    cost = {"jobs": 0, "batches": 0, "seconds": 0.0}
    for path, summary in jobs:
        if summary.get("extended_from") and not _donor(path, summary):
            notes.append(f"{sweep_dir.name}/{path.name}: the run it continued has no readable "
                         "summary.json, so its seconds include that run's")
        batches, seconds = own_cost(path, summary)
        cost["jobs"] += 1
        cost["batches"] += batches
        cost["seconds"] += seconds
    return cost


def analyse(halving_dir: Path | str, grid_dir: Path | str) -> Search:
    halving_dir, grid_dir = Path(halving_dir), Path(grid_dir)
    try:
        record = halving_report.read(halving_dir)
        if record and record.get("rungs"):
            top = record["ladder"][-1]
            if "budget" not in record:  # every line below names the budget
                raise KeyError("budget")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SearchError(f"{halving_dir / halving_report.RECORD}: not a halving record the "
                          f"sweeper wrote ({type(exc).__name__}: {exc}); rerun the halving "
                          "command to rewrite it") from None
    if not record or not record.get("rungs"):
        raise SearchError(f"{halving_dir}: no halving.json with a finished rung; pass the "
                          "sweep dir of a hydra/sweeper=halving sweep as the first dir")
    if not grid_dir.is_dir():
        raise SearchError(f"--against {grid_dir}: no such dir; pass the full grid's sweep dir")
    notes: list[str] = []

    # halving: every recorded job, keyed by its setting; the label the sweeper gave it
    label, by_job, rung_of, runs_at, seeds_h = {}, {}, {}, {}, {}
    metric = None
    for rung in record["rungs"]:
        for s in rung["settings"]:
            for job in s.get("jobs") or []:
                summary = read_summary(halving_dir / job) if job else {}
                key = setting_key(summary)
                if key is None:
                    notes.append(f"halving: a job of {s['setting']} at {record['budget']}="
                                 f"{rung['budget']} ({job or 'no dir'}) has no readable "
                                 "summary.json; it is in no number here")
                    continue
                label.setdefault(key, s["setting"])
                by_job[job] = (key, summary)
                rung_of.setdefault(key, {})[rung["budget"]] = s
                runs_at.setdefault(rung["budget"], {}).setdefault(key, []).append(summary)
                seeds_h.setdefault(key, set()).add(seed_of(summary))
                metric = metric or summary.get("objective_metric")

    # grid: ok runs at the top budget, by setting and seed
    grid_jobs = _jobs(grid_dir)
    values: dict[str, dict] = {}
    grid_runs: dict[tuple, tuple[Path, dict]] = {}
    for path, summary in grid_jobs:
        key = setting_key(summary)
        if key is None or summary.get("status") != "ok" or summary.get("epochs") != top:
            continue
        theirs = summary.get("objective_metric")
        if metric and theirs and theirs != metric:
            raise SearchError(f"--against {grid_dir}: {path.name} ranks by {theirs}, the "
                              f"halving sweep by {metric}; train the grid with the same "
                              "objective (dataset.objective / fid.objective)")
        metric = metric or theirs
        seed = seed_of(summary)
        if (key, seed) in grid_runs:
            raise SearchError(f"--against {grid_dir}: {grid_runs[(key, seed)][0].name} and "
                              f"{path.name} are the same setting and seed; keep one (a grid "
                              "dir holds one run per setting and seed)")
        grid_runs[(key, seed)] = (path, summary)
        values.setdefault(key, {})[seed] = objective_value(summary)[1] if not metric else (
            math.nan if summary.get(metric) is None else float(summary[metric]))
    if not values:
        raise SearchError(f"--against {grid_dir}: no finished run at the top budget "
                          f"({record['budget']}={top}); run the grid at that budget first")
    missing = [label[k] for k in label if k not in values]
    if missing:
        raise SearchError(f"--against {grid_dir}: the grid has no finished run of "
                          f"{len(missing)} halving setting(s), e.g. {missing[0]}; the grid "
                          "must train every setting of the halving sweep at its top budget")
    lower = _lower(metric)
    for key in label:
        if set(values[key]) != seeds_h[key]:
            notes.append(f"{label[key]}: the grid's finished seeds "
                         f"{_seeds(values[key])} are not the halving sweep's "
                         f"{_seeds(seeds_h[key])}")

    rows = []
    for key, by_seed in values.items():
        if key not in label:
            continue  # a setting the halving sweep did not search
        vals = [by_seed[seed] for seed in sorted(by_seed, key=grouping.order_key)]
        rows.append({"key": key, "label": label[key], "values": vals,
                     **grouping.interval(vals)})
        if not np.isfinite(rows[-1]["mean"]):
            notes.append(f"{label[key]}: no finite {metric} in the grid; ranked last")
    grid = pd.DataFrame(rows)
    sign = 1 if lower else -1
    grid["score"] = sign * grid["mean"]
    grid = grid.sort_values(["score", "label"], na_position="last").reset_index(drop=True)
    grid["rank"] = grid["score"].rank(method="min", na_option="bottom").astype(int)

    cost = {"grid": _cost(grid_dir, grid_jobs, notes),
            "halving": _cost(halving_dir, _jobs(halving_dir), notes)}
    search = Search(metric=metric or "objective", lower=lower, grid=grid, record=record,
                    cost=cost, notes=notes)

    # each rung's ranking against the grid's, on the settings the rung trained
    grid_mean = dict(zip(grid["key"], grid["mean"]))
    for index, rung in enumerate(record["rungs"]):
        keys = [k for k, r in rung_of.items() if rung["budget"] in r]
        pairs = [(rung_of[k][rung["budget"]]["mean"], grid_mean[k]) for k in keys
                 if rung_of[k][rung["budget"]]["mean"] is not None and k in grid_mean]
        rho = grouping.spearman([a for a, _ in pairs], [sign * b for _, b in pairs])
        best = min((k for k in keys), key=lambda k: (rung_of[k][rung["budget"]]["rank"],
                                                     label[k]))
        nxt = (halving_report.agreement(rung, record["rungs"][index + 1])
               if index + 1 < len(record["rungs"]) else None)
        distinct = len({rung_of[k][rung["budget"]]["mean"] for k in keys})
        search.rungs.append({"budget": rung["budget"], "settings": len(keys), "pairs": len(pairs),
                             "distinct": distinct, "rho_grid": rho, "best": label[best],
                             "best_grid_rank": int(grid.loc[grid["key"] == best, "rank"].iloc[0]),
                             "next": nxt})

    # which metric, measured at the lowest rung (every setting trained there), predicts the
    # full budget's objective: a lower rung could rank by it instead
    lowest = record["rungs"][0]["budget"]
    for name in _predictors(runs_at.get(lowest, {})):
        pairs = []
        for key, summaries in runs_at[lowest].items():
            vals = [float(x[name]) for x in summaries if x.get("status") == "ok"
                    and isinstance(x.get(name), (int, float)) and math.isfinite(x[name])]
            if len(vals) == len(summaries) and key in grid_mean:
                pairs.append((float(np.mean(vals)) * (1 if _lower(name) else -1),
                              sign * grid_mean[key]))
        rho = grouping.spearman([a for a, _ in pairs], [b for _, b in pairs])
        search.predictors.append({"metric": name, "settings": len(pairs),
                                  "distinct": len({a for a, _ in pairs}), "rho": rho})

    # the halving runs at the top budget against the grid's runs of the same setting and seed
    compared, equal, differing, unchecked = 0, 0, [], []
    for job, (key, summary) in sorted(by_job.items()):
        if summary.get("epochs") != top or summary.get("status") != "ok":
            continue
        twin = grid_runs.get((key, seed_of(summary)))
        if twin is None:
            continue
        mine, theirs = _metrics(summary), _metrics(twin[1])
        images = _final_image(halving_dir / job, summary), _final_image(*twin)
        if None in images or not all(isinstance(x.get(k), (int, float)) for x in (mine, theirs)
                                     for k in ("batches_done", "objective")):
            unchecked.append(job)  # nothing to compare is no proof of equality
            continue
        compared += 1
        keys = sorted(set(mine) | set(theirs))
        differ = [k for k in keys if not _same(mine.get(k, "absent"), theirs.get(k, "absent"))]
        if images[0] != images[1]:
            differ.append("final sample image")
        if differ:
            differing.append(f"{job} ({', '.join(differ)})")
        else:
            equal += 1
    if unchecked:
        notes.append(f"not compared for exactness (no final sample image or no objective on "
                     f"one side): {', '.join(unchecked)}")
    search.exact = {"compared": compared, "equal": equal, "differing": differing}

    # the winners and the regret
    best = grid.iloc[0]
    final = record["rungs"][-1]["settings"]
    pick_label = min(final, key=lambda s: (s["rank"], s["setting"]))["setting"]
    pick = grid[grid["label"] == pick_label].iloc[0]
    within = (bool(best["ci_low"] <= pick["mean"] <= best["ci_high"])
              if np.isfinite(best["ci_low"]) else None)
    overlap = (bool(pick["ci_low"] <= best["ci_high"] and best["ci_low"] <= pick["ci_high"])
               if np.isfinite(best["ci_low"]) and np.isfinite(pick["ci_low"]) else None)
    search.winners = {"grid": best.to_dict(), "halving": pick.to_dict(),
                      "regret": float(sign * (pick["mean"] - best["mean"])),
                      "within": within, "overlap": overlap,
                      "complete": len(record["rungs"]) == len(record["ladder"])}
    return search


def axis_effects(grid: pd.DataFrame) -> list[dict]:
    """Per swept override value (from the settings' labels, ``key=value`` words): how many
    settings have it, the mean of their grid means, their best rank, how many are in the
    grid's best third. Axes in label order, values in first-seen order."""
    words = [str(label).split() for label in grid["label"]]
    if not all(all("=" in w for w in ws) for ws in words):
        return []
    third = max(1, len(grid) // 3)
    keys = list(dict.fromkeys(w.split("=", 1)[0] for ws in words for w in ws))
    out = []
    for key in keys:
        values = list(dict.fromkeys(w for ws in words for w in ws if w.split("=", 1)[0] == key))
        values.sort(key=lambda w: grouping.order_key(w.split("=", 1)[1]))
        for word in values:
            rows = grid[[word in ws for ws in words]]
            out.append({"override": word, "settings": len(rows),
                        "mean": float(rows["mean"].mean()),
                        "best_rank": int(rows["rank"].min()),
                        "top": int((rows["rank"] <= third).sum())})
    return out
