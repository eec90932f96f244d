"""A study over seeds as a generated markdown block: ``gansweep-table <dirs> --report <out.md>``.

Reads the job dirs only and writes one block between two markers: into a new file, or into a
page holding the markers (docs/results.md: the reading around the block stays hand-written).
Per setting (seeds grouped by ``gansweep.report.grouping``): statuses, final epoch, mean ± 95%
interval over the ``ok`` seeds, rank with ties, a named study's published number and rank;
the other metrics; the mean after every epoch; Spearman rho against the study per seed and on
the means, with a 95% interval from ``RESAMPLES`` resamples of the seeds (``RNG_SEED``);
curves (``gansweep.report.plots.metric_curves``) and final grids (``plots.montage``, a row per
setting) as linked PNGs; every job's progress, wall time, device, precision, torch threads
(from its log: summary.json lacks them). An unfinished run is listed with how far it got and
enters no mean; nothing missing is estimated. Same dirs and options, same bytes (no time, no
absolute path, fixed formats, seeded resampling). Machine, commit and command: the caller's.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import stats

from gansweep.report import grouping, plots, slopes
from gansweep.report.blocks import check_page, splice
from gansweep.report.markdown import finite, interval_text, number, statuses, table
from gansweep.report.table import collect, frame_studies, primary_metric

RESAMPLES = 2000
RNG_SEED = 0
TITLE = "Seed presets over seeds"
THREADS = re.compile(r"\((\d+) torch threads\)")


def same_kind(frame: pd.DataFrame, groups: pd.DataFrame, metric: str) -> str | None:
    """Our metric of the published number's kind (the studies' ``PUBLISHED_METRIC``, e.g.
    fid_inception from ``gansweep-eval fid=inception``, or its one re-scored ``name@hash``),
    where the report ranks by another and some setting has it; None where the frame's studies
    name different kinds or none, or several re-scores of it would compete."""
    kinds = {getattr(study, "PUBLISHED_METRIC", None) for study in frame_studies(frame)}
    alike = kinds.pop() if len(kinds) == 1 else None
    if not alike or alike == metric:
        return None
    found = [c for c in grouping.metric_columns(frame) if (c == alike or c.startswith(
        f"{alike}@")) and f"{c}_n" in groups and groups[f"{c}_n"].fillna(0).gt(0).any()]
    return found[0] if len(found) == 1 and found[0] != metric else None


def bootstrap_rho(values: list[np.ndarray], published: list[float], resamples: int = RESAMPLES,
                  seed: int = RNG_SEED) -> tuple[float, float, int]:
    """95% percentile interval of the rho of the settings' means against ``published`` when
    each setting's values (its seeds) are drawn with replacement; and how many resamples gave
    a rho (one whose means all tie gives none). With one seed per setting every resample is
    the data itself: no interval (a point would read as certainty about seeds never run)."""
    if len(values) < 3 or any(len(v) == 0 for v in values) or all(len(v) == 1 for v in values):
        return math.nan, math.nan, 0
    rng = np.random.default_rng(seed)
    means = np.column_stack([np.asarray(v, float)[rng.integers(0, len(v), (resamples, len(v)))]
                             .mean(axis=1) for v in values])
    ours = stats.rankdata(means, axis=1)  # average ranks, as grouping.spearman()
    ours -= ours.mean(axis=1, keepdims=True)
    theirs = stats.rankdata(np.asarray(published, float))
    theirs -= theirs.mean()
    norm = np.sqrt((ours ** 2).sum(axis=1) * (theirs ** 2).sum())
    valid = norm > 0  # all means tied: no rho
    rho = (ours[valid] @ theirs) / norm[valid]
    if not len(rho):
        return math.nan, math.nan, 0
    low, high = np.percentile(rho, [2.5, 97.5])
    return float(low), float(high), int(valid.sum())


@dataclass
class Study:
    """What the report shows, as numbers (the tests read these) and as the markdown block."""

    frame: pd.DataFrame  # one row per job (gansweep.report.table.collect)
    groups: pd.DataFrame  # one row per setting (grouping.group_seeds), + published, study_rank
    metric: str
    rho_seeds: list[dict] = field(default_factory=list)  # seed, n, rho, ranks
    rho_means: dict = field(default_factory=dict)  # n, rho, low, high, resamples, used
    epochs: dict = field(default_factory=dict)  # group -> {epoch (1-based): (mean, n)}
    slope_epochs: int = slopes.LAST  # each run's slope: a line through its last this many
    slopes: dict = field(default_factory=dict)  # group -> slopes.fit(): per-run slopes' interval
    figures: list[Path] = field(default_factory=list)
    epochs_only: int | None = None  # --epochs: the one budget reported
    left_out: int = 0  # jobs of other budgets (or without a summary) left out
    markdown: str = ""


def torch_threads(path: str) -> str:
    """The torch threads each start of the job logged ('1', or '1,2' after a resume on
    another launcher), from its log (summary.json records only the last start's); '-' if
    none."""
    found = [n for log in sorted(Path(path).glob("*.log"))
             for n in THREADS.findall(log.read_text(errors="replace"))]
    return ",".join(dict.fromkeys(found)) or "-"


def last_evaluation(path: str, metric: str) -> str:
    curve = plots.job_curve(Path(path), metric)
    return f"epoch {max(curve) + 1}: {number(metric, curve[max(curve)])}" if curve else "-"


def at_budget(frame: pd.DataFrame, epochs: int) -> tuple[pd.DataFrame, int]:
    """The jobs whose budget (summary.json ``epochs``) is ``epochs``, without the ``param:``
    columns that no longer vary among them; and how many jobs were left out (another budget,
    or no summary yet). A sweep extended to a larger budget holds both."""
    keep = pd.to_numeric(frame.get("epochs"), errors="coerce") == epochs
    kept = frame[keep].reset_index(drop=True)
    constant = [c for c in kept.columns if c.startswith("param:")
                and kept[c].astype(str).nunique(dropna=False) <= 1]
    return kept.drop(columns=constant), int((~keep).sum())


def analyse(roots: list[Path | str], metric: str | None = None,
            resamples: int = RESAMPLES, epochs: int | None = None,
            slope_epochs: int = slopes.LAST) -> Study:
    """The numbers of the report (no files written); ``epochs``: only the jobs of that
    budget; ``slope_epochs``: how many of each run's last evaluations its slope is fitted to."""
    roots = list(dict.fromkeys(Path(r) for r in roots))
    for root in (r for r in roots if not r.is_dir()):
        raise FileNotFoundError(f"{root} is not a sweep or run directory")
    frame = collect(roots)
    left_out = 0
    if epochs is not None and not frame.empty:
        frame, left_out = at_budget(frame, epochs)
        if frame.empty:
            raise FileNotFoundError(f"no job with trainer.epochs={epochs} under "
                                    + ", ".join(map(str, roots)))
    if frame.empty:
        raise FileNotFoundError("no jobs (folders with .hydra/ or summary.json) under "
                                + ", ".join(map(str, roots)))
    metric = metric or primary_metric(frame)
    if metric is None or metric not in frame:
        raise FileNotFoundError(f"no job has {metric or 'an FID'}: nothing to report yet")
    mods = frame_studies(frame)
    settings = tuple(c for s in mods for c in s.SETTINGS)
    groups = grouping.group_seeds(frame, metric, settings)
    # each study's published number beside ours, and its rank among the settings compared
    # (those with our mean too: the ones our rank and rho are over)
    groups["published"], groups["study_rank"] = math.nan, pd.NA
    for study in mods:
        if study.PUBLISHED in groups:
            # a row of no study, or one not comparable, groups under '-': no published number
            values = pd.to_numeric(groups[study.PUBLISHED], errors="coerce")
            has = values.notna()
            groups.loc[has, "published"] = values[has]
            both = has & groups[f"{metric}_mean"].notna()
            groups.loc[both, "study_rank"] = groups.loc[both, "published"].rank(
                method="min", ascending=True).astype(int)
    out = Study(frame=frame, groups=groups, metric=metric, epochs_only=epochs,
                left_out=left_out, slope_epochs=slope_epochs)
    by_path = frame.set_index("path")
    ok = {g["group"]: [p for p in g["paths"].split(";") if by_path.at[p, "status"] == "ok"]
          for _, g in groups.iterrows()}
    compared = groups[groups["published"].notna() & groups[f"{metric}_mean"].notna()]
    study_order = compared.sort_values("published", kind="stable")
    # per seed: each seed's ok runs of the compared settings, ranked on their own
    seeds = sorted({by_path.at[p, "seed"] for g in compared["group"] for p in ok[g]
                    if pd.notna(by_path.at[p, "seed"])}, key=grouping.order_key)
    for seed in seeds:
        pairs = []
        for _, g in study_order.iterrows():
            runs = [p for p in ok[g["group"]] if by_path.at[p, "seed"] == seed
                    and finite(by_path.at[p, metric])]
            if runs:  # the first in job order where two dirs hold the same seed
                pairs.append((by_path.at[runs[0], metric], g["published"]))
        ours = [v for v, _ in pairs]
        ranks = pd.Series(ours).rank(method="min").astype(int).tolist()
        out.rho_seeds.append({"seed": seed, "n": len(pairs),
                              "rho": grouping.spearman(ours, [p for _, p in pairs]), "ranks": ranks})
    values = [np.array([by_path.at[p, metric] for p in ok[g] if finite(by_path.at[p, metric])])
              for g in study_order["group"]]
    low, high, used = bootstrap_rho(values, study_order["published"].tolist(), resamples)
    means = study_order[f"{metric}_mean"].tolist()
    out.rho_means = {"n": len(study_order), "rho": grouping.spearman(means, study_order["published"]),
                     "low": low, "high": high, "resamples": resamples, "used": used,
                     "ranks": pd.Series(means, dtype=float).rank(method="min").astype(int).tolist()}
    for group, paths in ok.items():
        curves = [plots.job_curve(Path(p), metric) for p in paths]
        epochs = sorted({e for c in curves for e in c})
        out.epochs[group] = {e + 1: (float(np.mean([c[e] for c in curves if e in c])),
                                     sum(e in c for c in curves)) for e in epochs}
        out.slopes[group] = slopes.fit(curves, slope_epochs)
    return out


def draw(study: Study, figures: Path, prefix: str) -> list[Path]:
    """``<prefix>curves_<metric>.png`` (ok seeds only) and ``<prefix>montage.png`` (a row per
    setting, its ok runs' final grids side by side, in grey) in ``figures``; only those with
    something to draw."""
    figures.mkdir(parents=True, exist_ok=True)
    by_path = study.frame.set_index("path")
    groups = study.groups.copy()
    groups["paths"] = [";".join(p for p in g.split(";") if by_path.at[p, "status"] == "ok")
                       for g in groups["paths"]]
    written, rows = [], []
    shown = study.frame[study.frame["sample"].apply(lambda s: isinstance(s, str))]
    with tempfile.TemporaryDirectory() as tmp:  # metric_curves' fixed name, then ours
        for path in plots.metric_curves(groups, [study.metric], Path(tmp)):
            written.append(Path(shutil.move(str(path), figures / f"{prefix}{path.name}")))
        for i, paths in enumerate(groups["paths"]):
            runs = shown[shown["path"].isin(paths.split(";"))]
            if len(runs) and plots.montage(runs, Path(tmp) / f"{i}.png", study.metric, 160):
                rows.append(Image.open(Path(tmp) / f"{i}.png").convert("L"))
    if rows:  # grey: the grids are, and it is a third of the bytes
        sheet = Image.new("L", (max(r.width for r in rows), sum(r.height for r in rows)), 255)
        for i, row in enumerate(rows):
            sheet.paste(row, (0, sum(r.height for r in rows[:i])))
        sheet.save(figures / f"{prefix}montage.png")
        written.append(figures / f"{prefix}montage.png")
    study.figures = written
    return written


def render(study: Study, roots: list[Path], base: Path, title: str | None = TITLE,
           command: str | None = None, commit: str | None = None,
           machine: str | None = None) -> str:
    """The block's markdown; figure links relative to ``base`` (the report's folder)."""
    frame, groups, metric = study.frame, study.groups, study.metric
    better = "lower" if grouping.lower_is_better(metric) else "higher"
    names = ", ".join(f"`{Path(r).resolve().name}`" for r in roots)
    head = [f"## {title}", ""] if title else []
    head += [f"Generated by `gansweep-table --report` from {len(frame)} job dirs under {names} "
             f"({statuses(frame['status'].tolist())}). `{metric}` ({better} is better) at each "
             "run's final epoch; mean ± half the 95% Student-t interval over the seeds that "
             "finished (`ok`); rank `=`: its interval overlaps another setting's (`ties`)."
             + ("" if study.epochs_only is None else
                f" Only the jobs with trainer.epochs={study.epochs_only} (`--epochs`); "
                f"{study.left_out} job dir(s) of other budgets or without a summary left out.")]
    head += [line for label, value in (("Commit", commit), ("Machine", machine)) if value
             for line in ("", f"**{label}:** {value}")]
    if command:
        head += ["", "**Command:**", "", "```bash", command.strip(), "```"]

    published, rows = groups["published"].notna().any(), []
    alike = same_kind(frame, groups, metric) if published else None
    for _, g in groups.iterrows():
        jobs = frame[frame["path"].isin(g["paths"].split(";"))]
        done = sorted(set(jobs.loc[jobs["status"] == "ok", "epochs_done"].dropna().astype(int)))
        rows.append([grouping.rank_text(g), g["ties"] or "-", g["group"],
                     statuses(jobs["status"].tolist()), ",".join(map(str, done)) or "-",
                     interval_text(g, metric), number(metric, g[f"{metric}_std"]),
                     str(int(g[f"{metric}_n"])), by_seed(g, frame, metric)] + ([
            study_row(g, frame), "-" if pd.isna(g["published"]) else f"{g['published']:g}"]
            + ([interval_text(g, alike)] if alike else [])
            + ["-" if pd.isna(g["study_rank"]) else str(int(g["study_rank"]))] if published else []))
    compared = int(groups["study_rank"].notna().sum())
    header = ["rank", "ties", "setting", "jobs", "final epoch", f"{metric} (mean ± 95% CI)", "sd",
              "n", "seed: value"] + (["study row", "study's published"]
                      + ([f"ours in the study's metric: {alike} (mean ± 95% CI)"] if alike else [])
                      + [f"study rank (of {compared} compared)"] if published else [])
    body = head + ["", f"### {metric} at the final epoch, per setting", "", table(header, rows)]
    if published:
        labels = "; ".join(f"{s.PUBLISHED_LABEL}" for s in frame_studies(frame))
        body += ["", f"Study's published number: {labels}."]

    others = [m for m in grouping.metric_columns(frame) if m != metric
              and groups[f"{m}_n"].fillna(0).gt(0).any()]
    if others:
        body += ["", "### Other metrics at the final epoch (mean ± 95% CI)", "",
                 table(["setting"] + others,
                       [[g["group"]] + [interval_text(g, m) for m in others]
                        for _, g in groups.iterrows()])]

    epochs = sorted({e for curve in study.epochs.values() for e in curve})
    if epochs:
        rows = []
        for _, g in groups.iterrows():
            curve, n = study.epochs.get(g["group"], {}), int(g["ok"])
            rows.append([g["group"], str(n)] + [
                "-" if e not in curve else number(metric, curve[e][0])
                + ("" if curve[e][1] == n else f" (n {curve[e][1]})") for e in epochs])
        body += ["", f"### {metric} after each epoch (mean over the ok seeds)", "",
                 table(["setting", "ok seeds"] + [str(e) for e in epochs], rows)]
        rows = slopes.rows(study.slopes, groups, metric, lambda v: number(metric, v))
        if rows:
            body += ["", f"### {metric}: slope at the end of the curves", "",
                     table(slopes.header(metric), rows), "", slopes.note(study.slope_epochs)]

    if published:
        body += ["", "### Rank agreement with the study (Spearman rho)", ""]
        rows = [[f"seed {seed_text(r['seed'])}", str(r["n"]), _rho(r["rho"]), "-",
                 ", ".join(map(str, r["ranks"])) or "-"] for r in study.rho_seeds]
        m = study.rho_means
        ci = "-" if math.isnan(m["low"]) else f"[{m['low']:.2f}, {m['high']:.2f}]"
        rows.append(["means over seeds", str(m["n"]), _rho(m["rho"]), ci,
                     ", ".join(map(str, m["ranks"])) or "-"])
        body += [table(["ranking", "settings", "rho", "95% interval",
                        "our ranks, in the study's order"], rows), "",
                 f"Each seed: its ok runs ranked on their own. Interval: percentiles 2.5 and 97.5 "
                 f"of rho over {m['resamples']} resamples of the seeds (per setting its ok seeds "
                 f"drawn with replacement, means recomputed; numpy default_rng({RNG_SEED}); "
                 f"{m['used']} gave a rho). rho needs 3 settings, its interval a setting with 2 "
                 f"ok seeds."]

    if study.figures:
        body += ["", "### Figures", ""]
        for path in study.figures:
            link = Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()
            what = (f"{metric} per epoch: mean over ok seeds, band min-max",
                    "final samples: a row per setting, its ok seeds side by side")
            body += [f"![{what[path.name.endswith('montage.png')]}]({link})", ""]
        body.pop()

    body += ["", "### Jobs", "", table(
        ["job", "setting", "seed", "status", "epochs done", "batches done", "wall (min)",
         "s/step (median)", "device", "precision", "torch threads", f"{metric} (final)",
         "last evaluation"],
        [job_cells(r, groups, metric) for _, r in frame.iterrows()])]
    unfinished = frame[frame["status"] != "ok"]
    body += ["", f"Not finished ({len(unfinished)}): " + "; ".join(
        f"{r['job']} ({r['status']}, {_done(r)})" for _, r in unfinished.iterrows())
        + ". Their numbers are in no mean, rank or rho above." if len(unfinished)
        else f"All {len(frame)} jobs finished (`ok`)."]
    body += ["", "Torch threads: each start of the job, from its log."]
    return "\n".join(body)


def _rho(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def _done(row) -> str:
    done, total = row.get("epochs_done"), row.get("epochs")
    if pd.isna(done):
        return "no summary"
    return f"{int(done)} of {'-' if pd.isna(total) else int(total)} epochs"


def study_row(group, frame: pd.DataFrame) -> str:
    """Which published row a setting is read against (the studies' SETTINGS but the number)."""
    columns = [c for s in frame_studies(frame) for c in s.SETTINGS if c != s.PUBLISHED]
    return " / ".join(str(group[c]) for c in columns if c in group and pd.notna(group[c])) or "-"


def by_seed(group, frame: pd.DataFrame, metric: str) -> str:
    """The ok runs' values in seed order ('0: 32.2, 1: 1061.4, ...'): one collapsed seed moves
    a mean of three, and this shows which."""
    jobs = frame[frame["path"].isin(group["paths"].split(";")) & (frame["status"] == "ok")]
    cells = sorted(((r["seed"], number(metric, r[metric])) for _, r in jobs.iterrows()),
                   key=lambda c: grouping.order_key(c[0]))
    return ", ".join(f"{seed_text(seed)}: {value}" for seed, value in cells) or "-"


def seed_text(seed) -> str:
    if finite(seed):
        return str(int(seed)) if float(seed).is_integer() else str(seed)
    return "-" if seed is None or seed is pd.NA or isinstance(seed, float) else str(seed)


def job_cells(r, groups: pd.DataFrame, metric: str) -> list[str]:
    try:
        summary = json.loads((Path(r["path"]) / "summary.json").read_text())
    except (OSError, ValueError):
        summary = {}
    setting = next((g["group"] for _, g in groups.iterrows() if r["path"] in g["paths"].split(";")),
                   "-")
    wall, step = summary.get("wall_seconds"), summary.get("seconds_per_step_median")
    ok = r["status"] == "ok"
    return [r["job"], setting, seed_text(r["seed"]), r["status"],
            _done(r).replace(" epochs", ""), "-" if pd.isna(r["batches_done"]) else
            str(int(r["batches_done"])), "-" if wall is None else f"{wall / 60:.1f}",
            "-" if step is None else f"{step:.3f}", str(summary.get("device", "-")),
            str(summary.get("precision", "-")), torch_threads(r["path"]),
            number(metric, r.get(metric)) if ok else "-",
            "-" if ok else last_evaluation(r["path"], metric)]


def publish(roots: list[Path | str], report: Path | str, figures: Path | str | None = None,
            title: str | None = TITLE, command: str | None = None, commit: str | None = None,
            machine: str | None = None, metric: str | None = None,
            resamples: int = RESAMPLES, section: str | None = None,
            epochs: int | None = None, slope_epochs: int = slopes.LAST) -> Study:
    """Write the block into ``report`` and its figures into ``figures`` (default: the
    report's folder), named ``<report stem>_*.png``; return what it shows."""
    report = Path(report)
    # every refusal before any figure is drawn: a refused report writes nothing
    check_page(report, section, Path(figures) if figures else None)
    study = analyse(roots, metric, resamples, epochs, slope_epochs)
    report.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"{report.stem}_{section}_" if section else f"{report.stem}_"
    draw(study, Path(figures) if figures else report.parent, prefix)
    study.markdown = render(study, [Path(r) for r in roots], report.parent, title, command,
                            commit, machine)
    report.write_text(splice(report, study.markdown, section))
    return study
