"""Sweep-level pictures for the table: metric-vs-epoch curves per group (mean over seeds with
a min-max band) and the precision-recall scatter of all groups (95% intervals as bars).

Each job's curve is its ``metrics.jsonl`` evaluation rows (``fid.every_epochs``) followed by
its final values from ``summary.json`` at its last epoch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from gansweep.grouping import lower_is_better


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def job_curve(job: Path, metric: str) -> dict[int, float]:
    """{epoch: value} of one job's evaluations of ``metric``, the final one included."""
    out: dict[int, float] = {}
    path = job / "metrics.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                break
            if metric in row and row[metric] is not None:
                out[int(row["epoch"])] = float(row[metric])
    try:
        summary = json.loads((job / "summary.json").read_text())
    except (OSError, ValueError):
        return out
    if summary.get("status") == "ok" and isinstance(summary.get(metric), (int, float)):
        out[int(summary["epochs_done"]) - 1] = float(summary[metric])
    return out


def metric_curves(groups: pd.DataFrame, metrics: list[str], out_dir: Path) -> list[Path]:
    """curves_<metric>.png per metric with at least one curve of two or more points."""
    plt = _plt()
    written = []
    for metric in metrics:
        fig, ax = plt.subplots(figsize=(7, 4))
        drawn = 0
        for _, group in groups.iterrows():
            curves = [job_curve(Path(p), metric) for p in str(group["paths"]).split(";") if p]
            curves = [c for c in curves if c]
            epochs = sorted({e for c in curves for e in c})
            if len(epochs) < 2:
                continue
            table = np.array([[c.get(e, np.nan) for e in epochs] for c in curves])
            x = np.array(epochs) + 1  # epochs completed
            mean = np.nanmean(table, axis=0)
            line, = ax.plot(x, mean, marker="o", ms=3,
                            label=f"{group['group']} (n={len(curves)})")
            if len(curves) > 1:
                ax.fill_between(x, np.nanmin(table, axis=0), np.nanmax(table, axis=0),
                                color=line.get_color(), alpha=0.2)
            drawn += 1
        if drawn:
            better = "lower" if lower_is_better(metric) else "higher"
            ax.set(xlabel="epochs trained", ylabel=metric,
                   title=f"{metric} ({better} is better): mean over seeds, band min-max")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            fig.tight_layout()
            path = out_dir / f"curves_{metric}.png"
            fig.savefig(path, dpi=80)
            written.append(path)
        plt.close(fig)
    return written


def precision_recall(groups: pd.DataFrame, out_dir: Path) -> list[Path]:
    """precision_recall.png: one point per group per extractor, 95% intervals as bars."""
    plt = _plt()
    written = []
    for column in [c for c in groups.columns if c.startswith("precision_") and
                   c.endswith("_mean")]:
        extractor = column[len("precision_"):-len("_mean")]
        p, r = f"precision_{extractor}", f"recall_{extractor}"
        if f"{r}_mean" not in groups or groups[column].notna().sum() == 0:
            continue
        fig, ax = plt.subplots(figsize=(6, 5))
        for _, g in groups[groups[column].notna()].iterrows():
            def err(m):
                half = g[f"{m}_ci_high"] - g[f"{m}_mean"]
                return None if pd.isna(half) else [[half], [half]]

            ax.errorbar(g[f"{r}_mean"], g[f"{p}_mean"], xerr=err(r), yerr=err(p), fmt="o",
                        capsize=3, label=f"{g['group']} (n={int(g[f'{p}_n'])})")
        ax.set(xlabel=f"recall ({extractor})", ylabel=f"precision ({extractor})",
               xlim=(-0.02, 1.02), ylim=(-0.02, 1.02),
               title="precision vs recall per group (mean, 95% CI)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = "precision_recall.png" if extractor == "lenet" else \
            f"precision_recall_{extractor}.png"
        fig.savefig(out_dir / name, dpi=80)
        plt.close(fig)
        written.append(out_dir / name)
    return written
