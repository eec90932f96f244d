"""``gansweep-eval``'s records (``<run>/evals/*.json``) in the table: each one is of the
checkpoint it scored, so a record of an older G than the run's (a run extended in place, or
trained again, after it was scored) is left out with a warning, never shown beside the newer
run; and the columns the others make are named across the table, a re-score that only gives
a run's own number again adding none."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

log = logging.getLogger(__name__)

CHECKPOINTS = {"final": "checkpoints/last.pt", "best": "checkpoints/best.pt"}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_stamp(job: Path, which: str) -> dict:
    """What a re-score records of the checkpoint it scored (``which``: final or best): its
    path in the run, size, modification time and sha256."""
    path = job / CHECKPOINTS[which]
    stat = path.stat()
    return {"file": CHECKPOINTS[which], "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "sha256": file_sha256(path)}


def scored_position(summary: dict | None, which: str) -> tuple[int | None, int | None]:
    """(epoch, step) of the G that ``summary.json`` reports as the run's ``which``, counted
    as ``gansweep-eval`` records them (from 0: the final G of 2 epochs is epoch 1)."""
    s = summary or {}
    if which == "best":
        return s.get("best_epoch"), s.get("best_step")
    return tuple(v - 1 if isinstance(v, int) else None
                 for v in (s.get("epochs_done"), s.get("batches_done")))


def stale_rescore(record: dict, job: Path, summary: dict | None) -> str | None:
    """Why a ``gansweep-eval`` record no longer scores the run's G (a run extended in place,
    or trained again, after it was scored), or None. The record's epoch and step must be
    those summary.json reports for that G, and where the record names the checkpoint's
    sha256 and the file is in the run, the file must still hold it (hashed only when its
    size or modification time changed). A record or summary without them is not judged."""
    which = "best" if record.get("which") == "best" else "final"
    have = (record.get("epoch"), record.get("step"))
    want = scored_position(summary, which)
    if None not in have and None not in want and have != want:
        return (f"it scored the {which} G of step {have[1]}, the run's {which} G is now of "
                f"step {want[1]}")
    stamp = record.get("checkpoint")
    if isinstance(stamp, dict) and stamp.get("sha256"):
        path = job / CHECKPOINTS[which]
        if path.is_file():
            stat = path.stat()
            if ((stat.st_size, stat.st_mtime_ns) != (stamp.get("size"), stamp.get("mtime_ns"))
                    and file_sha256(path) != stamp["sha256"]):
                return f"{CHECKPOINTS[which]} has changed since it was scored"
    return None


def rescored(job: Path, summary: dict | None) -> list[tuple[str, str, float]]:
    """(column, settings hash, value) of the job's re-scored evaluations (``gansweep-eval``,
    ``<job>/evals/``): the final G's metrics under their own names (``fid_inception``), the
    best G's as ``best_<metric>``. A record of an older G than the run's (``stale_rescore``)
    is left out, with a warning: its number must not stand beside the newer run."""
    out = []
    for path in sorted((job / "evals").glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict):
            continue
        stale = stale_rescore(record, job, summary)
        if stale:
            log.warning("warning: %s left out of the table: %s. Fix: gansweep-eval %s with "
                        "the same fid settings (hash %s) scores the current one", path, stale,
                        job, record.get("hash", "?"))
            continue
        prefix = "best_" if record.get("which") == "best" else ""
        out += [(prefix + key, record.get("hash", "?"), value)
                for key, value in (record.get("values") or {}).items()
                if isinstance(value, (int, float)) and not key.startswith("floor_")]
    return out


def name_rescored(rows: list[dict], found: list[list[tuple[str, str, float]]]) -> None:
    """Add the re-scored columns to the rows, named across the whole table: a metric's plain
    name when one setting gave it and no run's own evaluation did, else ``name@hash`` (the
    settings' hash, as in the file names), so no number is shown under another's name.

    A re-score that also asked for a metric the runs already had, with the same samples,
    reproduces their numbers and adds nothing: such a column (one name and hash) is left out
    when every value in it reproduces its run's own (``reproduces``). The decision is per
    column, never per cell, so a column that stays keeps every run's value and its mean is
    over the same runs as the others."""
    columns: dict[tuple[str, str], list[tuple[dict, float]]] = {}
    for row, entries in zip(rows, found):
        for name, digest, value in entries:
            columns.setdefault((name, digest), []).append((row, value))
    kept = {key: cells for key, cells in columns.items()
            if not all(key[0] in row and reproduces(row[key[0]], value) for row, value in cells)}
    hashes: dict[str, set[str]] = {}
    for name, digest in kept:
        hashes.setdefault(name, set()).add(digest)
    own = {key for row in rows for key in row}
    for (name, digest), cells in kept.items():
        plain = len(hashes[name]) == 1 and name not in own
        for row, value in cells:
            row[name if plain else f"{name}@{digest}"] = value


def reproduces(own, value) -> bool:
    """Whether a re-scored value is the run's own number again: equal to 12 significant
    digits (relative 1e-12), or both NaN. The same samples scored again agree to the last few
    bits only (float64 sums in another order, e.g. another BLAS thread count: 13.466019658466461
    and ...472 for a KID); other samples or other arithmetic (float32, another device) differ
    by 1e-7 relative or far more, and stay shown."""
    try:
        own, value = float(own), float(value)
    except (TypeError, ValueError):
        return False
    return (math.isnan(own) and math.isnan(value)) or math.isclose(own, value, rel_tol=1e-12)
