"""Seeds as an axis of the comparison table: rows that differ only in seed form a group.

Per group and metric (every ``fid_*``, ``kid_*``, ``precision_*``, ``recall_*``,
``density_*``, ``coverage_*`` column, and the mixture metrics): over the group's *ok* jobs
with a finite value, ``n``, ``mean``, ``std`` (n - 1) and a 95% Student-t confidence interval
of the mean, mean +- t(0.975, n - 1) std / sqrt(n). A group with one value has no interval
(shown as such; it ties with every other group, since nothing says it differs). Jobs that
failed, diverged or are still running count in ``jobs`` but not in ``n``.

Groups are ranked by the mean of the table's primary metric in its direction (lower FID/KID,
higher precision/recall/density/coverage), and a rank whose interval overlaps another
group's is marked as a tie (``ties`` lists the other ranks; the rank shows as ``2=``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from gansweep.fid.metrics import LOWER_IS_BETTER

METRIC_PREFIXES = tuple(f"{m}_" for m in LOWER_IS_BETTER)
MIXTURE_DIRECTIONS = {"modes_covered": False, "high_quality": False, "kl_to_uniform": True,
                      "covered_quality": False}
# Columns that say what a job computed (the settings): equal within a group, seed aside;
# a study's own (e.g. the published row a job is compared to) come as ``extra``.
# A parameter of a job whose overrides are unknown (a record without .hydra/overrides.yaml):
# a group of its own, but not named in the group's label (nothing is known to name).
UNKNOWN = "(unknown)"
SETTING_COLUMNS = ("name", "gan_type", "dataset", "d_lr", "d_decay", "g_lr", "g_decay", "eps0",
                   "study")


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Per-job metric columns (not floors, not best_*), each named by extractor."""
    cols = [c for c in frame.columns if c.startswith(METRIC_PREFIXES)]
    return cols + [c for c in MIXTURE_DIRECTIONS if c in frame.columns]


def lower_is_better(column: str) -> bool:
    if column in MIXTURE_DIRECTIONS:
        return MIXTURE_DIRECTIONS[column]
    return LOWER_IS_BETTER[column.split("_", 1)[0]]


def setting_columns(frame: pd.DataFrame, extra: tuple[str, ...] = ()) -> list[str]:
    params = [c for c in frame.columns if c.startswith("param:") and c != "param:seed"]
    return [c for c in (*SETTING_COLUMNS, *extra) if c in frame.columns] + params


def interval(values) -> dict:
    """n, mean, std (n - 1) and the 95% Student-t interval of the mean of finite values."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    n = len(v)
    out = {"n": n, "mean": float(v.mean()) if n else math.nan,
           "std": float(v.std(ddof=1)) if n > 1 else math.nan,
           "ci_low": math.nan, "ci_high": math.nan}
    if n > 1:
        half = stats.t.ppf(0.975, n - 1) * out["std"] / math.sqrt(n)
        out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
    return out


def _key(value):
    """Group keys: NaN/None all alike, numbers and strings as themselves."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    return value


def group_seeds(frame: pd.DataFrame, primary: str | None,
                extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per setting: ``group``, the setting columns (``extra``: a study's), ``seeds``,
    ``jobs``, ``ok``, and ``<metric>_{n,mean,std,ci_low,ci_high}``; ranked by ``primary``
    (see the module doc)."""
    settings = setting_columns(frame, extra)
    metrics = metric_columns(frame)
    keys = frame[settings].apply(lambda r: tuple(_key(v) for v in r), axis=1) if settings \
        else pd.Series([()] * len(frame), index=frame.index)
    rows = []
    for key, members in frame.groupby(keys, sort=False):
        ok = members[members["status"] == "ok"]
        row = dict(zip(settings, key))
        label = [str(row.get("name", "-"))] + [f"{c[6:]}={row[c]}" for c in settings
                                               if c.startswith("param:")
                                               and row[c] not in (row.get("name"), UNKNOWN)]
        row.update({"group": " ".join(label),
                    "seeds": ",".join(str(_key(s)) for s in members.get("seed", [])),
                    "jobs": len(members), "ok": len(ok), "paths": ";".join(members["path"]),
                    "job_names": ";".join(members["job"]),
                    "not_ok": ", ".join(f"{j}: {s}" for j, s in
                                        zip(members["job"], members["status"]) if s != "ok")})
        for metric in metrics:
            for stat, value in interval(ok[metric].tolist()).items():
                row[f"{metric}_{stat}"] = value
        rows.append(row)
    groups = pd.DataFrame(rows)
    return rank_groups(groups, primary)


def rank_groups(groups: pd.DataFrame, primary: str | None) -> pd.DataFrame:
    """``rank`` by the primary metric's mean, ``ties``: ranks of groups whose intervals
    overlap this one's (a one-value group's interval is unknown: it ties with all)."""
    groups["rank"], groups["ties"] = pd.NA, ""
    if primary is None or f"{primary}_mean" not in groups or groups.empty:
        return groups
    mean = groups[f"{primary}_mean"]
    ranked = mean.notna()
    if not ranked.any():
        return groups
    ascending = lower_is_better(primary)
    groups.loc[ranked, "rank"] = mean[ranked].rank(method="min", ascending=ascending).astype(int)
    lo = groups[f"{primary}_ci_low"].fillna(-math.inf)
    hi = groups[f"{primary}_ci_high"].fillna(math.inf)
    for i in groups.index[ranked]:
        others = [groups.at[j, "rank"] for j in groups.index[ranked]
                  if j != i and lo[i] <= hi[j] and lo[j] <= hi[i]]
        groups.at[i, "ties"] = ",".join(str(r) for r in sorted(set(others)))
    order = groups["rank"].fillna(len(groups) + 1).astype(int).argsort(kind="stable")
    return groups.iloc[order].reset_index(drop=True)


def order_key(value):
    """Sort key for seeds and swept values: numbers (or numeric words) in numeric order, then
    the other values as text."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def spearman(ours, theirs) -> float:
    """Spearman rho (average ranks for ties) of two equal-length sequences; NaN under 3
    pairs (two points always give ±1), where one ranking is all ties, or where a value is NaN
    (a missing value is no rank). Rounded to 12 places, so that the last bit of the
    arithmetic never shows in a printed rho (no -0.00)."""
    a, b = pd.Series(list(ours), dtype=float), pd.Series(list(theirs), dtype=float)
    if len(a) < 3 or a.isna().any() or b.isna().any() or a.nunique() < 2 or b.nunique() < 2:
        return math.nan
    return round(float(a.rank().corr(b.rank())), 12) + 0.0


def rank_text(row) -> str:
    if row["rank"] is pd.NA or pd.isna(row["rank"]):
        return "-"
    return f"{int(row['rank'])}{'=' if row['ties'] else ''}"


def cell(row, metric: str, fmt, single: str = "(n 1, no CI)", spread: bool = True) -> str:
    """'mean ± half-width (sd std, n N)' for a table cell (``spread=False``: without the
    parenthesis); ``mean single`` for one value; '-' when no value."""
    n = row.get(f"{metric}_n")
    if not n or pd.isna(n):
        return "-"
    mean = row[f"{metric}_mean"]
    if n == 1:
        return f"{fmt(mean)} {single}"
    half = row[f"{metric}_ci_high"] - mean
    text = f"{fmt(mean)} ± {fmt(half)}"
    return f"{text} (sd {fmt(row[f'{metric}_std'])}, n {int(n)})" if spread else text


def display(groups: pd.DataFrame, fmt, extra: tuple[str, ...] = ()
            ) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the grouped table (for markdown and HTML)."""
    metrics = [c[:-5] for c in groups.columns if c.endswith("_mean")]
    settings = [c for c in groups.columns if c in (*SETTING_COLUMNS, *extra)
                or c.startswith("param:")]
    settings = [c for c in settings if groups[c].map(_key).nunique() > 1 or c == "name"]
    header = ["rank", "ties", "group"] + [c for c in settings if c != "name"] + \
        ["seeds", "ok/jobs"] + [f"{m} (mean ± 95% CI)" for m in metrics] + ["not ok"]
    body = []
    for _, row in groups.iterrows():
        body.append([rank_text(row), row["ties"] or "-", row["group"]]
                    + [fmt(row[c]) for c in settings if c != "name"]
                    + [row["seeds"], f"{row['ok']}/{row['jobs']}"]
                    + [cell(row, m, fmt) for m in metrics] + [row["not_ok"] or "-"])
    return header, body
