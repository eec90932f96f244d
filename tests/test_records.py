"""A sweep's records (``python -m gansweep.report.records``): the report generated from the
records of tests/fixtures/publish_sweep is the report generated from the sweep itself, byte
for byte, though the records leave the training rows, checkpoints and other grids out."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from gansweep.report import publish, records

FIXTURE = Path(__file__).parent / "fixtures" / "publish_sweep"


def report(root: Path, out: Path) -> dict[str, str]:
    publish.publish([root], out / "results.md", out / "fig", section="s", commit="abc1234",
                    machine="test VM", command="gansweep-train -m ...", resamples=200)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file()}


def test_the_report_from_the_records_is_the_report_from_the_sweep(tmp_path):
    sweep = tmp_path / "sweep" / "publish_sweep"
    shutil.copytree(FIXTURE, sweep)
    (sweep / "0_seed_standard_00000000" / "checkpoints").mkdir()
    (sweep / "0_seed_standard_00000000" / "checkpoints" / "last.pt").write_bytes(b"x" * 1000)
    kept = tmp_path / "kept" / "publish_sweep"  # same folder name: the block names its root
    written = records.copy_records([sweep], kept)
    assert sorted(r.name for r in written) == sorted(
        p.name for p in sweep.iterdir() if (p / "summary.json").is_file())
    assert report(kept, tmp_path / "from_records") == report(sweep, tmp_path / "from_sweep")
    text = (tmp_path / "from_records" / "results.md").read_text()
    assert "6_seed_coulomb_2_66666666 (interrupted, 1 of 3 epochs)" in text  # unfinished, named

    job = kept / "0_seed_standard_00000000"
    assert not (job / "checkpoints").exists()
    rows = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
    source = (sweep / job.name / "metrics.jsonl").read_text().splitlines()
    # the fixture's evaluations after epochs 1 and 2 (the final one is summary.json's)
    assert [r["epoch"] for r in rows] == [0, 1] and len(source) == 14
    assert all("d_loss" not in r and "fid_lenet" in r for r in rows)
    assert (job / "train.log").read_text() == (
        "[2026-12-01 10:00:00,000][gansweep.trainer][INFO] - training seed_standard: 3 epochs "
        "x 4 batches of 128 on cpu (1 torch threads)\n")
    assert (job / ".hydra" / "overrides.yaml").read_bytes() == (
        sweep / job.name / ".hydra" / "overrides.yaml").read_bytes()
    assert (job / "samples" / "final.png").read_bytes() == (
        sweep / job.name / "samples" / "final.png").read_bytes()


def test_a_relaunched_run_replaces_its_record_under_another_job_number(tmp_path):
    kept = tmp_path / "kept"
    records.copy_records([FIXTURE / "6_seed_coulomb_2_66666666"], kept)
    # the same run (same identity hash), relaunched in a fresh sweep dir as its job 0, finished
    relaunch = tmp_path / "fresh_sweep" / "0_seed_coulomb_2_66666666"
    shutil.copytree(FIXTURE / "5_seed_coulomb_2_55555555", relaunch)
    records.copy_records([relaunch.parent], kept)
    assert [p.name for p in kept.iterdir()] == ["0_seed_coulomb_2_66666666"]
    # another run of the same preset (another hash) is another record
    records.copy_records([FIXTURE / "4_seed_coulomb_2_44444444"], kept)
    assert sorted(p.name for p in kept.iterdir()) == ["0_seed_coulomb_2_66666666",
                                                       "4_seed_coulomb_2_44444444"]


def test_bad_input_names_the_problem_and_writes_nothing(tmp_path, capsys):
    assert records.main([str(tmp_path / "nope"), "--into", str(tmp_path / "r")]) == 1
    assert "not a directory" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    sweep = tmp_path / "sweep"
    shutil.copytree(FIXTURE, sweep)
    before = sorted(p.name for p in sweep.iterdir())
    assert records.main([str(sweep), "--into", str(sweep)]) == 1
    assert "one of the sweep dirs read" in capsys.readouterr().err
    assert sorted(p.name for p in sweep.iterdir()) == before
    with pytest.raises(SystemExit):
        records.main([str(sweep)])  # --into is required
    assert records.main([str(sweep), "--into", str(tmp_path / "r")]) == 0
    assert "7 records into" in capsys.readouterr().out


def test_where_jobs_ran_and_unknown_overrides_split_no_setting(tmp_path):
    """Runs of one setting stay one group when some were launched from another checkout
    (another dataset.root) with their threads set by hand (trainer.threads) and some are
    records whose overrides were lost; the groups, means and ranks are those of the sweep as
    it was launched."""
    sweep = tmp_path / "publish_sweep"
    shutil.copytree(FIXTURE, sweep)
    moved = sweep / "1_seed_standard_11111111" / ".hydra" / "overrides.yaml"
    moved.write_text(moved.read_text() + "- dataset.root=/elsewhere/data\n"
                     "- trainer.threads=1\n")
    shutil.rmtree(sweep / "3_seed_coulomb_1_33333333" / ".hydra")  # overrides unknown...
    for job in ("4_seed_coulomb_2_44444444", "5_seed_coulomb_2_55555555",
                "6_seed_coulomb_2_66666666"):  # ...here for every seed of the setting
        shutil.rmtree(sweep / job / ".hydra")
    mixed = publish.analyse([sweep])
    plain = publish.analyse([FIXTURE])
    columns = ["group", "jobs", "ok", "rank", "ties", "fid_lenet_mean", "fid_lenet_ci_high"]
    assert mixed.groups[columns].equals(plain.groups[columns])
    assert list(mixed.groups["group"]) == ["seed_standard", "seed_coulomb_1", "seed_coulomb_2"]
    frame = mixed.frame.set_index("job")
    assert frame.at["3_seed_coulomb_1_33333333", "param:experiment"] == "seed_coulomb_1"
    assert frame.at["4_seed_coulomb_2_44444444", "param:experiment"] == "(unknown)"
    # a key one job overrode and the others did not still splits the setting
    moved.write_text(moved.read_text() + "- +label=b\n")
    assert list(publish.analyse([sweep]).groups["group"]) == [
        "seed_standard label=-", "seed_standard label=b", "seed_coulomb_1 label=-",
        "seed_coulomb_2"]
