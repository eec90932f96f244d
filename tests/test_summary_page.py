"""The answer at the top of docs/results.md (``python -m gansweep.report.summary_page``): the
committed block is what the committed records and spec give, byte for byte, and agrees with
the blocks it links; each observation's numbers worked out by hand on the hand-written sweep
of tests/fixtures/publish_sweep (its README: fid_lenet by seed 0 / 1 at epoch 3, standard
10 / 11, Coulomb No.1 150 / 140, No.2 145 / 147, and No.2's seed 2 interrupted); a spec that
cannot be answered is refused in one line and the page is left as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gansweep.report import publish, summary_page
from gansweep.report.blocks import markers
from gansweep.report.studies import keras2018
from tests.helpers import REPO

FIXTURE = Path(__file__).parent / "fixtures" / "publish_sweep"
PAGE = REPO / "docs" / "results.md"
SPEC = REPO / "docs" / "results" / "summary.yaml"


def test_the_summary_on_the_results_page_is_what_the_committed_records_give(tmp_path, capsys):
    page = tmp_path / "results.md"
    shutil.copy(PAGE, page)
    assert summary_page.main([str(SPEC), "--report", str(page)]) == 0
    assert page.read_bytes() == PAGE.read_bytes(), (
        "docs/results.md's summary differs from what the records give: rerun "
        "python -m gansweep.report.summary_page docs/results/summary.yaml --report docs/results.md")
    begin, end = markers("summary")
    text = PAGE.read_text()
    assert text.index(begin) < text.index("## Lab notebook")  # the answer comes first
    block = text[text.index(begin):text.index(end)]
    assert len(block.splitlines()) <= 60  # one screen
    for preset in ["seed_standard"] + [f"seed_coulomb_{i}" for i in range(1, 7)]:
        assert f"\n| {preset} | " in block
    claims = [f"- **{claim}**" for claim in keras2018.OBSERVATIONS.values()]
    assert all(c in block for c in claims)


def test_the_summary_agrees_with_the_blocks_it_links():
    """Where a column reads the metric its block ranks by, its cells are the block's own
    (value and rank), and its heading links that block."""
    blocks = summary_page.block_anchors(PAGE.read_text())
    spec = summary_page.read_spec(SPEC)
    summary = blocks["summary"][1].splitlines()
    header = next(line for line in summary if line.startswith("| preset |"))
    headings = [c.strip() for c in header.strip("|").split("|")]
    checked = 0
    for index, (source, metric) in enumerate(spec.columns, start=3):
        anchor, block = blocks[spec.sources[source].block]
        assert headings[index].startswith(f"[`{metric}`, ")
        assert headings[index].endswith(f"(#{anchor})")
        lines = block.splitlines()
        title = f"### {metric} at the final epoch, per setting"
        if title not in lines:
            continue  # the block ranks by another metric
        head = lines.index(title) + 2
        names = [c.strip() for c in lines[head].strip("|").split("|")]
        for line in lines[head + 2:]:
            if not line.startswith("|"):
                break
            cells = dict(zip(names, (c.strip() for c in line.strip("|").split("|"))))
            ours = next(row for row in summary if row.startswith(f"| {cells['setting']} | "))
            value = cells[f"{metric} (mean ± 95% CI)"].replace(" (n 1: no CI)", "")
            assert ours.strip("|").split("|")[index].strip() == f"{value} ({cells['rank']})"
            checked += 1
    assert checked == 14  # the 26-epoch and the 9-epoch columns, seven presets each


@pytest.fixture(scope="module")
def fixture_study():
    return publish.analyse([FIXTURE], "fid_lenet")


def test_each_observation_by_hand_on_the_fixture_sweep(fixture_study):
    said = {claim: keras2018.observe(claim, fixture_study) for claim in keras2018.OBSERVATIONS}
    # means 10.5, 145, 146; each ± t(0.975, 1) sd / sqrt(2) = 6.353 |a - b|: 6.4, 63.5, 12.7
    assert said["standard_lowest"] == (
        "`fid_lenet`: standard 10.5 ± 6.4, best Coulomb 145.0 ± 63.5 (No.1); the standard run "
        "beats every Coulomb run of its seed in 2 of 2 seeds")
    # No.1 and No.2: [81.5, 208.5] and [133.3, 158.7] overlap, so both ranks are tied
    assert said["no1_best"] == ("`fid_lenet`: No.1 145.0 ± 63.5, 1= of 2 Coulomb settings "
                                "(lower is better; last No.2 146.0 ± 12.7)")
    assert said["no6_worst"] == "`fid_lenet`: No.6: not in these runs"
    assert said["no4_deformed"] == "`fid_lenet`: No.4: not in these runs"
    # seed 0: 145 / 10 and 150 / 10; seed 1: 140 / 11 = 12.7 and 147 / 11 = 13.4
    assert said["none_as_fast"] == ("`fid_lenet`: each Coulomb run, in times the standard run "
                                    "of its seed: 0: 14.5 to 15, 1: 12.7 to 13.4")
    # No.1's curves 400, 200, 150 and 420, 180, 140: slopes -125 and -140 per epoch,
    # mean -132.5 ± 6.353 x 15 = 95.3
    assert said["no1_needs_95"] == (
        "`fid_lenet`: No.1 145.0 ± 63.5 after 3 epochs (2 seeds); slope over its last 3 "
        "evaluations -132 ± 95.3 per epoch (2 runs)")
    # precision 0.8 / 0.7 for the standard; No.1 0.5 / 0.6, No.2 0.4 / 0.5
    precision = keras2018.observe("standard_digits", publish.analyse([FIXTURE],
                                                                     "precision_lenet"))
    assert precision == ("`precision_lenet`: standard 0: 0.800, 1: 0.700; the 2 Coulomb "
                         "settings 0.450 to 0.550")
    with pytest.raises(ValueError, match=r"'no7_best' is not one of the study's\. Fix: one of "
                                         r"standard_lowest"):
        keras2018.observe("no7_best", fixture_study)
    with pytest.raises(ValueError, match=r"lower is better.*precision_lenet\. Fix:"):
        keras2018.observe("none_as_fast", publish.analyse([FIXTURE], "precision_lenet"))


SPEC_TEXT = """study: keras2018
sources:
  fx: {{records: {records}, machine: test VM, block: {block}}}
presets: [{preset}]
observations:
  - claim: {claim}
    read: [fx fid_lenet]
    verdict: >-
      Holds in both seeds,
      by a wide margin.
"""


def fixture_page(tmp_path: Path, **changes) -> tuple[Path, Path]:
    """A page holding the fixture sweep's block (section fx) and the summary's markers, and a
    spec reading it (``changes``: the spec's fields to change)."""
    page = tmp_path / "page.md"
    publish.publish([FIXTURE], page, tmp_path / "fig", section="fx", resamples=200)
    begin, end = markers("summary")
    page.write_text(f"# Results\n\n{begin}\n{end}\n\n## Notebook\n\n" + page.read_text())
    fields = {"records": str(FIXTURE), "block": "fx", "preset": "fx fid_lenet",
              "claim": "standard_lowest", **changes}
    spec = tmp_path / "summary.yaml"
    spec.write_text(SPEC_TEXT.format(**fields))
    return page, spec


def test_a_summary_of_the_fixture_sweep_links_its_block_and_keeps_the_prose(tmp_path):
    page, spec = fixture_page(tmp_path)
    before = page.read_text()
    assert summary_page.main([str(spec), "--report", str(page)]) == 0
    text = page.read_text()
    once = text
    assert summary_page.main([str(spec), "--report", str(page)]) == 0
    assert page.read_text() == once  # the same records, spec and page: the same bytes
    begin, end = markers("summary")
    assert text[:text.index(begin)] == before[:before.index(begin)]
    assert text[text.index(end):] == before[before.index(end):]
    link = "[`fid_lenet`, 3 epochs, seeds 0, 1, test VM](#seed-presets-over-seeds)"
    assert link in text
    assert "| seed_standard | Standard GAN | 14.66 (1) | 10.5 ± 6.4 (1) |" in text
    assert "| seed_coulomb_1 | Coulomb No.1 | 52.32 (2) | 145.0 ± 63.5 (2=) |" in text
    assert "| seed_coulomb_2 | Coulomb No.2 | 90.82 (3) | 146.0 ± 12.7 (3=) |" in text
    assert "| rank agreement with the study (Spearman rho) |  |  | 1.00 [" in text
    assert ("- **The standard GAN has the lowest FID.** Holds in both seeds, by a wide "
            "margin.\n  - [3 epochs, seeds 0, 1, test VM](#seed-presets-over-seeds): "
            "`fid_lenet`: standard 10.5 ± 6.4, best Coulomb 145.0 ± 63.5 (No.1); the standard "
            "run beats every Coulomb run of its seed in 2 of 2 seeds\n") in text


@pytest.mark.parametrize("changes, says", [
    ({"preset": "gx fid_lenet"}, "presets: source 'gx' is not under sources (fx). Fix:"),
    ({"block": "gpu26"}, "sources.fx.block: {page} holds no generated block 'gpu26'. Fix: one "
                         "of fx, summary"),
    ({"records": str(REPO / "docs" / "results" / "gpu_study_runs")},
     "sources.fx: block 'fx' of {page} is not generated from `gpu_study_runs`. Fix:"),
    ({"records": "no_such_folder"}, "sources.fx.records: {tmp}/no_such_folder is not a folder. "
                                    "Fix:"),
    ({"claim": "no7_best"}, "observation 'no7_best' is not one of study keras2018's. Fix: one "
                            "of standard_lowest"),
    ({"preset": "fx fid_inception"}, "fx fid_inception: no job has fid_inception: nothing to "
                                     "report yet. Fix:"),
])
def test_a_spec_that_cannot_be_answered_is_refused_in_one_line(tmp_path, capsys, changes, says):
    page, spec = fixture_page(tmp_path, **changes)
    before = page.read_bytes()
    assert summary_page.main([str(spec), "--report", str(page)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: " + says.format(page=page, tmp=tmp_path)), err
    assert page.read_bytes() == before
