"""One run, one row: dirs that hold the same run count once in a table.

A run is its identity (gansweep.identity), which every summary.json records. Two job dirs
with the same recorded identity hold the same run trained twice: a sweep dir from before a
relaunch found its runs whatever their job number (gansweep.runs.dirs) holds such pairs, and
one run can sit under two of the dirs a table is built from. Counted twice, a setting's
``n`` grows and its interval narrows with no new information.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _summary(job: Path) -> dict:
    """The job's summary.json, or {} where there is none or it is not an object (the table
    names a malformed one: gansweep.report.table)."""
    try:
        summary = json.loads((job / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def distinct_runs(jobs: list[Path]) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """The jobs, one dir per run: of the dirs recording one identity, the finished one (else
    the first) stands for the run; the same dir reached twice counts once too; a dir without
    a recorded identity (one that failed before training) is a run of its own. Returns the
    jobs kept, in their order, and per dir left out (that dir, the one kept)."""
    kept: dict[Any, int] = {}  # per run, the index of the job that stands for it
    keys, ok = [], []
    for i, job in enumerate(jobs):
        summary = _summary(job)
        recorded = summary.get("identity")
        keys.append(("identity", json.dumps(recorded, sort_keys=True))
                    if isinstance(recorded, dict) else ("dir", job.resolve()))
        ok.append(summary.get("status") == "ok")
        if keys[i] not in kept or (ok[i] and not ok[kept[keys[i]]]):
            kept[keys[i]] = i
    chosen = set(kept.values())
    repeats = [(job, jobs[kept[key]]) for i, (job, key) in enumerate(zip(jobs, keys))
               if i not in chosen and job.resolve() != jobs[kept[key]].resolve()]
    return [job for i, job in enumerate(jobs) if i in chosen], repeats


def findings(repeats: list[tuple[Any, Any]]) -> list[str]:
    """The line under a table naming the dirs it left out as repeats (none: no line)."""
    if not repeats:
        return []
    pairs = "; ".join(f"{Path(left).name} repeats {Path(kept).name}" for left, kept in repeats)
    return [f"Counted once ({len(repeats)}): {pairs} (the same identity: one run trained "
            "twice; the dir left out is not in the table)."]
