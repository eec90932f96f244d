"""The 2018 Keras study: Coulomb GAN (six settings) vs a standard GAN on MNIST, by FID.

Its published table (``PUBLISHED_ROWS``: the row's Inception FID after 100 epochs of 468
batches, the epoch/batch of its published sample, and the row's optimiser and kernel settings
as table columns) is read against our runs of the seed presets
(``conf/experiment/seed_*.yaml``, which set ``reference: {study: keras2018, row: ...}``).
A run gets the published FID and rank beside its own only where it has its row's lr, decay
and eps0 (``vs_seed`` says which differ); the findings check the author's claims.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

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
