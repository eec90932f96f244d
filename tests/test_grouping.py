"""Seeds as a table axis (gansweep.report.grouping): groups of rows that differ only in seed, their
mean/std/n/95% t-interval, ranks with ties, failed seeds and one-seed groups; the plots."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from scipy import stats

from gansweep.report import aggregate, grouping


def test_interval_by_hand():
    out = grouping.interval([1.0, 2.0, 3.0, math.nan])  # NaN (a diverged G) is dropped
    # mean 2, sd 1, half-width t(0.975, 2) / sqrt(3) = 4.302653 / 1.732051 = 2.484138
    assert out["n"] == 3 and out["mean"] == 2.0 and out["std"] == 1.0
    assert out["ci_high"] - 2.0 == pytest.approx(4.302652729749464 / math.sqrt(3), rel=1e-12)
    assert out["ci_low"] == pytest.approx(2.0 - 2.484138, abs=1e-6)
    one = grouping.interval([5.0])
    assert one["n"] == 1 and one["mean"] == 5.0 and math.isnan(one["std"]) \
        and math.isnan(one["ci_low"])
    assert grouping.interval([])["n"] == 0


def test_groups_over_seeds_with_failures_and_single_seed(seeded_sweep):
    frame = aggregate.collect([seeded_sweep])
    groups = grouping.group_seeds(frame, "fid_lenet")
    assert len(groups) == 3
    by_lr = {g["param:optimizer.d.lr"]: g for _, g in groups.iterrows()}
    a, b, c = by_lr["1e-3"], by_lr["1e-4"], by_lr["1e-5"]
    assert (a["jobs"], a["ok"], a["fid_lenet_n"], a["seeds"]) == (3, 3, 3, "0,1,2")
    assert a["fid_lenet_mean"] == 11.0 and a["fid_lenet_std"] == 1.0
    half = stats.t.ppf(0.975, 2) / math.sqrt(3)
    assert a["fid_lenet_ci_low"] == pytest.approx(11 - half)
    assert a["recall_lenet_mean"] == pytest.approx(0.2)
    # B: one ok seed of three; the failed and diverged ones are counted, not averaged
    assert (b["jobs"], b["ok"], b["fid_lenet_n"]) == (3, 1, 1)
    assert b["fid_lenet_mean"] == 11.5 and math.isnan(b["fid_lenet_ci_low"])
    assert "failed" in b["not_ok"] and "diverged" in b["not_ok"]
    # ranks by mean FID: A 1, B 2, C 3. B's interval is unknown (one seed): ties with all;
    # A and C's intervals are disjoint
    assert [int(r) for r in groups["rank"]] == [1, 2, 3]
    assert (a["rank"], a["ties"]) == (1, "2") and (b["rank"], b["ties"]) == (2, "1,3")
    assert (c["rank"], c["ties"]) == (3, "2")
    assert grouping.rank_text(a) == "1=" and "±" in grouping.cell(a, "fid_lenet", str)
    assert grouping.cell(b, "fid_lenet", str) == "11.5 (n 1, no CI)"


def test_higher_is_better_metrics_rank_descending():
    groups = pd.DataFrame({"group": ["x", "y"], "recall_lenet_mean": [0.2, 0.6],
                           "recall_lenet_ci_low": [0.1, 0.5], "recall_lenet_ci_high": [0.3, 0.7]})
    ranked = grouping.rank_groups(groups, "recall_lenet")
    assert list(ranked["group"]) == ["y", "x"] and list(ranked["ties"]) == ["", ""]


@pytest.mark.slow
def test_table_writes_groups_per_seed_rows_and_plots(seeded_sweep):
    frame = aggregate.aggregate([seeded_sweep], echo=False)
    assert len(pd.read_csv(seeded_sweep / "table.csv")) == len(frame) == 8  # per seed stays
    groups = pd.read_csv(seeded_sweep / "table_groups.csv")
    assert len(groups) == 3 and {"fid_lenet_mean", "fid_lenet_ci_high"} <= set(groups.columns)
    md = (seeded_sweep / "table.md").read_text()
    assert md.index("## Settings over seeds") < md.index("## Per seed")
    page = (seeded_sweep / "table.html").read_text()
    assert "<details><summary>Per-seed rows" in page and "95% Student-t CI" in page
    for name in ("curves_fid_lenet.png", "curves_recall_lenet.png", "precision_recall_lenet.png"):
        assert (seeded_sweep / name).stat().st_size > 1000, name
    assert page.count("data:image/png;base64") >= 3 + 8  # sweep plots + per-job pictures


def test_one_seed_per_setting_gets_no_over_seeds_section(tmp_path):
    """Without a seed axis every interval is unknown: table.md lists the runs, not n=1 'groups'
    that all tie (table_groups.csv is still written)."""
    sweep = tmp_path / "sweep"
    for num, eps in enumerate((0.5, 1.0)):
        job = sweep / f"{num}_coulomb"
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- kernel.eps={eps}\n")
        config = {"name": "coulomb", "seed": 0, "gan_type": {"name": "coulomb"},
                  "kernel": {"eps": eps}}
        (job / "summary.json").write_text(json.dumps(
            {"status": "ok", "name": "coulomb", "gan_type": "coulomb", "seed": 0,
             "epochs_done": 1, "batches_done": 2, "wall_seconds": 1.0,
             "fid_lenet": 10.0 + num, "config": config}))
    aggregate.aggregate([sweep], echo=False)
    md = (sweep / "table.md").read_text()
    assert "## Runs" in md and "Settings over seeds" not in md and "1=" not in md
    assert (sweep / "table_groups.csv").exists()
