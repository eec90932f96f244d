"""Markdown cells and tables of a generated block: fixed number formats per metric kind, mean ±
half the 95% interval, a status count, a pipe table. Fixed formats are what makes a rerun on
the same dirs give the same bytes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gansweep.report import grouping
from gansweep.report.table import STATUS_ORDER

FORMATS = {"fid": ".1f", "kid": ".1f", **dict.fromkeys(("precision", "recall", "density",
                                                       "coverage", "confident", "digits"),
                                                      ".3f")}


def finite(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and bool(np.isfinite(value))


def number(metric: str, value) -> str:
    """Fixed formats (``FORMATS`` by the metric's kind, else 4 digits); '-' for no number."""
    kind = metric.split("_", 1)[0]
    return format(float(value), FORMATS.get(kind, ".4g")) if finite(value) else "-"


def interval_text(row, metric: str) -> str:
    """'mean ± half the 95% interval'; 'mean (n 1: no CI)'; '-' without a value."""
    return grouping.cell(row, metric, lambda v: number(metric, v), "(n 1: no CI)", spread=False)


def table(header: list[str], rows: list[list[str]]) -> str:
    cells = [[str(c).replace("|", "/").replace("\n", " ") for c in r] for r in [header, *rows]]
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join([lines[0], "|" + "---|" * len(header), *lines[1:]])


def statuses(statuses_: list[str]) -> str:
    counts = pd.Series(statuses_).value_counts()
    order = [s for s in STATUS_ORDER if s in counts] + sorted(set(counts.index) - set(STATUS_ORDER))
    return ", ".join(f"{counts[s]} {s}" for s in order)
