"""The comparison table of a sweep: one row per job, the seed's table beside ours.

    gansweep-table outputs/multirun/2026-11-28_10-00-00 [more sweep or run dirs ...]

Works on any sweep dir, finished or not: a job's status comes from its summary.json
(ok, running, diverged, failed with the first line of its error, interrupted), ``stopped``
for a job whose process died without a word (resumable), ``missing`` for a job dir
without a summary. Writes, into the (first) dir: ``table.csv``, ``table.md`` (sample grids
linked), ``table.html`` (self-contained, images embedded, click a header to sort),
``montage.png`` (final grids side by side, labelled) and each job's ``curves.png``.
Rows that differ only in seed are grouped (``gansweep.grouping``: mean, std, n, 95%
Student-t interval per metric, ranks with ties): ``table_groups.csv``, the first section of
``table.md``/``table.html`` (per-seed rows below, behind a toggle in the HTML), and the
sweep's ``curves_<metric>.png`` and ``precision_recall.png`` (``gansweep.plots``).
Runs automatically at the end of every multirun (``AggregateCallback``).
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from hydra.experimental.callback import Callback
from PIL import Image, ImageDraw

from gansweep import grouping, plots

# Headline numbers of the 2-D mixture benchmarks, shown in place of FID (gansweep.mixtures).
MIXTURE_METRICS = ("modes_covered", "modes_total", "high_quality", "kl_to_uniform")
SEED_BATCHES = 100 * 468  # the seed's budget: 100 epochs of 468 batches
STATUS_ORDER = ("ok", "running", "stopped", "interrupted", "diverged", "failed", "missing")


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


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError):
        return None


def _overrides(job: Path) -> dict[str, str]:
    out = {}
    for item in _read_yaml(job / ".hydra" / "overrides.yaml") or []:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def _recorded_overrides(job: Path) -> dict[str, Any]:
    """The job's overridden keys with the values its run recorded (summary.json's config);
    the override text only for keys that are not config values (e.g. +experiment)."""
    summary = _read_json(job / "summary.json")
    recorded = (summary or {}).get("config")
    out: dict[str, Any] = {}
    for key, text in _overrides(job).items():
        value = _select(recorded, key) if isinstance(recorded, dict) else None
        out[key] = _fmt(value) if value is not None and not isinstance(value, (dict, list)) \
            else text
    return out


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


def _select(cfg: dict | None, dotted: str) -> Any:
    node: Any = cfg or {}
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def job_config(job: Path, summary: dict | None) -> dict:
    """The job's settings from its own record (summary.json's resolved config, written by
    the run that produced its numbers); .hydra/config.yaml, which every launch into the dir
    rewrites, only for jobs without one (failed before training, or older runs)."""
    recorded = (summary or {}).get("config")
    return recorded if isinstance(recorded, dict) else (
        _read_yaml(job / ".hydra" / "config.yaml") or {})


def seed_differences(row: dict[str, Any], settings: dict | None) -> list[str]:
    """Table columns where the row differs from its seed preset's settings."""
    out = []
    for column, seed_value in (settings or {}).items():
        value = row.get(column)
        if value is None or not math.isclose(float(value), float(seed_value), rel_tol=1e-9):
            out.append(f"{column}={_fmt(value)} (seed {_fmt(seed_value)})")
    return out


def job_row(job: Path) -> dict[str, Any]:
    summary = _read_json(job / "summary.json")
    cfg = job_config(job, summary)
    status = job_status(summary)
    s = summary or {}
    gan_type = s.get("gan_type") or _select(cfg, "gan_type.name")
    sample = s.get("final_sample") or s.get("last_sample")
    row = {
        "job": job.name,
        "name": s.get("name") or _select(cfg, "name"),
        "gan_type": gan_type,
        "dataset": _select(cfg, "dataset.name"),
        "seed": _select(cfg, "seed"),
        "d_lr": _select(cfg, "optimizer.d.lr"), "d_decay": _select(cfg, "optimizer.d.decay"),
        "g_lr": _select(cfg, "optimizer.g.lr"), "g_decay": _select(cfg, "optimizer.g.decay"),
        "eps0": _select(cfg, "kernel.eps") if gan_type == "coulomb" else None,
        "seed_row": _select(cfg, "reference.row"), "seed_fid_inception": _select(cfg, "reference.fid"),
        "status": status,
        "error": s.get("error") if status in ("failed", "diverged", "interrupted") else None,
        "epochs_done": s.get("epochs_done"), "epochs": s.get("epochs", _select(cfg, "trainer.epochs")),
        "batches_done": s.get("batches_done"), "wall_seconds": s.get("wall_seconds"),
        "sample": str(job / sample) if sample and (job / sample).exists() else None,
        "path": str(job),
    }
    if row["seed_row"] is not None:
        differs = seed_differences(row, _select(cfg, "reference.settings"))
        row["vs_seed"] = ("not comparable: " + ", ".join(differs)) if differs else "seed settings"
        if differs:  # another configuration than the seed's row: no seed FID beside it
            row["seed_fid_inception"] = None
    for key, value in s.items():  # every FID the run computed, one column per extractor
        if (key.startswith(("fid_", "floor_", "best_") + grouping.METRIC_PREFIXES)
                or key in MIXTURE_METRICS) and \
                isinstance(value, (int, float)):
            row[key] = value
    return row


def collect(roots: list[Path]) -> pd.DataFrame:
    jobs = [job for root in roots for job in find_jobs(Path(root))]
    rows = [job_row(job) for job in jobs]
    overrides = [_recorded_overrides(job) for job in jobs]
    varying = sorted({k for o in overrides for k in o if not k.startswith("hydra.")
                      and len({o2.get(k) for o2 in overrides}) > 1})
    for row, o in zip(rows, overrides):
        for key in varying:
            row[f"param:{key}"] = o.get(key)
    frame = pd.DataFrame(rows)
    return add_seed_comparison(frame)


# ----------------------------------------------------------------------------- analysis
def metric_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("fid_")]


def primary_metric(frame: pd.DataFrame) -> str | None:
    """The FID the ranking uses: Inception (the seed's metric) when present, else the first."""
    columns = [c for c in metric_columns(frame) if frame[c].notna().any()]
    for preferred in ("fid_inception", "fid_lenet"):
        if preferred in columns:
            return preferred
    return columns[0] if columns else None


def add_seed_comparison(frame: pd.DataFrame) -> pd.DataFrame:
    """Ranks of our FID and the seed's FID among the rows that have both."""
    metric = primary_metric(frame)
    frame["rank"] = pd.NA
    frame["seed_rank"] = pd.NA
    frame["rank_agrees"] = pd.NA
    if metric is None or "seed_fid_inception" not in frame:
        return frame
    both = frame[metric].notna() & frame["seed_fid_inception"].notna() & (frame["status"] == "ok")
    if both.sum() >= 2:
        frame.loc[both, "rank"] = frame.loc[both, metric].rank(method="min").astype(int)
        frame.loc[both, "seed_rank"] = frame.loc[both, "seed_fid_inception"].rank(method="min").astype(int)
        frame.loc[both, "rank_agrees"] = frame.loc[both, "rank"] == frame.loc[both, "seed_rank"]
    return frame


def findings(frame: pd.DataFrame) -> list[str]:
    """Plain-sentence checks of the seed author's claims against this table."""
    metric = primary_metric(frame)
    lines = []
    counts = frame["status"].value_counts()
    lines.append("Jobs: " + ", ".join(f"{counts[s]} {s}" for s in STATUS_ORDER if s in counts) + ".")
    lines += mixture_findings(frame)
    if metric is None:
        if "modes_covered" not in frame:
            lines.append("No FID in this sweep (fid=none, or no job finished).")
        return lines
    ok = frame[(frame["status"] == "ok") & frame[metric].notna()]
    lines.append(f"Ranking metric: {metric} (lower is better).")
    if "vs_seed" in frame:
        apart = frame[frame["vs_seed"].fillna("").str.startswith("not comparable")]
        if len(apart):
            lines.append(f"{len(apart)} row(s) differ from their seed preset's settings "
                         f"({', '.join(apart['job'])}): no seed FID or rank beside them.")
    seeded = ok[ok["seed_fid_inception"].notna()]
    if len(seeded) and (seeded["batches_done"] < SEED_BATCHES).any():
        lines.append(f"These runs trained {int(seeded['batches_done'].min())} to "
                     f"{int(seeded['batches_done'].max())} batches, the seed {SEED_BATCHES} "
                     "(100 epochs): their FIDs and ranking are not comparable to the seed's yet.")
    ranked = ok[ok["seed_fid_inception"].notna()]
    if len(ranked) >= 2:
        agree = int(ranked["rank_agrees"].sum())
        rho = ranked[metric].rank().corr(ranked["seed_fid_inception"].rank())
        lines.append(f"Seed ranking reproduced for {agree} of {len(ranked)} seed presets "
                     f"(Spearman rho {rho:.2f}).")
    standard, coulomb = ok[ok["gan_type"] == "standard"], ok[ok["gan_type"] == "coulomb"]
    if len(standard) and len(coulomb):
        best_std, best_c = standard[metric].min(), coulomb[metric].min()
        verdict = "holds" if best_std < best_c else "does not hold"
        lines.append(f"Claim 'the standard GAN has the lowest FID' {verdict} here "
                     f"(standard {best_std:.2f} vs best Coulomb {best_c:.2f}).")
        best = coulomb.loc[coulomb[metric].idxmin()]
        lines.append(f"Best Coulomb run: {best['name']} ({best['job']}), {metric} {best[metric]:.2f}.")
    return lines


def mixture_findings(frame: pd.DataFrame) -> list[str]:
    """Mean (min-max) modes covered and high-quality fraction per dataset and GAN type."""
    if "modes_covered" not in frame:
        return []
    ok = frame[(frame["status"] == "ok") & frame["modes_covered"].notna()]
    lines = []
    for (dataset, gan), group in ok.groupby(["dataset", "gan_type"]):
        modes, hq = group["modes_covered"], group["high_quality"]
        lines.append(
            f"{dataset} / {gan}: modes covered {modes.mean():.1f} of {int(group['modes_total'].max())} "
            f"(min {int(modes.min())}, max {int(modes.max())}), high-quality {hq.mean():.1%}, "
            f"KL to uniform {group['kl_to_uniform'].mean():.3f}, over {len(group)} run(s).")
    return lines


# ----------------------------------------------------------------------------- pictures
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(rows)
    panels = [c for c in ("d_loss", "g_loss", "eps") if c in frame and frame[c].notna().any()]
    panels += [c for c in frame.columns  # every evaluation metric logged (fid.every_epochs)
               if c.startswith(grouping.METRIC_PREFIXES) and frame[c].notna().any()]
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
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def montage(frame: pd.DataFrame, out: Path, width: int = 240) -> Path | None:
    """Final sample grids side by side, each labelled with its job and FID."""
    tiles = []
    metric = primary_metric(frame)
    for _, row in frame.iterrows():
        if not _text(row.get("sample")):
            continue
        image = Image.open(row["sample"]).convert("RGB")
        image = image.resize((width, round(image.height * width / image.width)), Image.NEAREST)
        label = f"{row['job']}"
        detail = row["status"]
        if metric and pd.notna(row.get(metric)):
            detail = f"{metric} {row[metric]:.1f}"
        tiles.append((image, label, detail))
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


# ----------------------------------------------------------------------------- writing
DISPLAY = ["job", "name", "gan_type", "dataset", "seed", "d_lr", "d_decay", "g_lr", "g_decay", "eps0"]


def display_columns(frame: pd.DataFrame) -> list[str]:
    params = [c for c in frame.columns if c.startswith("param:")]
    fids = sorted(c for c in frame.columns
                  if c.startswith(("fid_", "floor_") + grouping.METRIC_PREFIXES))
    fids += [c for c in ("best_epoch",) if c in frame.columns]
    fids += [c for c in MIXTURE_METRICS if c in frame.columns]
    tail = ["seed_fid_inception", "vs_seed", "rank", "seed_rank", "status", "epochs_done", "batches_done",
            "wall_seconds"]
    return [c for c in DISPLAY + params + fids + tail if c in frame.columns]


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _text(value: Any) -> str | None:
    """A string cell, or None for the NaN/None pandas puts in empty cells."""
    return value if isinstance(value, str) and value else None


def _status_text(row) -> str:
    error = _text(row.get("error"))
    return f"{row['status']}: {error}" if error else row["status"]


def to_markdown(frame: pd.DataFrame, base: Path) -> str:
    columns = display_columns(frame)
    header = "| " + " | ".join(columns + ["sample"]) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for _, row in frame.iterrows():
        cells = [_status_text(row) if c == "status" else _fmt(row[c]) for c in columns]
        sample = _text(row.get("sample"))
        cells.append(f"![{row['job']}]({os.path.relpath(sample, base)})" if sample else "-")
        # free text (names, errors) may hold HTML, which markdown viewers would render
        lines.append("| " + " | ".join(html.escape(c, quote=False).replace("|", "/")
                                      for c in cells[:-1]) + f" | {cells[-1]} |")
    return "\n".join(lines)


SORT_JS = """
document.querySelectorAll('th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const asc = th.dataset.asc !== 'true'; th.dataset.asc = asc;
  const key = r => { const t = r.cells[col].dataset.v ?? r.cells[col].innerText;
                     const n = parseFloat(t); return isNaN(n) ? t : n; };
  [...body.rows].sort((a, b) => { const x = key(a), y = key(b);
    return (x > y ? 1 : x < y ? -1 : 0) * (asc ? 1 : -1); }).forEach(r => body.appendChild(r));
}));
"""


def _embed(path: str | None, width: int = 160) -> str:
    if not path:
        return "-"
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img width="{width}" src="data:image/png;base64,{data}">'


def groups_markdown(groups: pd.DataFrame) -> str:
    header, body = grouping.display(groups, _fmt)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in cells) + " |" for cells in body]
    return "\n".join(lines)


def groups_html(groups: pd.DataFrame, pictures: list[Path]) -> str:
    """The seed-grouped table, then the sweep's pictures (curves, precision-recall)."""
    header, body = grouping.display(groups, _fmt)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
                   for cells in body)
    images = "".join(_embed(str(p), 480) for p in pictures)
    return (f"<h3>Settings over seeds (mean ± 95% Student-t CI; = marks a rank whose interval "
            f"overlaps another's)</h3><table><thead><tr>{head}</tr></thead><tbody>{rows}"
            f"</tbody></table><div>{images}</div>")


def to_html(frame: pd.DataFrame, notes: list[str], title: str, grouped: str = "") -> str:
    columns = display_columns(frame)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns + ["sample", "curves"])
    body = []
    for _, row in frame.iterrows():
        cells = []
        for c in columns:
            text = _status_text(row) if c == "status" else _fmt(row[c])
            raw = row[c]
            sort = "" if not isinstance(raw, (int, float)) or pd.isna(raw) else f' data-v="{raw}"'
            cells.append(f"<td{sort}>{html.escape(text)}</td>")
        curves = Path(row["path"]) / "curves.png"
        cells.append(f"<td>{_embed(_text(row.get('sample')))}</td>")
        cells.append(f"<td>{_embed(str(curves) if curves.exists() else None, 240)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px;font-size:13px}} th{{cursor:pointer;background:#eee}}</style>
</head><body><h2>{html.escape(title)}</h2><ul>{notes_html}</ul>{grouped}
<details{'' if grouped else ' open'}><summary>Per-seed rows (one per job)</summary>
<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></details>
<script>{SORT_JS}</script></body></html>
"""


class OutputError(OSError):
    """The table's output folder cannot be written."""


def aggregate(roots: list[Path | str], out_dir: Path | str | None = None,
              echo: bool = True) -> pd.DataFrame:
    roots = [Path(r) for r in roots]
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a sweep or run directory")
    out = Path(out_dir) if out_dir else roots[0]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write the table into {out} ({exc.strerror or exc}). "
                          "Fix: choose a writable folder with --out") from None
    frame = collect(roots)
    if frame.empty:
        raise FileNotFoundError(f"no jobs (folders with .hydra/ or summary.json) under "
                                f"{', '.join(map(str, roots))}")
    for path in frame["path"]:
        plot_curves(Path(path))
    notes = findings(frame)
    frame.to_csv(out / "table.csv", index=False)
    groups = grouping.group_seeds(frame, primary_metric(frame))
    groups.to_csv(out / "table_groups.csv", index=False)
    metric_cols = grouping.metric_columns(frame)
    pictures = plots.metric_curves(groups, metric_cols, out) + plots.precision_recall(groups, out)
    grouped_md = groups_markdown(groups)
    markdown = (f"## Settings over seeds\n\n{grouped_md}\n\n## Per seed\n\n"
                + to_markdown(frame, out))
    (out / "table.md").write_text(markdown + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    montage(frame, out / "montage.png")
    (out / "table.html").write_text(to_html(frame, notes, f"gansweep: {out}",
                                            groups_html(groups, pictures)))
    if echo:
        print(markdown)
        print()
        for note in notes:
            print(f"- {note}")
        print(f"\nTable: {out / 'table.md'} | {out / 'table.html'} | {out / 'table.csv'} "
              f"(per seed) | {out / 'table_groups.csv'} (over seeds)")
    return frame


class AggregateCallback(Callback):
    """Hydra callback: build the comparison table when a multirun ends."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            try:
                aggregate([sweep_dir])
            except Exception as exc:  # noqa: BLE001 - a table problem must not fail the sweep
                print(f"gansweep-table failed on {sweep_dir}: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gansweep-table", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="sweep or run directories")
    parser.add_argument("--out", help="where to write the table files (default: the first dir)")
    args = parser.parse_args(argv)
    try:
        aggregate(args.dirs, args.out)
    except (FileNotFoundError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
