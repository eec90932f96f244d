"""The generated report of a study over seeds (``gansweep-table --report``) on a hand-written
sweep, tests/fixtures/publish_sweep/ (its README gives every number): 3 seed presets x 2 seeds
x 3 epochs, plus a third seed of Coulomb No.2 interrupted after 1 epoch.

fid_lenet at the final epoch (epoch 3), by seed 0 / 1:
  seed_standard  10 / 11    mean 10.5   Standard GAN  (published 14.66, study rank 1)
  seed_coulomb_1 150 / 140  mean 145    Coulomb No.1  (published 52.32, study rank 2)
  seed_coulomb_2 145 / 147  mean 146    Coulomb No.2  (published 90.82, study rank 3)
With 2 seeds the 95% interval is mean ± t(0.975, 1) sd / sqrt(2) = mean ± 6.353 |a - b|.
"""

from __future__ import annotations

import hashlib
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gansweep.report import aggregate, blocks, grouping, publish, slopes

FIXTURE = Path(__file__).parent / "fixtures" / "publish_sweep"
T_975_1 = 12.706204736174698  # Student t, 97.5th percentile, 1 degree of freedom


def half_width(a: float, b: float) -> float:
    sd = abs(a - b) / math.sqrt(2)  # sample sd (n - 1) of two values
    return T_975_1 * sd / math.sqrt(2)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return publish.publish([FIXTURE], out / "report.md", command="gansweep-train -m ...")


def test_means_intervals_and_ranks_with_ties(study):
    groups = study.groups.set_index("group")
    assert list(study.groups["group"]) == ["seed_standard", "seed_coulomb_1", "seed_coulomb_2"]
    expected = {"seed_standard": (10, 11), "seed_coulomb_1": (150, 140),
                "seed_coulomb_2": (145, 147)}
    for name, (a, b) in expected.items():
        g = groups.loc[name]
        assert g["fid_lenet_n"] == 2  # the interrupted third seed of No.2 is not averaged
        assert g["fid_lenet_mean"] == pytest.approx((a + b) / 2)
        assert g["fid_lenet_ci_high"] - g["fid_lenet_mean"] == pytest.approx(half_width(a, b))
    # intervals: standard [4.15, 16.85], No.1 [81.5, 208.5], No.2 [133.3, 158.7]:
    # standard apart from both, No.1 and No.2 overlap
    assert list(study.groups["rank"]) == [1, 2, 3]
    assert list(study.groups["ties"]) == ["", "3", "2"]
    assert list(study.groups["published"]) == [14.66, 52.32, 90.82]
    assert list(study.groups["study_rank"]) == [1, 2, 3]
    assert groups.loc["seed_coulomb_2", "ok"] == 2 and groups.loc["seed_coulomb_2", "jobs"] == 3
    # precision: 0.8/0.7, 0.5/0.6, 0.4/0.5: each mean ± 6.353 x 0.1
    assert groups.loc["seed_standard", "precision_lenet_mean"] == pytest.approx(0.75)
    assert groups.loc["seed_coulomb_1", "precision_lenet_ci_low"] == pytest.approx(
        0.55 - half_width(0.5, 0.6))
    md = study.markdown
    assert "| 1 | - | seed_standard | 2 ok | 3 | 10.5 ± 6.4 | 0.7 | 2 | 0: 10.0, 1: 11.0 | Standard GAN | 14.66 | 1 |" in md
    assert "| 2= | 3 | seed_coulomb_1 | 2 ok | 3 | 145.0 ± 63.5 | 7.1 | 2 | 0: 150.0, 1: 140.0 | Coulomb No.1 | 52.32 | 2 |" in md
    assert ("| 3= | 2 | seed_coulomb_2 | 2 ok, 1 interrupted | 3 | 146.0 ± 12.7 | 1.4 | 2 "
            "| 0: 145.0, 1: 147.0 | Coulomb No.2 | 90.82 | 3 |") in md
    assert "| seed_standard | 1.1 ± 0.6 | 0.750 ± 0.635 |" in md  # kid, precision


def test_per_epoch_means_leave_the_unfinished_run_out(study):
    # epoch 1: 300/320, 400/420, 380/400 (the interrupted run's 500 is not in the mean)
    assert study.epochs["seed_standard"] == {1: (310.0, 2), 2: (55.0, 2), 3: (10.5, 2)}
    assert study.epochs["seed_coulomb_2"] == {1: (390.0, 2), 2: (200.0, 2), 3: (146.0, 2)}
    assert "| seed_coulomb_1 | 2 | 410.0 | 190.0 | 145.0 |" in study.markdown


def test_slopes_at_the_end_of_the_curves_by_hand(study):
    # a least-squares line through epochs 1, 2, 3 has slope (y3 - y1) / 2: standard
    # (10 - 300) / 2 = -145 and (11 - 320) / 2 = -154.5, mean -149.75 ± 6.353 x 9.5; No.1
    # -125 and -140, mean -132.5; No.2 -117.5 and -126.5, mean -122 (its interrupted seed has
    # one evaluation and no slope)
    fits = study.slopes
    assert fits["seed_standard"]["mean"] == pytest.approx(-149.75)
    assert fits["seed_standard"]["ci_high"] - fits["seed_standard"]["mean"] == pytest.approx(
        half_width(-145, -154.5))
    assert (fits["seed_coulomb_1"]["mean"], fits["seed_coulomb_2"]["mean"]) == (
        pytest.approx(-132.5), pytest.approx(-122.0))
    assert [fits[g]["n"] for g in fits] == [2, 2, 2]
    assert fits["seed_standard"]["windows"] == [(1, 3)]
    # the leader (standard) falls faster than both: their gaps (134.5, 135.5) widen
    md = study.markdown
    assert "| seed_standard | 2 of 2 | 1-3 | -150 ± 60.4 | leader | - |" in md
    assert "| seed_coulomb_1 | 2 of 2 | 1-3 | -132 ± 95.3 | 134.5 | does not close |" in md
    assert "| seed_coulomb_2 | 2 of 2 | 1-3 | -122 ± 57.2 | 135.5 | does not close |" in md


def test_slope_of_the_last_evaluations_and_the_epochs_to_draw_level():
    curve = {0: 100.0, 1: 90.0, 2: 70.0, 3: 60.0, 4: 40.0}  # 0-based epochs, as recorded
    value, window = slopes.slope(curve)  # epochs 3-5: 70, 60, 40 -> (40 - 70) / 2
    assert (value, window) == (pytest.approx(-15.0), [3, 4, 5])
    assert slopes.slope(curve, 2) == (pytest.approx(-20.0), [4, 5])
    assert math.isnan(slopes.slope({4: 40.0})[0])  # one point has no slope
    # lower is better: 30 behind, the leader falls 2 per epoch and the setting 5: 30 / 3 = 10
    assert slopes.epochs_to_close(30.0, -2.0, -5.0, lower=True) == pytest.approx(10.0)
    assert slopes.epochs_to_close(30.0, -5.0, -2.0, lower=True) == math.inf  # widens
    assert slopes.epochs_to_close(30.0, -2.0, -2.0, lower=True) == math.inf  # holds
    # higher is better (precision): 0.2 behind, rising 0.05 per epoch faster: 4 epochs
    assert slopes.epochs_to_close(0.2, 0.01, 0.06, lower=False) == pytest.approx(4.0)
    assert math.isnan(slopes.epochs_to_close(0.0, -2.0, -5.0, lower=True))  # level already
    assert math.isnan(slopes.epochs_to_close(30.0, math.nan, -5.0, lower=True))


def test_spearman_per_seed_and_on_means(study):
    # in the study's order (Standard, No.1, No.2): seed 0 ours 10, 150, 145 -> ranks 1, 3, 2:
    # rho = 1 - 6 (0 + 1 + 1) / (3 (9 - 1)) = 0.5; seed 1: 11, 140, 147 -> 1, 2, 3: rho 1
    assert [(r["seed"], r["n"], r["ranks"]) for r in study.rho_seeds] == \
        [(0, 3, [1, 3, 2]), (1, 3, [1, 2, 3])]
    assert [r["rho"] for r in study.rho_seeds] == pytest.approx([0.5, 1.0])
    # means 10.5, 145, 146: the study's order, rho 1. Resampling the 2 seeds per preset:
    # No.1's mean is 150 / 145 / 140 with p 1/4, 1/2, 1/4, No.2's 145 / 146 / 147, standard
    # always first: rho 0.5 when No.1 > No.2 (p 1/4), 0.87 when equal (p 1/8), else 1 (5/8),
    # so the 2.5th and 97.5th percentiles are 0.5 and 1
    m = study.rho_means
    assert (m["n"], m["rho"], m["ranks"]) == (3, pytest.approx(1.0), [1, 2, 3])
    assert (m["low"], m["high"]) == (pytest.approx(0.5), pytest.approx(1.0))
    assert m["resamples"] == publish.RESAMPLES == m["used"]
    md = study.markdown
    assert "| seed 0 | 3 | 0.50 | - | 1, 3, 2 |" in md
    assert "| seed 1 | 3 | 1.00 | - | 1, 2, 3 |" in md
    assert "| means over seeds | 3 | 1.00 | [0.50, 1.00] | 1, 2, 3 |" in md
    assert f"over {publish.RESAMPLES} resamples of the seeds" in md


def test_one_seed_per_setting_gives_rho_without_an_interval(tmp_path):
    """Seed 0 alone (10, 150, 145): rho 0.5 on the means as on the seed, and no interval: a
    resample of one seed is that seed, and [0.50, 0.50] would read as certainty."""
    sweep = tmp_path / "sweep"
    shutil.copytree(FIXTURE, sweep)
    for job in ("1_seed_standard_11111111", "3_seed_coulomb_1_33333333",
                "5_seed_coulomb_2_55555555", "6_seed_coulomb_2_66666666"):
        shutil.rmtree(sweep / job)
    study = publish.publish([sweep], tmp_path / "report.md", command="gansweep-train -m ...")
    assert study.rho_means["rho"] == pytest.approx(0.5)
    assert "| means over seeds | 3 | 0.50 | - | 1, 3, 2 |" in study.markdown
    assert "its interval a setting with 2 ok seeds" in study.markdown


def test_bootstrap_distribution_by_hand():
    no1, no2 = np.array([150.0, 140.0]), np.array([145.0, 147.0])
    rng = np.random.default_rng(publish.RNG_SEED)  # the same draws bootstrap_rho makes
    draws = [v[rng.integers(0, 2, (4000, 2))].mean(axis=1) for v in (np.array([10.0, 11]), no1, no2)]
    share_swapped = float(np.mean(draws[1] > draws[2]))
    assert share_swapped == pytest.approx(0.25, abs=0.03)
    low, high, used = publish.bootstrap_rho([np.array([10.0, 11]), no1, no2],
                                            [14.66, 52.32, 90.82], 4000)
    assert (low, high, used) == (pytest.approx(0.5), pytest.approx(1.0), 4000)
    # one seed each: every resample would be the data itself: no interval, not a point
    low, high, used = publish.bootstrap_rho([np.array([3.0]), np.array([1.0]), np.array([2.0])],
                                            [1, 2, 3])
    assert math.isnan(low) and math.isnan(high) and used == 0
    assert math.isnan(grouping.spearman([1, 2], [1, 2]))  # two points say nothing
    assert grouping.spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(math.sqrt(3) / 2)


def test_unfinished_run_is_named_with_how_far_it_got(study):
    md = study.markdown
    assert "7 job dirs under `publish_sweep` (6 ok, 1 interrupted)" in md
    assert "Not finished (1): 6_seed_coulomb_2_66666666 (interrupted, 1 of 3 epochs)." in md
    row = next(line for line in md.splitlines() if line.startswith("| 6_seed_coulomb_2_"))
    assert row == ("| 6_seed_coulomb_2_66666666 | seed_coulomb_2 | 2 | interrupted | 1 of 3 | 4 "
                   "| 7.0 | - | cpu | float32 | 1 | - | epoch 1: 500.0 |")
    assert "500.0" not in md.replace(row, "")  # its number is in no mean, no other table


def test_figures_are_small_linked_and_relative(study):
    md, base = study.markdown, Path(study.figures[0]).parent
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", md)
    assert links == ["report_curves_fid_lenet.png", "report_montage.png"]
    for link in links:
        assert (base / link).stat().st_size < 150_000
    # a row per setting (3), its ok seeds side by side (2 tiles of 160 px + margins): the
    # interrupted run, which has no final grid, is in none
    with Image.open(base / "report_montage.png") as montage:
        assert montage.mode == "L" and montage.size == (2 * (160 + 10) + 10, 3 * (160 + 30 + 10))
    assert "```bash\ngansweep-train -m ...\n```" in md
    assert str(FIXTURE.parent) not in md and "/tmp" not in md


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rerun_reproduces_the_files_byte_for_byte(tmp_path):
    def build(out: Path) -> dict[str, str]:
        publish.publish([FIXTURE], out / "docs" / "results.md", out / "docs" / "results",
                        section="fixture", commit="abc1234", machine="2-core test VM")
        return digest(out)

    first = build(tmp_path / "a")
    assert set(first) == {"docs/results.md", "docs/results/results_fixture_curves_fid_lenet.png",
                          "docs/results/results_fixture_montage.png"}
    assert build(tmp_path / "a") == first  # in place: the same bytes
    assert build(tmp_path / "b") == first  # elsewhere: the same bytes (no absolute path)
    md = (tmp_path / "a/docs/results.md").read_text()
    assert "](results/results_fixture_montage.png)" in md
    assert "**Commit:** abc1234" in md and "**Machine:** 2-core test VM" in md


def test_an_existing_page_keeps_its_prose(tmp_path):
    begin, end = blocks.markers("seeds")
    page = tmp_path / "results.md"
    page.write_text(f"# Results\n\nHand-written intro.\n\n{begin}\nold numbers\n{end}\n\n"
                    "## Reading\n\nHand-written reading.\n")
    publish.publish([FIXTURE], page, section="seeds", title=None)
    text = page.read_text()
    assert text.startswith(f"# Results\n\nHand-written intro.\n\n{begin}\nGenerated by ")
    assert text.endswith(f"{end}\n\n## Reading\n\nHand-written reading.\n")
    assert "old numbers" not in text and text.count(begin) == 1
    bare = tmp_path / "other.md"
    bare.write_text("# Prose only\n")
    with pytest.raises(blocks.PublishError, match="without the markers"):
        publish.publish([FIXTURE], bare)
    assert bare.read_text() == "# Prose only\n"


def test_cli_writes_the_report_and_nothing_into_the_sweep(tmp_path, capsys):
    sweep = tmp_path / "publish_sweep"
    shutil.copytree(FIXTURE, sweep)
    before = digest(sweep)
    out = tmp_path / "out" / "report.md"
    assert aggregate.main([str(sweep), "--report", str(out), "--figures", str(tmp_path / "fig"),
                           "--title", "Fixture", "--resamples", "500"]) == 0
    assert digest(sweep) == before
    text = out.read_text()
    assert "## Fixture" in text and "over 500 resamples" in text
    assert "](../fig/report_curves_fid_lenet.png)" in text
    for wrong in (["--figures", "x"], ["--report", str(out), "--out", str(tmp_path)],
                  ["--report", str(out), "--slope-epochs", "1"]):
        with pytest.raises(SystemExit):  # report options without --report; --out with it
            aggregate.main([str(sweep), *wrong])
    assert digest(sweep) == before
    assert aggregate.main([str(tmp_path / "nope"), "--report", str(out)]) == 1
    assert "not a sweep or run directory" in capsys.readouterr().err


def test_epochs_reports_one_budget_of_an_extended_sweep(tmp_path):
    """A sweep relaunched with a larger trainer.epochs holds both budgets' runs; --epochs N
    reports only the runs of budget N (the others are counted, not mixed into the means)."""
    import json

    sweep = tmp_path / "publish_sweep"
    shutil.copytree(FIXTURE, sweep)
    job = next(p for p in sorted(sweep.iterdir()) if (p / "summary.json").exists()
               and json.loads((p / "summary.json").read_text()).get("status") == "ok")
    longer = sweep / f"{job.name}_longer"
    shutil.copytree(job, longer)
    summary = json.loads((longer / "summary.json").read_text())
    summary["epochs"] = 9
    (longer / "summary.json").write_text(json.dumps(summary))

    plain = publish.analyse([FIXTURE])
    at3 = publish.analyse([sweep], epochs=3)
    assert at3.left_out == 1 and len(at3.frame) == len(plain.frame)
    assert at3.groups["group"].tolist() == plain.groups["group"].tolist()
    assert at3.groups["fid_lenet_mean"].tolist() == plain.groups["fid_lenet_mean"].tolist()
    at9 = publish.analyse([sweep], epochs=9)
    assert len(at9.frame) == 1 and at9.left_out == len(plain.frame)
    with pytest.raises(FileNotFoundError, match="no job with trainer.epochs=4"):
        publish.analyse([sweep], epochs=4)
    page = tmp_path / "page.md"
    assert aggregate.main([str(sweep), "--report", str(page), "--epochs", "3"]) == 0
    assert "Only the jobs with trainer.epochs=3 (`--epochs`); 1 job dir(s)" in page.read_text()
    with pytest.raises(SystemExit):  # --epochs goes with --report
        aggregate.main([str(sweep), "--epochs", "3"])


def test_ours_in_the_study_metric_beside_the_published_number(tmp_path):
    """A report ranked by fid_lenet shows our fid_inception (the published number's kind,
    keras2018.PUBLISHED_METRIC) beside the study's number where some setting has it."""
    import json

    sweep = tmp_path / "publish_sweep"
    shutil.copytree(FIXTURE, sweep)
    inception = {"0_seed_standard_00000000": 20.0, "1_seed_standard_11111111": 30.0}
    for name, value in inception.items():
        path = sweep / name / "summary.json"
        summary = json.loads(path.read_text())
        summary["fid_inception"] = value
        path.write_text(json.dumps(summary))
    # with Inception scores the table's primary metric is fid_inception; rank by LeNet's
    md = publish.publish([sweep], tmp_path / "r.md", metric="fid_lenet").markdown
    assert "| study row | study's published | ours in the study's metric: fid_inception " \
           "(mean ± 95% CI) | study rank (of 3 compared) |" in md
    # 20 and 30: 25 ± 6.353 x 10 = 63.5; the settings without it show '-'
    assert "| Standard GAN | 14.66 | 25.0 ± 63.5 | 1 |" in md
    assert "| Coulomb No.1 | 52.32 | - | 2 |" in md
    plain = publish.publish([FIXTURE], tmp_path / "plain.md").markdown
    assert "ours in the study's metric" not in plain  # no setting has it: no column
    ranked = publish.publish([sweep], tmp_path / "ranked.md", metric="fid_inception").markdown
    assert "ours in the study's metric" not in ranked  # it is the ranked column already


def _with_rescores(tmp_path, spec: dict[str, list[tuple[str, float]]]) -> Path:
    """The fixture sweep with gansweep-eval records of fid_inception: {job prefix: [(settings
    hash, value), ...]}."""
    import json

    sweep = tmp_path / "publish_sweep"
    shutil.copytree(FIXTURE, sweep)
    for prefix, entries in spec.items():
        job = next(sweep.glob(f"{prefix}_*"))
        (job / "evals").mkdir()
        for digest_, value in entries:
            (job / "evals" / f"final_{digest_}.json").write_text(json.dumps(
                {"which": "final", "hash": digest_, "values": {"fid_inception": value}}))
    return sweep


def test_the_study_metric_column_takes_one_rescore_and_refuses_to_choose(tmp_path):
    # one re-score setting for standard's runs only: fid_inception under its plain name
    one = _with_rescores(tmp_path / "one", {"0": [("aaaa", 20.0)], "1": [("aaaa", 30.0)]})
    md = publish.publish([one], tmp_path / "one.md", metric="fid_lenet").markdown
    assert "| Standard GAN | 14.66 | 25.0 ± 63.5 | 1 |" in md
    # the same runs under two settings (fid_inception@aaaa, @bbbb): which one is the study's
    # kind is not ours to pick, so no column (both are in "Other metrics")
    two = _with_rescores(tmp_path / "two", {"0": [("aaaa", 20.0), ("bbbb", 21.0)],
                                            "1": [("aaaa", 30.0), ("bbbb", 31.0)]})
    md = publish.publish([two], tmp_path / "two.md", metric="fid_lenet").markdown
    assert "ours in the study's metric" not in md
    assert "fid_inception@aaaa" in md and "fid_inception@bbbb" in md


def test_slope_rows_name_the_leader_and_what_is_missing():
    groups = pd.DataFrame({"group": ["a", "b", "c", "d"], "ok": [2, 2, 1, 0],
                           "fid_lenet_mean": [10.0, 30.0, 40.0, math.nan]})
    fits = {"a": slopes.fit([{0: 20.0, 1: 15.0, 2: 10.0}, {0: 21.0, 1: 16.0, 2: 10.0}]),
            "b": slopes.fit([{0: 60.0, 1: 45.0, 2: 30.0}, {0: 60.0, 1: 45.0, 2: 30.0}]),
            "c": slopes.fit([{2: 40.0}]), "d": slopes.fit([])}
    # a falls 5 and 5.5 per epoch (mean 5.25), b 15: b's gap of 20 closes at 9.75 per epoch
    rows = slopes.rows(fits, groups, "fid_lenet", lambda v: f"{v:.1f}")
    assert rows[0][:3] == ["a", "2 of 2", "1-3"] and rows[0][4:] == ["leader", "-"]
    assert rows[1] == ["b", "2 of 2", "1-3", "-15 ± 0", "20.0", "3 (epoch 6)"]
    assert rows[2] == ["c", "0 of 1", "-", "-", "30.0", "no slope"]
    assert rows[3] == ["d", "0 of 0", "-", "-", "-", "-"]
    # the leader without a slope: the gaps stand, the arithmetic cannot be done
    rows = slopes.rows({**fits, "a": slopes.fit([{2: 10.0}])}, groups, "fid_lenet", str)
    assert rows[0][4] == "leader" and rows[1][4:] == ["20.0", "the leader has no slope"]
    # two settings share the best mean: both lead
    tied = groups.assign(fid_lenet_mean=[10.0, 10.0, 40.0, math.nan])
    rows = slopes.rows(fits, tied, "fid_lenet", str)
    assert [r[4] for r in rows[:2]] == ["leader (tied)", "leader (tied)"]
    assert slopes.rows({"a": slopes.fit([{2: 1.0}])}, groups.iloc[:1], "fid_lenet", str) == []


def test_slope_edges():
    # a NaN evaluation is left out, not allowed to make the slope NaN
    assert slopes.slope({0: 30.0, 1: math.nan, 2: 10.0, 3: 0.0})[0] == pytest.approx(-10.0)
    with pytest.raises(ValueError, match="at least 2"):
        slopes.slope({0: 1.0, 1: 2.0}, 1)
    # runs fitted over different epochs: each window is shown
    assert slopes.fit([{0: 3.0, 1: 2.0, 2: 1.0}, {e: 9.0 - e for e in range(5)}])["windows"] \
        == [(1, 3), (3, 5)]
    assert (slopes.rate(-0.0004), slopes.rate(-1e-30), slopes.rate(0.0), slopes.rate(-123.4)) \
        == ("-0.0004", "-1e-30", "0", "-123")
    assert slopes.rate(math.nan) == "-"


def test_spearman_refuses_missing_values_and_prints_no_negative_zero():
    assert math.isnan(grouping.spearman([1, 2, 3], [1, 2, math.nan]))
    assert math.isnan(grouping.spearman([1, 2, 3, 4], [2, 1, math.nan, 3]))
    rho = grouping.spearman([1, 2, 3, 4], [2, 4, 1, 3])  # d = -1, -2, 2, 1: 1 - 6 x 10 / 60
    assert rho == 0.0 and math.copysign(1.0, rho) == 1.0


def test_a_setting_of_no_study_beside_the_study_rows(tmp_path):
    """A sweep that mixes the study's presets with a setting of no study: that setting has no
    published number and no study rank (it once broke the report: its '-' was parsed)."""
    import json

    sweep = tmp_path / "publish_sweep"
    shutil.copytree(FIXTURE, sweep)
    for job in sweep.glob("[45]_seed_coulomb_2_*"):
        summary = json.loads((job / "summary.json").read_text())
        summary["config"]["reference"] = None
        (job / "summary.json").write_text(json.dumps(summary))
    shutil.rmtree(next(sweep.glob("6_seed_coulomb_2_*")))
    study = publish.publish([sweep], tmp_path / "r.md")
    groups = study.groups.set_index("group")
    assert groups["published"].notna().sum() == 2
    assert study.rho_means["n"] == 2  # rho needs 3 settings: none
    assert "Coulomb No.1 | 52.32 | 2 |" in study.markdown


def test_no_study_metric_column_when_the_studies_disagree(monkeypatch):
    from types import SimpleNamespace

    study = publish.analyse([FIXTURE])
    kinds = [SimpleNamespace(PUBLISHED_METRIC="fid_inception"),
             SimpleNamespace(PUBLISHED_METRIC="precision_lenet")]
    monkeypatch.setattr(publish, "frame_studies", lambda frame: kinds)
    assert publish.same_kind(study.frame, study.groups, "fid_lenet") is None
    monkeypatch.setattr(publish, "frame_studies", lambda frame: kinds[1:])
    assert publish.same_kind(study.frame, study.groups, "fid_lenet") == "precision_lenet"
