"""The generic comparison table of a sweep: one row per job, read from its own record.

A job's row: its name, GAN type, dataset, seed, optimiser and kernel settings, the parameters
that vary across the sweep (``param:<key>``), every metric its run computed (one column per
extractor: ``fid_lenet`` and ``fid_inception`` are never mixed), ``rank`` by the primary
metric, status and progress, and its sample grid. Settings come from ``summary.json``'s
resolved config (the record of the run that produced the numbers), not from ``.hydra/``,
which every launch into the dir rewrites.

Nothing here knows a particular published study: runs that name one
(``reference.study``) get its columns, ranks and findings from its plug-in module
(``gansweep.report.studies``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException

from gansweep import identity
from gansweep.fid import registry
from gansweep.report import grouping, studies
from gansweep.report import repeats as repeats_of
# name_rescored and reproduces are also imported from here, where they were first
from gansweep.report.rescores import name_rescored, reproduces, rescored  # noqa: F401

log = logging.getLogger(__name__)

# Headline numbers of the 2-D mixture benchmarks, shown in place of FID (gansweep.data.mixtures).
MIXTURE_METRICS = ("modes_covered", "modes_total", "high_quality", "kl_to_uniform",
                   "covered_quality")
STATUS_ORDER = ("ok", "running", "stopped", "interrupted", "diverged", "failed", "missing")
SETTINGS = ("job", "name", "gan_type", "dataset", "seed", "d_lr", "d_decay", "g_lr", "g_decay",
            "eps0")
PROGRESS = ("status", "epochs_done", "batches_done", "wall_seconds")


# ----------------------------------------------------------------------------- reading
def find_jobs(root: Path) -> list[Path]:
    """Job dirs under a sweep dir (or the run dir itself)."""
    if (root / "summary.json").exists() or (root / ".hydra").is_dir():
        return [root]
    jobs = [p for p in root.iterdir() if p.is_dir() and ((p / ".hydra").is_dir() or
                                                          (p / "summary.json").exists())]
    return sorted(jobs, key=_job_sort_key)


def _job_sort_key(path: Path):
    head = path.name.split("_", 1)[0]
    return (0, int(head), path.name) if head.isdigit() else (1, 0, path.name)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text()) if path.exists() else None
    except (OSError, yaml.YAMLError):
        return None


def load_summary(job: Path) -> tuple[dict | None, str | None]:
    """(the job's summary.json, None); (None, None) where it has none yet; (None, why) where
    the file is there but is no JSON object (summary.json is written by rename, so a reader
    never sees one half written: such a file was damaged)."""
    path = job / "summary.json"
    if not path.exists():
        return None, None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:120]
        return None, f"{path} cannot be read ({type(exc).__name__}: {first})"
    if not isinstance(data, dict):
        return None, f"{path} holds a JSON {type(data).__name__}, not an object"
    return data, None


def read_summary(job: Path) -> dict:
    """A job's summary.json ({} where there is none yet or it cannot be read)."""
    return load_summary(job)[0] or {}


def select(cfg: dict | None, dotted: str) -> Any:
    node: Any = cfg or {}
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def fmt(value: Any) -> str:
    """A cell's text: '-' for missing, 4 significant digits for small or large floats."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else \
            f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _recorded_overrides(job: Path, recorded: dict | None) -> dict[str, Any] | None:
    """The job's overridden keys with the values its run recorded (summary.json's config);
    the override text only for keys that are not config values (e.g. +experiment). None
    where they are unknown: no .hydra/overrides.yaml (a record without it), or an edited one."""
    path = job / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    items = [str(item) for item in _read_yaml(path) or []]
    try:  # Hydra's own grammar: quoting, lists, +/~/++ prefixes are read as Hydra read them
        overrides = OverridesParser.create().parse_overrides(items)
    except OverrideParseException:
        return None  # an edited overrides.yaml: the recorded config still gives the settings
    out: dict[str, Any] = {}
    for override in overrides:
        key = override.key_or_group
        if override.is_delete():
            out[key] = "(deleted)"
            continue
        line = override.input_line or ""
        text = line[line.index("=") + 1:] if "=" in line else ""  # as the user typed it
        value = select(recorded, key) if isinstance(recorded, dict) else None
        out[key] = fmt(value) if value is not None and not isinstance(value, (dict, list)) \
            else text
    return out


def _setting(overrides: dict[str, Any] | None, recorded: dict | None, key: str) -> Any:
    """A job's value of an overridden ``key``: as overridden; else the value its config
    recorded (a job that did not override it ran with that); else None."""
    if overrides and key in overrides:
        return overrides[key]
    value = select(recorded, key)
    return fmt(value) if value is not None and not isinstance(value, (dict, list)) else None


def _peer_key(job: Path, row: dict[str, Any]) -> tuple:
    """What makes two jobs the same setting but for the seed: the identity their summary.json
    recorded, seed left out; else their recorded settings (grouping.SETTING_COLUMNS)."""
    recorded = read_summary(job).get("identity")
    if isinstance(recorded, dict):
        return ("identity", json.dumps({k: v for k, v in recorded.items() if k != "seed"},
                                       sort_keys=True))
    return ("settings", *(fmt(row.get(c)) for c in grouping.SETTING_COLUMNS))


def _fill_unknown(values: dict[str, list], overrides: list, peers: list[tuple]) -> None:
    """A job whose overrides are unknown takes, for a key it has no value of, the one value
    its known peers (same ``_peer_key``) have, where they agree: a record that lost its
    overrides.yaml groups with its setting's other seeds, not as a setting of its own.
    Without such peers the value is ``grouping.UNKNOWN`` (not "not overridden")."""
    for i in (i for i, o in enumerate(overrides) if o is None):
        for column in values.values():
            if column[i] is None:
                seen = {column[j] for j, o in enumerate(overrides)
                        if o is not None and peers[j] == peers[i]}
                column[i] = seen.pop() if len(seen) == 1 else grouping.UNKNOWN


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_status(summary: dict | None) -> str:
    if summary is None:
        return "missing"
    status = summary.get("status", "missing")
    if status == "running":
        host, pid = summary.get("host"), summary.get("pid")
        if pid and host == socket.gethostname() and not _pid_alive(int(pid)):
            return "stopped"
    return status


def job_config(job: Path, summary: dict | None) -> dict:
    """The job's settings from its own record (summary.json's resolved config);
    .hydra/config.yaml only for jobs without one (failed before training, or older runs)."""
    recorded = (summary or {}).get("config")
    return recorded if isinstance(recorded, dict) else (
        _read_yaml(job / ".hydra" / "config.yaml") or {})


def job_row(job: Path) -> dict[str, Any]:
    summary, unreadable = load_summary(job)
    if unreadable:  # shown as missing, and said: not a run that never started
        log.warning("warning: %s; its job shows as 'missing'. Fix: restore the file, or "
                    "relaunch the run's command (it writes the summary again)", unreadable)
    cfg = job_config(job, summary)
    status = job_status(summary)
    s = summary or {}
    gan_type = s.get("gan_type") or select(cfg, "gan_type.name")
    sample = s.get("final_sample") or s.get("last_sample")
    row = {
        "job": job.name, "name": s.get("name") or select(cfg, "name"),
        "gan_type": gan_type, "dataset": select(cfg, "dataset.name"), "seed": select(cfg, "seed"),
        "d_lr": select(cfg, "optimizer.d.lr"), "d_decay": select(cfg, "optimizer.d.decay"),
        "g_lr": select(cfg, "optimizer.g.lr"), "g_decay": select(cfg, "optimizer.g.decay"),
        "eps0": select(cfg, "kernel.eps") if gan_type == "coulomb" else None,
        "status": status,
        "error": (s.get("error") if status in ("failed", "diverged", "interrupted") else
                  "summary.json unreadable" if unreadable else None),
        "epochs_done": s.get("epochs_done"), "epochs": s.get("epochs", select(cfg, "trainer.epochs")),
        "batches_done": s.get("batches_done"), "wall_seconds": s.get("wall_seconds"),
        "sample": str(job / sample) if sample and (job / sample).exists() else None,
        "path": str(job),
    }
    for key, value in s.items():  # every metric the run computed, one column per extractor
        if (key.startswith(("fid_", "floor_", "best_") + grouping.METRIC_PREFIXES)
                or key in MIXTURE_METRICS) and isinstance(value, (int, float)):
            row[key] = value
    name = studies.study_name(cfg)
    if name:
        row["study"] = name
        row.update(studies.load(name).job_columns(cfg, row))
    return row


def collect(roots: list[Path]) -> pd.DataFrame:
    """One row per run under the roots (gansweep.report.repeats); ``param:*`` columns for keys
    that vary; ranks. ``frame.attrs["repeats"]``: the dirs left out as repeats of a run."""
    jobs, repeats = repeats_of.distinct_runs(
        [job for root in roots for job in find_jobs(Path(root))])
    rows = [job_row(job) for job in jobs]
    name_rescored(rows, [rescored(job, read_summary(job)) for job in jobs])
    configs = [read_summary(job).get("config") for job in jobs]
    overrides = [_recorded_overrides(job, cfg) for job, cfg in zip(jobs, configs)]
    keys = {k for o in overrides if o for k in o
            if not k.startswith("hydra.") and k not in identity.PLACEMENT}
    values = {k: [_setting(o, cfg, k) for o, cfg in zip(overrides, configs)] for k in keys}
    _fill_unknown(values, overrides, [_peer_key(job, row) for job, row in zip(jobs, rows)])
    # an unknown value does not make a key vary (nor, where it varies, name a group)
    varying = sorted(k for k in keys if len(set(values[k]) - {grouping.UNKNOWN}) > 1)
    for i, row in enumerate(rows):
        for key in varying:
            row[f"param:{key}"] = values[key][i]
    frame = pd.DataFrame(rows)
    frame.attrs["repeats"] = [(str(left), str(kept)) for left, kept in repeats]
    if frame.empty:
        return frame
    metric = primary_metric(frame)
    add_rank(frame, metric)
    for study in frame_studies(frame):
        study.annotate(frame, metric)
    return frame


def frame_studies(frame: pd.DataFrame) -> list:
    """The study modules the frame's rows name, in order of first appearance."""
    if "study" not in frame:
        return []
    return [studies.load(n) for n in dict.fromkeys(frame["study"].dropna())]


# ----------------------------------------------------------------------------- analysis
def primary_metric(frame: pd.DataFrame) -> str | None:
    """The FID the ranking uses: of the FID columns with a value, one whose extractor gives
    FIDs comparable with published ones (the registry's ``published``: Inception) first,
    then the other registered ones, then the first of the rest."""
    extractors = [c[len("fid_"):] for c in frame.columns
                  if c.startswith("fid_") and frame[c].notna().any()]
    ranked = registry.published_first(extractors)
    return f"fid_{ranked[0]}" if ranked else None


def add_rank(frame: pd.DataFrame, metric: str | None) -> None:
    """``rank`` of the ok jobs by the primary metric (in its direction), where at least two
    have it: one ranked job says nothing."""
    frame["rank"] = pd.NA
    if metric is None:
        return
    ranked = frame[metric].notna() & (frame["status"] == "ok")
    if ranked.sum() >= 2:
        frame.loc[ranked, "rank"] = frame.loc[ranked, metric].rank(
            method="min", ascending=grouping.lower_is_better(metric)).astype(int)


def findings(frame: pd.DataFrame) -> list[str]:
    """Plain sentences under the table: job counts, the ranking metric, mixture summaries,
    then each study's checks of its published claims."""
    metric = primary_metric(frame)
    counts = frame["status"].value_counts()
    lines = ["Jobs: " + ", ".join(f"{counts[s]} {s}" for s in STATUS_ORDER if s in counts) + "."]
    lines += repeats_of.findings(frame.attrs.get("repeats") or [])
    lines += mixture_findings(frame)
    if metric is None:
        if "modes_covered" not in frame:
            lines.append("No FID in this sweep (fid=none, or no job finished).")
        return lines
    better = "lower" if grouping.lower_is_better(metric) else "higher"
    lines.append(f"Ranking metric: {metric} ({better} is better).")
    for study in frame_studies(frame):
        lines += study.findings(frame, metric)
    return lines


def mixture_findings(frame: pd.DataFrame) -> list[str]:
    """Mean (min-max) modes covered and high-quality fraction per dataset and GAN type."""
    if "modes_covered" not in frame:
        return []
    ok = frame[(frame["status"] == "ok") & frame["modes_covered"].notna()]
    lines = []
    for (dataset, gan), group in ok.groupby(["dataset", "gan_type"]):
        modes, hq = group["modes_covered"], group["high_quality"]
        # KL is infinite (null in summary.json) when no point is near any mode
        kl = group["kl_to_uniform"].mean() if "kl_to_uniform" in group else float("nan")
        lines.append(
            f"{dataset} / {gan}: modes covered {modes.mean():.1f} of {int(group['modes_total'].max())} "
            f"(min {int(modes.min())}, max {int(modes.max())}), high-quality {hq.mean():.1%}, "
            f"KL to uniform {'n/a (no point near a mode)' if math.isnan(kl) else f'{kl:.3f}'}, "
            f"over {len(group)} run(s).")
    return lines


# ----------------------------------------------------------------------------- columns
def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Metrics in the compact table: per-extractor metrics and the mixture headline numbers."""
    return grouping.metric_columns(frame)


def full_columns(frame: pd.DataFrame) -> list[str]:
    """Every column of the full table, in reading order (settings, parameters, metrics, the
    studies' columns, rank, progress)."""
    params = [c for c in frame.columns if c.startswith("param:")]
    metrics = sorted(c for c in frame.columns
                     if c.startswith(("fid_", "floor_") + grouping.METRIC_PREFIXES))
    metrics += [c for c in ("best_epoch",) if c in frame.columns]
    metrics += [c for c in MIXTURE_METRICS if c in frame.columns]
    extra = ["study"] + [c for s in frame_studies(frame) for c in s.COLUMNS]
    columns = list(SETTINGS) + params + metrics + ["rank"] + extra + list(PROGRESS)
    return [c for c in dict.fromkeys(columns) if c in frame.columns]


def compact_columns(frame: pd.DataFrame) -> list[str]:
    """name, the varying parameters, the metrics, the studies' published numbers, rank,
    status: what fits a 1366-px window (the sample thumbnail comes after)."""
    params = [c for c in frame.columns if c.startswith("param:")
              and not frame[c].equals(frame["name"])]
    published = [c for s in frame_studies(frame) for c in s.COMPACT]
    columns = ["rank", "name"] + params + metric_columns(frame) + published + ["status"]
    return [c for c in dict.fromkeys(columns) if c in frame.columns]
