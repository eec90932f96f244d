"""A successive-halving sweep's rungs in its table (``<sweep dir>/halving.json``, written by
gansweep.sweep.halving): per rung the budget, the settings it trained, their mean objective and
rank and which went up; how far each rung's ranking agrees with the next one's (Spearman's
rho on the settings both rungs trained), so a reader sees how much a low budget can be
trusted; and the steps spent, against what the full grid at the top budget would take."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from gansweep.report import grouping
from gansweep.report.table import read_summary

RECORD = "halving.json"


def read(sweep_dir: Path) -> dict | None:
    path = sweep_dir / RECORD
    return json.loads(path.read_text()) if path.exists() else None


def agreement(lower: dict, upper: dict) -> dict:
    """Spearman's rho between two rungs' mean objectives on the settings both trained (NaN
    with fewer than 3 such settings or a rung whose means are all equal)."""
    means = {s["setting"]: s["mean"] for s in upper["settings"]}
    pairs = [(s["mean"], means[s["setting"]]) for s in lower["settings"]
             if s["setting"] in means and s["mean"] is not None and means[s["setting"]] is not None]
    return {"from": lower["budget"], "to": upper["budget"], "settings": len(pairs),
            "rho": grouping.spearman([a for a, _ in pairs], [b for _, b in pairs])}


def steps(sweep_dir: Path, record: dict) -> dict:
    """Batches trained by the halving sweep (each job counts the batches it trained itself;
    an extended job not those of the run it continued) and what training every setting and
    seed at the top budget from step 0 would take."""
    spent, per_epoch = 0, None
    for rung in record["rungs"]:
        for setting in rung["settings"]:
            for job in setting.get("jobs") or []:
                summary = read_summary(sweep_dir / job) if job else {}
                spent += own_batches(summary)
                per_epoch = per_epoch or summary.get("batches_per_epoch")
    full = (record["settings"] * record.get("seeds", 1) * record["ladder"][-1] * per_epoch
            if per_epoch else None)
    return {"batches": spent, "full_grid_batches": full,
            "fraction": spent / full if full else None}


def own_batches(summary: dict) -> int:
    """The batches a job trained itself: an extended job's without those of the run it
    continued."""
    return int((summary.get("batches_done") or 0)
               - ((summary.get("extended_from") or {}).get("batches") or 0))


def rung_frame(record: dict) -> pd.DataFrame:
    """One row per setting, one column per rung: its mean objective there (and rank)."""
    rows: dict[str, dict] = {}
    for rung in record["rungs"]:
        for s in rung["settings"]:
            cell = "-" if s["mean"] is None else f"{s['mean']:.4g} (#{s['rank']})"
            rows.setdefault(s["setting"], {"setting": s["setting"]})[
                f"{record['budget']}={rung['budget']}"] = cell + (" ↑" if s["promoted"] else "")
    return pd.DataFrame(list(rows.values())).fillna("")


def summary_lines(sweep_dir: Path, record: dict) -> list[str]:
    ladder = ", ".join(str(b) for b in record["ladder"])
    lines = [f"Successive halving: {record['settings']} settings x {record.get('seeds', 1)} "
             f"seed(s), {record['budget']} = {ladder}, eta {record['eta']}; each rung keeps the "
             f"best 1/{record['eta']} by mean objective over seeds (lower is better; ↑ went up)."]
    for rung in record["rungs"]:
        tied = rung.get("tied_at_cut")
        if tied:
            lines.append(f"{record['budget']}={rung['budget']}: {tied['settings']} settings tie "
                         f"at the cut (mean objective {tied['mean']:.4g}); {tied['promoted']} "
                         "went up in grid order: this rung could not rank them.")
    for lower, upper in zip(record["rungs"], record["rungs"][1:]):
        a = agreement(lower, upper)
        rho = "n/a (fewer than 3 settings or no spread)" if math.isnan(a["rho"]) else f"{a['rho']:.2f}"
        lines.append(f"Rank agreement {record['budget']}={a['from']} -> {a['to']}: Spearman rho "
                     f"{rho} on the {a['settings']} settings both trained.")
    spent = steps(sweep_dir, record)
    if spent["full_grid_batches"]:
        lines.append(f"Batches trained: {spent['batches']:,}, {spent['fraction']:.0%} of the "
                     f"{spent['full_grid_batches']:,} the full grid at {record['budget']}="
                     f"{record['ladder'][-1]} would take.")
    return lines


def markdown(sweep_dir: Path) -> str | None:
    record = read(sweep_dir)
    if record is None or not record.get("rungs"):
        return None
    table = rung_frame(record).to_markdown(index=False, disable_numparse=True)
    return "## Successive halving\n\n" + table + "\n\n" + "\n".join(
        f"- {line}" for line in summary_lines(sweep_dir, record))


def html_parts(sweep_dir: Path) -> dict | None:
    """The rung table's header, rows and the summary lines, for table.html."""
    record = read(sweep_dir)
    if record is None or not record.get("rungs"):
        return None
    frame = rung_frame(record)
    return {"header": list(frame.columns), "rows": frame.values.tolist(),
            "lines": summary_lines(sweep_dir, record)}
