"""Pictures for the table: each job's ``curves.png``; the sweep's ranking chart (the ranking
metric per group, 95% intervals, a study's published numbers beside ours), metric-vs-epoch
curves per group (mean over seeds with a min-max band), the precision-recall scatter of all
groups (95% intervals as bars) and ``montage.png`` (final grids side by side).

Each job's metric curve is its ``metrics.jsonl`` evaluation rows (``fid.every_epochs``)
followed by its final values from ``summary.json`` at its last epoch."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from gansweep.report import grouping
from gansweep.report.grouping import lower_is_better


def _plt():
    # on first use: the Agg backend is chosen before pyplot loads, and a table that draws
    # nothing never loads matplotlib
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
    """precision_recall_<extractor>.png: one point per group, 95% intervals as bars."""
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
        name = f"precision_recall_{extractor}.png"
        fig.savefig(out_dir / name, dpi=80)
        plt.close(fig)
        written.append(out_dir / name)
    return written


def plot_curves(job: Path) -> Path | None:
    """curves.png: d_loss, g_loss, eps and (if logged) every metric over training steps."""
    path = job / "metrics.jsonl"
    if not path.exists():
        return None
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            break
    if not rows:
        return None
    plt = _plt()
    frame = pd.DataFrame(rows)
    panels = [c for c in ("d_loss", "g_loss", "eps") if c in frame and frame[c].notna().any()]
    panels += [c for c in frame.columns  # every evaluation metric logged (fid.every_epochs)
               if c.startswith(grouping.METRIC_PREFIXES) and frame[c].notna().any()]
    if not panels or "step" not in frame:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.2 * len(panels)), sharex=True,
                             squeeze=False)
    for ax, column in zip(axes[:, 0], panels):
        data = frame[["step", column]].dropna()
        ax.plot(data["step"], data[column], lw=0.8, marker="o" if len(data) < 30 else None, ms=3)
        ax.set_ylabel(column)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("batches trained")
    fig.suptitle(job.name)
    fig.tight_layout()
    out = job / "curves.png"
    try:
        fig.savefig(out, dpi=80)
    finally:  # also when the job dir is read-only: no figure left open
        plt.close(fig)
    return out


def ranking_chart(groups: pd.DataFrame, metric: str | None, out: Path,
                  published: list[tuple[str, str]] = ()) -> Path | None:
    """ranking.png: ``metric`` per group (bar: mean; line: 95% interval; dots: the seeds' own
    values), best on top; beside it a panel per study with its published number of each
    group's row (``published``: (column, label) pairs; another metric, so another axis)."""
    if metric is None or f"{metric}_mean" not in groups or groups[f"{metric}_mean"].isna().all():
        return None
    plt = _plt()
    shown = groups[groups[f"{metric}_mean"].notna()]
    numbers = {c: pd.to_numeric(shown[c], errors="coerce") for c, _ in published if c in shown}
    panels = [(c, label) for c, label in published if c in numbers and numbers[c].notna().any()]
    height = 1.2 + 0.32 * len(shown)
    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(11, height), sharey=True,
                             squeeze=False, gridspec_kw={"width_ratios": [2] + [1] * len(panels)})
    y = np.arange(len(shown))[::-1]
    ax = axes[0, 0]
    mean = shown[f"{metric}_mean"].to_numpy(float)
    half = (shown[f"{metric}_ci_high"] - shown[f"{metric}_mean"]).to_numpy(float)
    ax.barh(y, mean, color="#7aa6d6", height=0.6)
    ax.errorbar(mean, y, xerr=np.where(np.isnan(half), 0, half), fmt="none", ecolor="black",
                capsize=3)
    for yi, (_, g) in zip(y, shown.iterrows()):
        values = [v for v in _member_values(g, metric)]
        ax.plot(values, [yi] * len(values), "k.", ms=4, alpha=0.6)
    better = "lower" if lower_is_better(metric) else "higher"
    ax.set(yticks=y, xlabel=f"{metric} ({better} is better)",
           title=f"ours: {metric} per setting (mean, 95% CI, seeds as dots)")
    seeded = bool((shown[f"{metric}_n"] > 1).any())  # one run per setting: plain ranks
    ax.set_yticklabels([_label(g, seeded) for _, g in shown.iterrows()], fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    for ax, (column, label) in zip(axes[0, 1:], panels):
        ax.barh(y, numbers[column].to_numpy(float), color="#e39b5b", height=0.6)
        ax.set(xlabel=column, title=label)
        ax.title.set_fontsize(9)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path = out / "ranking.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _label(group, seeded: bool) -> str:
    """'2= name params': the rank (= where intervals overlap, once seeds give intervals)."""
    rank = grouping.rank_text(group) if seeded else \
        ("-" if pd.isna(group.get("rank")) else str(int(group["rank"])))
    return f"{rank}  {str(group['group'])[:48]}"


def _member_values(group, metric: str) -> list[float]:
    """The group's ok jobs' own values of ``metric`` (from their summary.json)."""
    values = []
    for path in str(group.get("paths") or "").split(";"):
        try:
            summary = json.loads((Path(path) / "summary.json").read_text())
        except (OSError, ValueError):
            continue
        value = summary.get(metric)
        if summary.get("status") == "ok" and isinstance(value, (int, float)):
            values.append(float(value))
    return values


def montage(frame: pd.DataFrame, out: Path, metric: str | None, width: int = 240) -> Path | None:
    """Final sample grids side by side, each labelled with its job and metric."""
    tiles = []
    for _, row in frame.iterrows():
        if not isinstance(row.get("sample"), str):
            continue
        image = Image.open(row["sample"]).convert("RGB")
        image = image.resize((width, round(image.height * width / image.width)), Image.NEAREST)
        detail = row["status"]
        if metric and pd.notna(row.get(metric)):
            detail = f"{metric} {row[metric]:.1f}"
        tiles.append((image, str(row["job"]), detail))
    if not tiles:
        return None
    cols = min(4, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    tile_h = max(t[0].height for t in tiles) + 30
    sheet = Image.new("RGB", (cols * (width + 10) + 10, rows * tile_h + 10), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, label, detail) in enumerate(tiles):
        x, y = 10 + (i % cols) * (width + 10), 10 + (i // cols) * tile_h
        draw.text((x, y), label[:38], fill="black")
        draw.text((x, y + 11), detail, fill="black")
        sheet.paste(image, (x, y + 26))
    sheet.save(out)
    return out
