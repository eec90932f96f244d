"""Re-scoring (gansweep-eval): finished runs scored again with other evaluation settings,
without training; seeded and reproducible, keyed by the settings, the training record left
as it was, the table gaining the columns; runs that cannot be scored are named."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gansweep.runs import rescore
from gansweep.report.aggregate import aggregate
from gansweep.runs.trainer import run
from tests.helpers import REPO, compose_config

EXAMPLE = REPO / "examples" / "extending"


def _record(job: Path) -> dict[str, bytes]:
    return {str(p.relative_to(job)): p.read_bytes() for p in job.rglob("*")
            if p.is_file() and "evals" not in p.parts and not p.name.startswith(".lock")}


@pytest.fixture
def finished(tiny_overrides, tmp_path) -> Path:
    """A sweep dir with one finished tiny run (an FID after each of its 2 epochs)."""
    job = tmp_path / "sweep" / "0_seed_standard_x"
    run(compose_config([*tiny_overrides, "+experiment=seed_standard", "trainer.epochs=2",
                        "fid.every_epochs=1"]), job)
    return job


@pytest.mark.slow
def test_the_runs_own_settings_reproduce_its_numbers(finished, mnist_root, capsys):
    summary = json.loads((finished / "summary.json").read_text())
    before = _record(finished)
    own = [f"fid.num_samples={summary['config']['fid']['num_samples']}",
           f"fid.ref_limit={summary['config']['fid']['ref_limit']}"]
    assert rescore.main([str(finished), *own, "--which", "final"]) == 0
    [path] = (finished / "evals").glob("final_lenet_*.json")
    record = json.loads(path.read_text())
    assert path.name == f"final_lenet_{record['hash']}.json"
    for key in ("fid_lenet", "kid_lenet", "precision_lenet", "recall_lenet", "density_lenet",
                "coverage_lenet"):
        assert record["values"][key] == summary[key], key  # to the bit
    assert record["epoch"] == 1 and record["step"] == summary["batches_done"] - 1
    said = capsys.readouterr().out  # the record counts from 0, the line from 1 (2 epochs)
    assert f"final (after epoch 2, step {summary['batches_done'] - 1}): fid_lenet" in said
    assert _record(finished) == before  # summary, metrics, checkpoints, grids untouched
    stored = path.read_bytes()
    assert rescore.main([str(finished), *own, "--which", "final"]) == 0
    assert path.read_bytes() == stored  # kept, not recomputed
    assert rescore.main([str(finished), *own, "--which", "final", "--force"]) == 0
    again = json.loads(path.read_text())
    assert again["values"] == record["values"] and again["time"] >= record["time"]


@pytest.mark.slow
def test_another_extractor_adds_final_and_best_columns(finished, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    assert rescore.main([str(finished.parent), "fid.extractor=my_features.PixelFeatures",
                         "fid.num_samples=200", "fid.ref_limit=1000"]) == 0
    kinds = sorted(p.name.split("_")[0] for p in (finished / "evals").glob("*.json"))
    assert kinds == ["best", "final"]
    table = pd.read_csv(finished.parent / "table.csv")
    assert {"fid_pixels", "best_fid_pixels", "kid_pixels"} <= set(table.columns)
    assert table.loc[0, "fid_lenet"] == json.loads((finished / "summary.json")
                                                   .read_text())["fid_lenet"]
    # a second setting of the same metric is shown apart, under its settings' hash
    assert rescore.main([str(finished.parent), "fid.extractor=my_features.PixelFeatures",
                         "fid.num_samples=300", "fid.ref_limit=1000", "--which", "final"]) == 0
    aggregate([finished.parent], echo=False)
    columns = pd.read_csv(finished.parent / "table.csv").columns
    assert "fid_pixels" not in columns and len([c for c in columns
                                                if c.startswith("fid_pixels@")]) == 2


def test_a_run_without_a_g_is_refused_before_anything(tmp_path):
    job = tmp_path / "run"
    job.mkdir()
    (job / "summary.json").write_text(json.dumps({"status": "ok", "config": {}}))
    with pytest.raises(SystemExit, match=r"no G to score \(checkpoints/last.pt is missing\).*Fix"):
        rescore.main([str(job), "fid=lenet"])
    (job / "summary.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(SystemExit, match=r"not finished \(status running\).*Fix"):
        rescore.main([str(job)])


def test_a_sweeps_unfinished_runs_are_skipped_and_named(tmp_path, caplog):
    sweep = tmp_path / "sweep"
    (sweep / "0_a").mkdir(parents=True)
    (sweep / "0_a" / "summary.json").write_text(json.dumps({"status": "failed"}))
    runs, skipped = rescore.scorable([sweep])
    assert runs == [] and skipped == [f"{sweep / '0_a'}: not finished (status failed)"]


@pytest.mark.parametrize("override, message", [
    ("fid.num_samples=100", "fid.num_samples=100 is not allowed: must be > 128"),
    ("fid=bogus", "Could not find 'fid/bogus'. Fix: an option of the fid group"),
    ("fid.nonexistent=1", "Key 'nonexistent' not in 'FidConfig'"),
    ("fid.metrics=[fid,foo]", "fid.metrics=['fid', 'foo'] is not allowed"),
])
def test_bad_settings_get_the_training_checks_in_one_line(override, message):
    with pytest.raises(SystemExit) as refused:
        rescore.compose_fid([override])
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_only_fid_overrides_are_taken(tmp_path):
    with pytest.raises(SystemExit, match="fid group only.*not trainer.epochs=3"):
        rescore.compose_fid(["trainer.epochs=3"])
    assert rescore.compose_fid(["fid=inception"]).extractor == "inception"


def test_a_rescore_that_reproduces_a_runs_own_number_adds_no_column():
    """Asking a finished run for one more metric (fid.metrics=[fid,kid,confident]) scores its
    FID again with the same samples: the equal number is not shown twice (as fid_lenet@hash);
    a different one is."""
    from gansweep.report.table import name_rescored

    rows = [{"fid_lenet": 241.2, "kid_lenet": 87.2}, {"fid_lenet": 201.6, "kid_lenet": 68.8}]
    name_rescored(rows, [[("fid_lenet", "f12d", 241.2), ("confident_lenet", "f12d", 0.36)],
                         [("fid_lenet", "f12d", 201.6), ("confident_lenet", "f12d", 0.42)]])
    assert rows == [{"fid_lenet": 241.2, "kid_lenet": 87.2, "confident_lenet": 0.36},
                    {"fid_lenet": 201.6, "kid_lenet": 68.8, "confident_lenet": 0.42}]
    rows = [{"fid_lenet": 241.2}]
    name_rescored(rows, [[("fid_lenet", "a1b2", 240.0)]])  # other samples: another number
    assert rows == [{"fid_lenet": 241.2, "fid_lenet@a1b2": 240.0}]


def test_a_rescore_column_is_kept_or_left_out_whole():
    """The same samples scored again agree to the last bits only (a KID's float64 sums in
    another order): that reproduces the run's number. Whether a re-score column is shown is
    decided for the whole column: one run that reproduces its number does not drop out of a
    column the other runs are in (its mean would then be over fewer runs than the table's)."""
    from gansweep.report.table import name_rescored, reproduces

    assert reproduces(13.466019658466461, 13.466019658466472)  # the pair's KID, seed 0
    assert not reproduces(13.466019658466461, 13.466019)  # float32 on another device
    assert reproduces(float("nan"), float("nan")) and not reproduces(1.0, float("nan"))
    assert not reproduces("-", 1.0)
    rows = [{"kid_lenet": 13.466019658466461}, {"kid_lenet": 185.43734410874563},
            {"kid_lenet": 11.607146626151463}]
    name_rescored(rows, [[("kid_lenet", "f12d", 13.466019658466472)],
                         [("kid_lenet", "f12d", 185.43734410874563)],
                         [("kid_lenet", "f12d", 11.607146626151472)]])
    assert all(len(row) == 1 for row in rows)  # all three reproduce: no column
    rows = [{"fid_lenet": 32.2}, {"fid_lenet": 1061.4}, {"fid_lenet": 30.5}]
    name_rescored(rows, [[("fid_lenet", "a1b2", 32.5)], [("fid_lenet", "a1b2", 1061.4)],
                         [("fid_lenet", "a1b2", 30.1)]])
    assert [row["fid_lenet@a1b2"] for row in rows] == [32.5, 1061.4, 30.1]  # all three shown
