"""The 2018 Keras study: Coulomb GAN (six settings) vs a standard GAN on MNIST, by FID.

Its published table (``PUBLISHED_ROWS``: the row's Inception FID after 100 epochs of 468
batches, the epoch/batch of its published sample, and the row's optimiser and kernel settings
as table columns) is read against our runs of the seed presets
(``conf/experiment/seed_*.yaml``, which set ``reference: {study: keras2018, row: ...}``).
A run gets the published FID and rank beside its own only where it has its row's lr, decay
and eps0 (``vs_seed`` says which differ); the findings check the author's claims.
``OBSERVATIONS`` are the author's claims by name (docs/study.md, "What the author observed"),
and ``observe`` gives the numbers of one budget that bear on one of them, for the answer at
the top of a results page (``gansweep.report.summary_page``): the verdict is a person's.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from gansweep.report import grouping
from gansweep.report.markdown import finite, number

NAME = "keras2018"
SEED_BATCHES = 100 * 468  # the seed's budget: 100 epochs of 468 batches

# row: (Inception FID, sample shown, settings by table column)
PUBLISHED_ROWS: dict[str, tuple[float, str, dict[str, float]]] = {
    "Standard GAN": (14.66, "epoch 99, batch 400",
                     {"d_lr": 1e-5, "d_decay": 1e-4, "g_lr": 1e-4, "g_decay": 1e-4}),
    "Coulomb No.1": (52.32, "epoch 99, batch 400",
                     {"d_lr": 1e-3, "d_decay": 1e-3, "g_lr": 1e-3, "g_decay": 1e-3, "eps0": 1.0}),
    "Coulomb No.2": (90.82, "epoch 99, batch 400",
                     {"d_lr": 1e-4, "d_decay": 1e-3, "g_lr": 1e-3, "g_decay": 1e-3, "eps0": 1.0}),
    "Coulomb No.3": (106.5, "epoch 99, batch 400",
                     {"d_lr": 1e-3, "d_decay": 1e-4, "g_lr": 1e-4, "g_decay": 1e-3, "eps0": 1.0}),
    "Coulomb No.4": (108.0, "epoch 99, batch 400",
                     {"d_lr": 1e-3, "d_decay": 1e-3, "g_lr": 1e-3, "g_decay": 1e-3, "eps0": 0.1}),
    "Coulomb No.5": (118.4, "epoch 70, batch 0",
                     {"d_lr": 1e-3, "d_decay": 1e-2, "g_lr": 1e-3, "g_decay": 1e-2, "eps0": 10.0}),
    "Coulomb No.6": (149.9, "epoch 99, batch 400",
                     {"d_lr": 1e-3, "d_decay": 1e-4, "g_lr": 1e-3, "g_decay": 1e-4, "eps0": 1.0}),
}

COLUMNS = ("seed_row", "seed_fid_inception", "vs_seed", "seed_rank")
COMPACT = ("seed_fid_inception",)
SETTINGS = ("seed_row", "seed_fid_inception")
PUBLISHED = "seed_fid_inception"
PUBLISHED_LABEL = "2018 study: Inception FID after 100 epochs"
PUBLISHED_METRIC = "fid_inception"  # ours of the same kind (gansweep-eval fid=inception)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def seed_differences(row: dict[str, Any], settings: dict | None) -> list[str]:
    """Table columns where the row differs from its published row's settings."""
    out = []
    for column, seed_value in (settings or {}).items():
        value = row.get(column)
        if value is None or not math.isclose(float(value), float(seed_value), rel_tol=1e-9):
            out.append(f"{column}={_fmt(value)} (seed {_fmt(seed_value)})")
    return out


def job_columns(config: dict, row: dict[str, Any]) -> dict[str, Any]:
    """seed_row, seed_fid_inception (None where the settings differ) and vs_seed."""
    reference = config.get("reference") or {}
    name = reference.get("row")
    if "fid" in reference:  # a record from before this module held the numbers: its own
        fid, settings = reference["fid"], reference.get("settings")
    elif name in PUBLISHED_ROWS:
        fid, _, settings = PUBLISHED_ROWS[name]
    else:
        return {"seed_row": name, "seed_fid_inception": None,
                "vs_seed": f"unknown row {name!r} (the study has {', '.join(PUBLISHED_ROWS)})"}
    differs = seed_differences(row, settings)
    return {"seed_row": name, "seed_fid_inception": None if differs else fid,
            "vs_seed": ("not comparable: " + ", ".join(differs)) if differs else "seed settings"}


def annotate(frame: pd.DataFrame, metric: str | None) -> None:
    """seed_rank and rank_agrees among the ok rows that have our metric and the seed's FID
    (both ranked within that same set of rows)."""
    frame["seed_rank"], frame["rank_agrees"] = pd.NA, pd.NA
    if metric is None or metric not in frame:
        return
    both = (frame["study"] == NAME) & frame[metric].notna() \
        & frame["seed_fid_inception"].notna() & (frame["status"] == "ok")
    if both.sum() >= 2:
        ours = frame.loc[both, metric].rank(method="min").astype(int)
        frame.loc[both, "seed_rank"] = frame.loc[both, "seed_fid_inception"].rank(
            method="min").astype(int)
        frame.loc[both, "rank_agrees"] = ours == frame.loc[both, "seed_rank"]


def findings(frame: pd.DataFrame, metric: str | None) -> list[str]:
    """Plain-sentence checks of the seed author's claims against this table."""
    if metric is None:
        return []
    mine = frame[frame["study"] == NAME]
    ok = mine[(mine["status"] == "ok") & mine[metric].notna()]
    lines = []
    apart = mine[mine["vs_seed"].fillna("").str.startswith("not comparable")]
    if len(apart):
        lines.append(f"{len(apart)} row(s) differ from their seed preset's settings "
                     f"({', '.join(apart['job'])}): no seed FID or rank beside them.")
    seeded = ok[ok["seed_fid_inception"].notna()]
    if len(seeded) and (seeded["batches_done"] < SEED_BATCHES).any():
        lines.append(f"These runs trained {int(seeded['batches_done'].min())} to "
                     f"{int(seeded['batches_done'].max())} batches, the seed {SEED_BATCHES} "
                     "(100 epochs): their FIDs and ranking are not comparable to the seed's yet.")
    if len(seeded) >= 2:
        agree = int(seeded["rank_agrees"].fillna(False).sum())
        rho = seeded[metric].rank().corr(seeded["seed_fid_inception"].rank())
        presets = seeded["seed_row"].nunique()
        what = (f"{len(seeded)} seed presets (" if presets == len(seeded) else
                f"{len(seeded)} runs ({presets} seed presets, each run ranked on its own; ")
        lines.append(f"Seed ranking reproduced for {agree} of {what}Spearman rho {rho:.2f}).")
    standard, coulomb = ok[ok["gan_type"] == "standard"], ok[ok["gan_type"] == "coulomb"]
    if len(standard) and len(coulomb):
        best_std, best_c = standard[metric].min(), coulomb[metric].min()
        verdict = "holds" if best_std < best_c else "does not hold"
        lines.append(f"Claim 'the standard GAN has the lowest FID' {verdict} here "
                     f"(standard {best_std:.2f} vs best Coulomb {best_c:.2f}).")
        best = coulomb.loc[coulomb[metric].idxmin()]
        lines.append(f"Best Coulomb run: {best['name']} ({best['job']}), {metric} {best[metric]:.2f}.")
    return lines


# ----------------------------------------------------------------------------- observations
OBSERVATIONS = {
    "standard_lowest": "The standard GAN has the lowest FID.",
    "standard_digits": "Standard GAN digits look good by about epoch 15.",
    "no1_best": "Coulomb No.1 is the best Coulomb setting.",
    "no6_worst": "Coulomb No.6 is the worst (by the table).",
    "no4_deformed": "Coulomb No.4 draws clean strokes, yet its digits look deformed by a "
                    "fixed rule.",
    "no1_needs_95": "Coulomb No.1 needs about 95 epochs, and still shows broken strokes.",
    "none_as_fast": "No setting trains G as fast as the standard GAN.",
}
# the claims that are a Coulomb row's place among the Coulomb rows
PLACES = {"no1_best": "Coulomb No.1", "no6_worst": "Coulomb No.6",
          "no4_deformed": "Coulomb No.4"}


def short(row: str) -> str:
    """'Standard GAN' -> 'standard', 'Coulomb No.4' -> 'No.4'."""
    return "standard" if row == "Standard GAN" else str(row).replace("Coulomb ", "")


def value_text(group, metric: str) -> str:
    """A setting's value over its ok seeds: the one value, or mean ± half the 95% interval."""
    n = group.get(f"{metric}_n")
    if not finite(n) or not n:
        return "-"
    mean = group[f"{metric}_mean"]
    if n == 1:
        return number(metric, mean)
    return f"{number(metric, mean)} ± {number(metric, group[f'{metric}_ci_high'] - mean)}"


def _ok_runs(study, group) -> pd.DataFrame:
    """A setting's ok runs with a value of the study's metric, in seed order."""
    frame = study.frame
    runs = frame[frame["path"].isin(group["paths"].split(";")) & (frame["status"] == "ok")
                 & frame[study.metric].map(finite)]
    return runs.sort_values("seed", key=lambda s: s.map(grouping.order_key), kind="stable")


def _seeds(runs: pd.DataFrame, metric: str) -> str:
    """'0: 0.696, 1: 0.000, 2: 0.685' (the value alone for one run)."""
    if len(runs) == 1:
        return number(metric, runs[metric].iloc[0])
    return ", ".join(f"{_seed(s)}: {number(metric, v)}"
                     for s, v in zip(runs["seed"], runs[metric]))


def _seed(seed) -> str:
    return str(int(seed)) if finite(seed) and float(seed).is_integer() else str(seed)


def _measured(study) -> pd.DataFrame:
    """The study's rows that have a value of the study's metric."""
    groups = study.groups
    return groups[groups["seed_row"].isin(PUBLISHED_ROWS)
                  & groups[f"{study.metric}_n"].fillna(0).gt(0)]


def _row(study, name: str):
    found = _measured(study)
    found = found[found["seed_row"] == name]
    return found.iloc[0] if len(found) else None


def _place(study, name: str) -> str:
    """Where a Coulomb row stands among the Coulomb rows measured: its value, rank (``=``:
    its interval overlaps another's, as in the generated blocks) of how many, and the first
    and last of them where that is another row."""
    metric = study.metric
    coulomb = _measured(study)
    coulomb = coulomb[coulomb["seed_row"].str.startswith("Coulomb")].copy()
    ranked = grouping.rank_groups(coulomb.reset_index(drop=True), metric)
    mine = ranked[ranked["seed_row"] == name]
    if not len(mine):
        return f"{short(name)}: not in these runs"
    g = mine.iloc[0]
    if len(ranked) == 1:
        return f"{short(name)} {value_text(g, metric)}, the only Coulomb setting here"
    better = "lower" if grouping.lower_is_better(metric) else "higher"
    ends = [f"{label} {short(r['seed_row'])} {value_text(r, metric)}"
            for label, r in (("first", ranked.iloc[0]), ("last", ranked.iloc[-1]))
            if r["seed_row"] != name]
    return (f"{short(name)} {value_text(g, metric)}, {grouping.rank_text(g)} of {len(ranked)} "
            f"Coulomb settings ({better} is better" + "".join(f"; {e}" for e in ends) + ")")


def _standard_lowest(study) -> str:
    metric = study.metric
    lower = grouping.lower_is_better(metric)
    standard = _row(study, "Standard GAN")
    measured = _measured(study)
    coulomb = measured[measured["seed_row"].str.startswith("Coulomb")]
    if standard is None or not len(coulomb):
        return "no standard and Coulomb runs side by side here"
    best = coulomb.sort_values(f"{metric}_mean", ascending=lower, kind="stable").iloc[0]
    text = (f"standard {value_text(standard, metric)}, best Coulomb "
            f"{value_text(best, metric)} ({short(best['seed_row'])})")
    runs = _ok_runs(study, standard)
    if len(runs) < 2:
        return text
    others = pd.concat([_ok_runs(study, g) for _, g in coulomb.iterrows()])
    beaten, missed = 0, []
    for _, run in runs.iterrows():
        theirs = others.loc[others["seed"] == run["seed"], metric]
        if not len(theirs):
            continue
        if (run[metric] < theirs.min()) if lower else (run[metric] > theirs.max()):
            beaten += 1
        else:
            missed.append(f"{_seed(run['seed'])}: {number(metric, run[metric])}")
    text += (f"; the standard run beats every Coulomb run of its seed in {beaten} of "
             f"{beaten + len(missed)} seeds")
    return text + (f" (not in seed {', '.join(missed)})" if missed else "")


def _standard_digits(study) -> str:
    metric = study.metric
    standard = _row(study, "Standard GAN")
    if standard is None:
        return "no standard run here"
    coulomb = _measured(study)
    coulomb = coulomb[coulomb["seed_row"].str.startswith("Coulomb")]
    text = f"standard {_seeds(_ok_runs(study, standard), metric)}"
    if len(coulomb) == 1:
        g = coulomb.iloc[0]
        text += f"; {short(g['seed_row'])} {value_text(g, metric)}"
    elif len(coulomb):
        means = coulomb[f"{metric}_mean"]
        text += (f"; the {len(coulomb)} Coulomb settings {number(metric, means.min())} to "
                 f"{number(metric, means.max())}")
    return text


def _no1_needs_95(study) -> str:
    metric = study.metric
    g = _row(study, "Coulomb No.1")
    if g is None:
        return "No.1: not in these runs"
    runs = _ok_runs(study, g)
    epochs = sorted({int(e) for e in runs["epochs_done"]})
    text = (f"No.1 {value_text(g, metric)} after {', '.join(map(str, epochs))} epochs "
            f"({len(runs)} seed{'s' * (len(runs) != 1)})")
    if metric == PUBLISHED_METRIC:
        text += f"; the study's {PUBLISHED_ROWS['Coulomb No.1'][0]:g} after 100"
    fit = (getattr(study, "slopes", None) or {}).get(g["group"])
    if fit and fit.get("n"):
        mean, n = fit["mean"], fit["n"]
        half = "" if n < 2 else f" ± {fit['ci_high'] - mean:.3g}"
        text += (f"; slope over its last {fit['last']} evaluations {mean:.3g}{half} per "
                 f"epoch ({n} run{'s' * (n != 1)})")
    return text


def _none_as_fast(study) -> str:
    metric = study.metric
    if not grouping.lower_is_better(metric):
        raise ValueError(f"none_as_fast reads an FID-like metric (lower is better), not "
                         f"{metric}. Fix: read it with fid_inception or fid_lenet")
    standard = _row(study, "Standard GAN")
    measured = _measured(study)
    coulomb = measured[measured["seed_row"].str.startswith("Coulomb")]
    if standard is None or not len(coulomb):
        return "no standard and Coulomb runs side by side here"
    others = pd.concat([_ok_runs(study, g) for _, g in coulomb.iterrows()])
    cells = []
    for _, run in _ok_runs(study, standard).iterrows():
        theirs = others.loc[others["seed"] == run["seed"], metric] / run[metric]
        if len(theirs):
            low, high = f"{theirs.min():.3g}", f"{theirs.max():.3g}"
            cells.append((_seed(run["seed"]), low if low == high else f"{low} to {high}"))
    if not cells:
        return "no standard and Coulomb runs of the same seed here"
    if len(cells) == 1:
        return f"each Coulomb setting {cells[0][1]} times the standard's"
    return ("each Coulomb run, in times the standard run of its seed: "
            + ", ".join(f"{s}: {r}" for s, r in cells))


def observe(claim: str, study) -> str:
    """The numbers of one budget that bear on ``claim`` (a key of ``OBSERVATIONS``), from a
    ``gansweep.report.publish.Study`` of the seed presets ranked by the metric to read."""
    if claim not in OBSERVATIONS:
        raise ValueError(f"observation {claim!r} is not one of the study's. Fix: one of "
                         + ", ".join(OBSERVATIONS))
    if "seed_row" not in study.groups:
        return "no run of the study's presets here"
    if claim in PLACES:
        text = _place(study, PLACES[claim])
    else:
        text = {"standard_lowest": _standard_lowest, "standard_digits": _standard_digits,
                "no1_needs_95": _no1_needs_95, "none_as_fast": _none_as_fast}[claim](study)
    return f"`{study.metric}`: {text}"
