"""The slope at the end of each setting's curve, and what it says about the setting's gap to
the leader: a least-squares line through each ``ok`` run's last evaluations (``LAST``, or
``gansweep-table --report --slope-epochs K``), its mean ± 95% interval over seeds, and how
many more epochs a setting behind the leader would need to draw level if both mean slopes
held. That last figure is arithmetic on measured slopes, not a forecast: GAN curves flatten
and jump, so it says which gaps are closing at the end of the budget and how fast, and the
reading must not stretch it further."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gansweep.report import grouping

LAST = 3  # each run's slope: a line through its last 3 evaluations


def slope(curve: dict[int, float], last: int = LAST) -> tuple[float, list[int]]:
    """Least-squares slope (change per epoch) of a run's last ``last`` finite evaluations
    (``curve``: {0-based epoch: value}), and their epochs (1-based); NaN with fewer than
    two."""
    if last < 2:
        raise ValueError(f"a slope needs at least 2 evaluations, not {last}")
    epochs = sorted(e for e, v in curve.items() if math.isfinite(v))[-last:]
    if len(epochs) < 2:
        return math.nan, [e + 1 for e in epochs]
    return (float(np.polyfit(epochs, [curve[e] for e in epochs], 1)[0]),
            [e + 1 for e in epochs])


def fit(curves: list[dict[int, float]], last: int = LAST) -> dict:
    """A setting's slope over its runs: grouping.interval of the per-run slopes (``n``: the
    runs that have one), ``last``, and ``windows``, the distinct (first, last) epochs (1-based)
    of the runs' fitted lines."""
    fits = [slope(c, last) for c in curves]
    windows = sorted({(e[0], e[-1]) for f, e in fits if math.isfinite(f)})
    return {**grouping.interval([f for f, _ in fits]), "last": last, "windows": windows}


def epochs_to_close(gap: float, leader_slope: float, slope_: float, lower: bool) -> float:
    """How many more epochs a setting ``gap`` behind the leader (in the metric's units, > 0:
    behind) needs to draw level if both slopes held; inf where the gap does not close, NaN
    without a gap or a slope."""
    if not (math.isfinite(gap) and math.isfinite(leader_slope) and math.isfinite(slope_)) \
            or gap <= 0:
        return math.nan
    closing = (leader_slope - slope_) if lower else (slope_ - leader_slope)
    return gap / closing if closing > 0 else math.inf


def rate(value: float) -> str:
    """A slope in 3 significant digits (a slope is often far smaller than the values); no
    "-0"."""
    if not math.isfinite(value):
        return "-"
    text = format(value, ".3g")
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def header(metric: str) -> list[str]:
    return ["setting", "runs with a slope (of ok)", "epochs fitted",
            f"{metric} change per epoch (mean ± 95% CI)", "behind the leader",
            "epochs to draw level at these slopes"]


def rows(fits: dict[str, dict], groups: pd.DataFrame, metric: str, fmt) -> list[list[str]]:
    """A row per setting in the table's order; [] when no run has a slope. The leader: the
    best mean (several: tied); ``fmt`` formats a value of ``metric``."""
    if not any(v["n"] for v in fits.values()):
        return []
    lower = grouping.lower_is_better(metric)
    sign = 1 if lower else -1
    means = groups.set_index("group")[f"{metric}_mean"]
    best = (means.min() if lower else means.max()) if means.notna().any() else math.nan
    leaders = [g for g in groups["group"] if means[g] == best]
    lead = next((fits[g] for g in leaders if fits.get(g, {}).get("n")), None)
    out = []
    for _, g in groups.iterrows():
        group = g["group"]
        fit_ = fits.get(group) or {"n": 0, "windows": []}
        cell = grouping.cell({f"s_{k}": v for k, v in fit_.items()}, "s", rate,
                             "(n 1: no CI)", spread=False) if fit_["n"] else "-"
        windows = ", ".join(f"{a}-{b}" for a, b in fit_["windows"]) or "-"
        gap, level = "-", "-"
        if group in leaders:
            gap = "leader" if len(leaders) == 1 else "leader (tied)"
        elif pd.notna(means[group]) and math.isfinite(best):
            behind = sign * (means[group] - best)
            gap = fmt(behind)
            if not fit_["n"]:
                level = "no slope"
            elif lead is None:
                level = "the leader has no slope"
            else:
                more = epochs_to_close(behind, lead["mean"], fit_["mean"], lower)
                end = fit_["windows"][-1][1]
                level = ("-" if math.isnan(more) else "does not close" if math.isinf(more)
                         else f"{math.ceil(more)} (epoch {end + math.ceil(more)})")
        out.append([group, f"{fit_['n']} of {int(g['ok'])}", windows, cell, gap, level])
    return out


def note(last: int) -> str:
    return (f"Slope: a least-squares line through each ok run's last {last} finite "
            "evaluations (fewer where a run has fewer; a run with one has none), mean ± 95% "
            "Student-t interval over the runs with a slope (an interval spanning 0: no "
            "measured direction). Behind the leader: the gap between the final means. To draw "
            "level: that gap divided by how much faster the setting's mean slope is than the "
            "leader's; arithmetic on the measured slopes, not a forecast (curves flatten).")
