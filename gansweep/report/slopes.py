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
    """Least-squares slope (change per epoch) of a run's last ``last`` evaluations
    (``curve``: {0-based epoch: value}), and their epochs (1-based); NaN with fewer than
    two."""
    epochs = sorted(curve)[-last:]
    if len(epochs) < 2:
        return math.nan, [e + 1 for e in epochs]
    return (float(np.polyfit(epochs, [curve[e] for e in epochs], 1)[0]),
            [e + 1 for e in epochs])


def fit(curves: list[dict[int, float]], last: int = LAST) -> dict:
    """A setting's slope over its runs: grouping.interval of the per-run slopes, ``last``,
    and ``window``, the first and last epoch (1-based) any run's line went through."""
    fits = [slope(c, last) for c in curves]
    window = sorted({e for _, epochs in fits for e in epochs})
    return {**grouping.interval([f for f, _ in fits]), "last": last,
            "window": (window[0], window[-1]) if window else None}


def epochs_to_close(gap: float, leader_slope: float, slope_: float, lower: bool) -> float:
    """How many more epochs a setting ``gap`` behind the leader (in the metric's units, > 0:
    behind) needs to draw level if both slopes held; inf where the gap does not close, NaN
    without a gap or a slope."""
    if not (math.isfinite(gap) and math.isfinite(leader_slope) and math.isfinite(slope_)) \
            or gap <= 0:
        return math.nan
    closing = (leader_slope - slope_) if lower else (slope_ - leader_slope)
    return gap / closing if closing > 0 else math.inf


def header(metric: str) -> list[str]:
    return ["setting", "ok seeds", "epochs fitted", f"{metric} change per epoch (mean ± 95% CI)",
            "behind the leader", "epochs to draw level at these slopes"]


def rows(fits: dict[str, dict], groups: pd.DataFrame, metric: str, fmt) -> list[list[str]]:
    """A row per setting in the table's order (the leader: the best mean, rank 1); [] when no
    run has a slope. ``fmt`` formats a value of ``metric``."""
    fitted = {g: v for g, v in fits.items() if v["n"]}
    if not fitted:
        return []
    lower = grouping.lower_is_better(metric)
    means = groups.set_index("group")[f"{metric}_mean"]
    ranked = means.dropna()
    leader = (ranked.idxmin() if lower else ranked.idxmax()) if len(ranked) else None
    out = []
    for group in groups["group"]:
        fit_ = fitted.get(group)
        if fit_ is None:
            out.append([group, "0", "-", "-", "-", "-"])
            continue
        cell = grouping.cell({f"s_{k}": v for k, v in fit_.items()}, "s", fmt, "(n 1: no CI)",
                             spread=False)
        first, last = fit_["window"]
        gap, level = "-", "-"
        if group == leader:
            gap = "leader"
        elif leader in fitted and pd.notna(means[group]):
            behind = (1 if lower else -1) * (means[group] - means[leader])
            gap = fmt(behind)
            more = epochs_to_close(behind, fitted[leader]["mean"], fit_["mean"], lower)
            level = ("-" if math.isnan(more) else "does not close" if math.isinf(more)
                     else f"{math.ceil(more)} (epoch {last + math.ceil(more)})")
        out.append([group, str(fit_["n"]), f"{first}-{last}", cell, gap, level])
    return out


def note(last: int) -> str:
    return (f"Slope: a least-squares line through each ok run's last {last} evaluations, "
            "mean ± 95% Student-t interval over seeds (an interval spanning 0: no measured "
            "direction). To draw level: the gap to the leader (rank 1) divided by how much "
            "faster the setting's mean slope is than the leader's; arithmetic on the measured "
            "slopes, not a forecast (curves flatten).")
