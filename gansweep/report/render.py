"""Renderers of the comparison table: markdown (pandas ``to_markdown``) and a self-contained
HTML report (a Jinja2 template, ``gansweep/report/assets/report.html.j2``).

The HTML page answers the sweep's question first: the ranking chart (per group of seeds,
95% intervals, a study's published numbers beside ours), then a compact table that fits a
1366-px window (name, varying parameters, metrics, rank, status, sample thumbnail), every
other column one click away (``<details>``). Images are embedded (data URIs) so the page
can be mailed or moved alone; a click opens one large; a click on a header sorts (numbers
as numbers, missing values last both ways).
"""

from __future__ import annotations

import base64
import html
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from gansweep.report import grouping
from gansweep.report.table import compact_columns, fmt, full_columns


def _text(value: Any) -> str | None:
    """A string cell, or None for the NaN/None pandas puts in empty cells."""
    return value if isinstance(value, str) and value else None


def status_text(row) -> str:
    error = _text(row.get("error"))
    return f"{row['status']}: {error}" if error else str(row["status"])


# ----------------------------------------------------------------------------- markdown
def _markdown(frame: pd.DataFrame) -> str:
    cells = frame.map(lambda c: str(c).replace("|", "/").replace("\n", " "))
    return cells.to_markdown(index=False, disable_numparse=True)


def runs_markdown(frame: pd.DataFrame, base: Path) -> str:
    """The per-job table; free text escaped (markdown viewers render HTML), samples linked."""
    columns = full_columns(frame)
    text = pd.DataFrame([[html.escape(status_text(r) if c == "status" else fmt(r[c]), quote=False)
                          for c in columns] for _, r in frame.iterrows()], columns=columns)
    text["sample"] = [f"![{r['job']}]({os.path.relpath(r['sample'], base)})"
                      if _text(r.get("sample")) else "-" for _, r in frame.iterrows()]
    return _markdown(text)


def groups_markdown(groups: pd.DataFrame, extra: tuple[str, ...] = ()) -> str:
    header, body = grouping.display(groups, fmt, extra)
    return _markdown(pd.DataFrame(body, columns=header))


def summary_text(groups: pd.DataFrame, metric: str | None, published: list[tuple[str, str]],
                 notes: list[str]) -> str:
    """What the end of a sweep prints: one line per setting (rank, setting, the ranking
    metric's mean with its 95% interval, seeds, a study's published number beside it), then
    the findings. The full table is table.md / table.html."""
    if groups.empty:
        return "no settings to rank"
    ranked = f"{metric}_mean" in groups if metric else False
    columns = [c for c, _ in published if c in groups]
    header = ["rank", "setting", f"{metric} (mean [95% CI])" if ranked else "status",
              "ok/jobs"] + [label for c, label in published if c in groups]
    body = []
    for _, row in groups.iterrows():
        mean = row.get(f"{metric}_mean") if ranked else None
        if isinstance(mean, (int, float)) and mean == mean:
            low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
            value = fmt(mean)
            if isinstance(low, (int, float)) and low == low and high == high:
                value += f" [{fmt(low)}, {fmt(high)}]"
        else:
            value = row["not_ok"] or "ok"
        body.append([grouping.rank_text(row), row["group"], value, f"{row['ok']}/{row['jobs']}"]
                    + [fmt(row[c]) for c in columns])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip()
             for line in (header, *body)]
    return "\n".join(lines + [f"- {n}" for n in notes])


# ----------------------------------------------------------------------------- html
@lru_cache(maxsize=None)
def _embed(path: str | None) -> str | None:
    """The image as a data URI (the page stays one file), or None."""
    if not path or not Path(path).exists():
        return None
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None or value is pd.NA:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN: missing


def _cell(column: str, row, text: str | None = None) -> dict:
    value = row.get(column)
    return {"text": fmt(value) if text is None else text, "v": _number(value),
            "cls": "num" if _number(value) is not None else column.split(":")[0]}


def runs_table(frame: pd.DataFrame) -> dict:
    """The compact per-job table: its header and one dict per row (cells, sample, curves)."""
    columns = compact_columns(frame)
    rows = []
    for _, r in frame.iterrows():
        cells = []
        for c in columns:
            if c == "status":
                cell = {"text": str(r["status"]), "v": None, "cls": "status",
                        "title": status_text(r)}
            elif c == "name":
                cell = {"text": fmt(r["name"]), "v": None, "cls": "name", "sub": r["job"]}
            else:
                cell = _cell(c, r)
            cells.append(cell)
        curves = Path(r["path"]) / "curves.png"
        rows.append({"job": r["job"], "status": r["status"], "cells": cells,
                     "sample": _embed(_text(r.get("sample"))),
                     "curves": _embed(str(curves) if curves.exists() else None)})
    header = [c.removeprefix("param:") for c in columns]
    return {"header": header, "rows": rows}


def full_table(frame: pd.DataFrame) -> dict:
    columns = full_columns(frame)
    rows = [[_cell(c, r, status_text(r) if c == "status" else None) for c in columns]
            for _, r in frame.iterrows()]
    return {"header": columns, "rows": rows}


def groups_table(groups: pd.DataFrame, published: tuple[str, ...] = ()) -> dict:
    """The compact table over seeds: rank, group, seeds, ok/jobs, each metric's mean ± half
    the 95% interval (sd and n in the tooltip), the published numbers, what did not finish."""
    metrics = [c[:-5] for c in groups.columns if c.endswith("_mean")]
    published = tuple(c for c in published if c in groups)
    rows = []
    for _, g in groups.iterrows():
        cells = [{"text": grouping.rank_text(g), "v": _number(g["rank"]), "cls": "num",
                  "title": f"ties with {g['ties']}" if g["ties"] else ""},
                 {"text": g["group"], "v": None, "cls": "name"},
                 {"text": g["seeds"], "v": None, "cls": "seeds"},
                 {"text": f"{g['ok']}/{g['jobs']}", "v": _number(g["ok"]), "cls": "num"}]
        for m in metrics:
            half = g[f"{m}_ci_high"] - g[f"{m}_mean"]
            text = fmt(g[f"{m}_mean"]) + ("" if pd.isna(half) else f" ± {fmt(half)}")
            cells.append({"text": text, "v": _number(g[f"{m}_mean"]), "cls": "num",
                          "title": grouping.cell(g, m, fmt)})
        cells += [_cell(c, g) for c in published]
        cells.append({"text": g["not_ok"] or "-", "v": None, "cls": "status"})
        rows.append({"job": g["group"], "cells": cells})
    header = ["rank", "group", "seeds", "ok/jobs"] + metrics + list(published) + ["not ok"]
    return {"header": header, "rows": rows}


def groups_full(groups: pd.DataFrame, extra: tuple[str, ...] = ()) -> dict:
    header, body = grouping.display(groups, fmt, extra)
    return {"header": header,
            "rows": [[{"text": t, "v": None, "cls": ""} for t in cells] for cells in body]}


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("gansweep.report", "assets"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2")


def to_html(frame: pd.DataFrame, groups: pd.DataFrame, notes: list[str], title: str,
            chart: Path | None, pictures: list[Path], metric: str | None,
            published: tuple[str, ...] = (), settings: tuple[str, ...] = (),
            rungs: dict | None = None) -> str:
    """The report page (see the module doc). ``published``: the studies' compact columns;
    ``settings``: their setting columns (shown in the full table over seeds); ``rungs``: a
    successive-halving sweep's rung table (gansweep.report.halving.html_parts)."""
    seeded = bool(len(groups)) and int(groups["jobs"].max()) > 1
    try:
        return _template().render(
            title=title, notes=notes, metric=metric, chart=_embed(str(chart) if chart else None),
            seeded=seeded, runs=runs_table(frame), full=full_table(frame),
            groups=groups_table(groups, published) if seeded else None,
            groups_full=groups_full(groups, settings) if seeded else None,
            pictures=[(p.name, _embed(str(p))) for p in pictures], rungs=rungs)
    finally:
        _embed.cache_clear()
