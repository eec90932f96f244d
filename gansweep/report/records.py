"""A sweep's records: what ``gansweep-table --report`` reads from each job dir, copied into a
folder small enough to commit, so that a published block regenerates from the repo after the
sweep dir is gone (a lost machine takes checkpoints, every epoch's grid and the training rows).

    python -m gansweep.report.records <sweep or run dirs> --into docs/results/<folder>

Per job dir with a summary.json, whatever its status (an unfinished run is published with how
far it got): ``summary.json``; ``extended_from.json`` (a run that continued a shorter one);
``evals/*.json`` (the ``gansweep-eval`` re-scores); ``.hydra/overrides.yaml`` (the settings a
sweep varied, by name); ``metrics.jsonl`` with only its evaluation rows (rows without
``d_loss``: the curves and slopes; the training rows are left out for size); the lines of
each ``*.log`` that name its torch threads; and the sample grid the summary names (its final
one, else its last). Generating the report from the records gives the same bytes as from the
job dirs (tests/test_records.py).

A job copied again replaces its earlier record. Its dir name ends in the hash of the run's
identity (gansweep.runs.dirs), while the job number in front is the launch's: the same run
relaunched into a fresh sweep dir gets another number, so a record of the same name and hash
under another number is removed rather than kept as a second seed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from gansweep.report.publish import THREADS
from gansweep.report.table import find_jobs


def identity(job_name: str) -> str:
    """``4_seed_coulomb_1_ff33dce5`` -> ``seed_coulomb_1_ff33dce5`` (the job number dropped)."""
    head, _, rest = job_name.partition("_")
    return rest if head.isdigit() and rest else job_name


def evaluation_rows(text: str) -> str:
    """The rows of a metrics.jsonl holding an evaluation (no ``d_loss``), as they were."""
    return "".join(line + "\n" for line in text.splitlines()
                   if line.strip() and '"d_loss"' not in line)


def copy_job(job: Path, into: Path) -> Path:
    """``job``'s record as ``into/<job's name>`` (replacing its earlier record and any of the
    same run under another job number); returns the record's dir."""
    summary = json.loads((job / "summary.json").read_text())
    for old in into.glob(f"*_{identity(job.name)}"):
        if old.is_dir() and identity(old.name) == identity(job.name):
            shutil.rmtree(old)
    out = into / job.name
    out.mkdir(parents=True)
    shutil.copy2(job / "summary.json", out / "summary.json")
    for name in ("extended_from.json", ".hydra/overrides.yaml"):
        if (job / name).is_file():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(job / name, out / name)
    for record in sorted((job / "evals").glob("*.json")):
        (out / "evals").mkdir(exist_ok=True)
        shutil.copy2(record, out / "evals" / record.name)
    if (job / "metrics.jsonl").is_file():
        (out / "metrics.jsonl").write_text(
            evaluation_rows((job / "metrics.jsonl").read_text(errors="replace")))
    for log in sorted(job.glob("*.log")):
        lines = [line for line in log.read_text(errors="replace").splitlines()
                 if THREADS.search(line)]
        if lines:
            (out / log.name).write_text("\n".join(lines) + "\n")
    sample = summary.get("final_sample") or summary.get("last_sample")
    if sample and (job / sample).is_file():
        (out / sample).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(job / sample, out / sample)
    return out


def copy_records(roots: list[Path], into: Path) -> list[Path]:
    """Every job with a summary.json under ``roots`` into ``into``; the records written."""
    jobs = [job for root in roots for job in find_jobs(Path(root))
            if (job / "summary.json").is_file()]
    into.mkdir(parents=True, exist_ok=True)
    if any(into.resolve() == job.resolve().parent for job in jobs):
        raise ValueError(f"{into} is one of the sweep dirs read; name another folder")
    return [copy_job(job, into) for job in jobs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gansweep.report.records", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="sweep or run directories")
    parser.add_argument("--into", type=Path, required=True,
                        help="the records folder (created; a job's earlier record is replaced)")
    args = parser.parse_args(argv)
    missing = [d for d in args.dirs if not d.is_dir()]
    if missing:
        print(f"error: not a directory: {', '.join(map(str, missing))}", file=sys.stderr)
        return 1
    try:
        written = copy_records(args.dirs, args.into)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not written:
        print(f"error: no job with a summary.json under {', '.join(map(str, args.dirs))}",
              file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for r in written for p in r.rglob("*") if p.is_file())
    print(f"{len(written)} records into {args.into} ({size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
