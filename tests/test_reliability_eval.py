"""Re-scores and tables that can be trusted: a stored score belongs to the checkpoint it
scored (a run extended in place is scored again, and the table never shows the older G's
number beside the newer run), re-scoring with a run's own settings gives its own numbers to
the bit whatever the process's thread count, and what cannot be read or written (a truncated
checkpoint, a read-only dir, an unknown setting, a damaged summary, an unsafe section name) is
one line naming the problem and the fix, with the rest still done."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest
import torch

from gansweep import artifacts
from gansweep.runs import rescore
from gansweep.report import aggregate, blocks, publish
from gansweep.report.rescores import checkpoint_stamp, file_sha256
from gansweep.report.table import collect
from gansweep.runs.trainer import run
from tests.helpers import compose_config, seed_config, write_job

PUBLISH_SWEEP = Path(__file__).parent / "fixtures" / "publish_sweep"
OWN = ["fid.num_samples=500", "fid.ref_limit=1000"]  # the runs' own evaluation settings
METRICS = ("fid_lenet", "kid_lenet", "precision_lenet", "recall_lenet", "density_lenet",
           "coverage_lenet")


def _overrides(mnist_root: Path, epochs: int) -> list[str]:
    """A pinned one-thread run of seconds: 2 batches of 32 per epoch, an FID every epoch."""
    return [f"dataset.root={mnist_root}", "dataset.limit=1024", "trainer=smoke",
            "trainer.batch_size=32", "trainer.progress=off", "trainer.threads=1",
            "fid.every_epochs=1", *OWN, "+experiment=seed_standard", f"trainer.epochs={epochs}"]


def _summary(job: Path) -> dict:
    return json.loads((job / "summary.json").read_text())


@pytest.fixture(scope="module")
def trained(mnist_root, tmp_path_factory) -> Path:
    """A finished pinned run of 2 epochs on 1 torch thread; tests copy it."""
    job = tmp_path_factory.mktemp("trained") / "0_seed_standard_x"
    before = torch.get_num_threads()
    try:
        run(compose_config(_overrides(mnist_root, 2)), job)
    finally:
        torch.set_num_threads(before)
    return job


def _sweep_of(trained: Path, where: Path, jobs: int = 1) -> Path:
    """A sweep dir holding ``jobs`` copies of the trained run."""
    sweep = where / "sweep"
    for number in range(jobs):
        shutil.copytree(trained, sweep / f"{number}_seed_standard_x")
    return sweep


@pytest.fixture
def other_threads():
    """The process on 2 torch threads while the test runs (the runs trained on 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(before)


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(*dirs)``: the dirs made read-only (chmod a-w, undone after the test).
    Where this process may write there all the same (root), the write probes get what a
    read-only filesystem answers (Errno 30), as for a sweep dir on a read-only mount."""
    modes: dict[Path, int] = {}

    def make(*dirs: Path) -> None:
        paths = [p for d in dirs for p in (d, *d.rglob("*")) if p.is_dir()]
        for path in paths:
            modes[path] = path.stat().st_mode
            path.chmod(modes[path] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        if all(artifacts.write_probe(d) is None for d in dirs):  # chmod does not stop root
            real = artifacts.write_probe

            def probe(folder: Path) -> OSError | None:
                folder = Path(folder)
                if any(folder == d or d in folder.parents for d in dirs):
                    return OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder))
                return real(folder)

            monkeypatch.setattr(artifacts, "write_probe", probe)
            monkeypatch.setattr(blocks, "write_probe", probe)

    yield make
    for path, mode in modes.items():
        path.chmod(mode)


# ----------------------------------------------------------------------------- a stored score
@pytest.mark.slow
def test_a_run_extended_in_place_is_scored_again_not_given_its_old_score(trained, mnist_root,
                                                                         tmp_path, capsys):
    sweep = _sweep_of(trained, tmp_path)
    job = sweep / "0_seed_standard_x"
    assert rescore.main([str(sweep), *OWN, "--which", "final"]) == 0
    assert "final (after epoch 2, step 3)" in capsys.readouterr().out
    before = torch.get_num_threads()
    try:  # the same training to 3 epochs, in place
        run(compose_config(_overrides(mnist_root, 3)), job)
    finally:
        torch.set_num_threads(before)
    summary = _summary(job)
    assert summary["epochs_done"] == 3
    assert rescore.main([str(sweep), *OWN, "--which", "final"]) == 0
    said = capsys.readouterr().out
    assert f"final (after epoch 3, step {summary['batches_done'] - 1})" in said
    [path] = (job / "evals").glob("final_lenet_*.json")
    record = json.loads(path.read_text())
    assert record["epoch"] == 2 and record["values"]["fid_lenet"] == summary["fid_lenet"]
    assert record["checkpoint"]["sha256"] == file_sha256(job / "checkpoints/last.pt")
    table = pd.read_csv(sweep / "table.csv")
    assert table.loc[0, "epochs_done"] == 3
    assert not [c for c in table.columns if "@" in c]  # the new G's own number, once


def _scored_job(tmp_path: Path, step: int, checkpoint: dict | None = None) -> Path:
    """A finished hand-written run of 3 epochs x 2 batches with a gansweep-eval record of
    fid_inception for its final G at ``step``."""
    summary = {"status": "ok", "name": "seed_standard", "gan_type": "standard",
               "epochs_done": 3, "batches_done": 6, "fid_lenet": 30.0, "best_epoch": 2,
               "best_step": 5}
    job = write_job(tmp_path / "sweep", "0_seed_standard_x", ["seed=0"],
                    seed_config("seed_standard", "standard", 1.0, 14.66, "Standard GAN"),
                    summary)
    (job / "evals").mkdir()
    record = {"which": "final", "epoch": step // 2, "step": step, "hash": "aaaa",
              "values": {"fid_inception": 50.0}}
    if checkpoint:
        record["checkpoint"] = checkpoint
    (job / "evals" / "final_inception_aaaa.json").write_text(json.dumps(record))
    return job


def test_the_table_leaves_out_a_score_of_an_older_g(tmp_path, caplog):
    job = _scored_job(tmp_path / "old", step=3)  # scored after epoch 2; the run is at 3
    with caplog.at_level("WARNING", logger="gansweep.report"):
        frame = collect([job.parent])
    assert "fid_inception" not in frame.columns
    assert str(job / "evals" / "final_inception_aaaa.json") in caplog.text
    assert "step 3" in caplog.text and "step 5" in caplog.text and "Fix: gansweep-eval" in caplog.text
    current = _scored_job(tmp_path / "current", step=5)
    assert collect([current.parent]).loc[0, "fid_inception"] == 50.0


def test_the_table_leaves_out_a_score_of_a_checkpoint_since_replaced(tmp_path, caplog):
    """The same step, another G (the run trained again in its dir): the record's sha256 of
    the checkpoint it scored no longer matches the file."""
    job = _scored_job(tmp_path, step=5)
    (job / "checkpoints").mkdir()
    (job / "checkpoints" / "last.pt").write_bytes(b"the G that was scored")
    stamp = checkpoint_stamp(job, "final")
    (job / "evals" / "final_inception_aaaa.json").write_text(json.dumps(
        {"which": "final", "epoch": 2, "step": 5, "hash": "aaaa", "checkpoint": stamp,
         "values": {"fid_inception": 50.0}}))
    assert collect([job.parent]).loc[0, "fid_inception"] == 50.0
    (job / "checkpoints" / "last.pt").write_bytes(b"another G, trained again")
    with caplog.at_level("WARNING", logger="gansweep.report"):
        frame = collect([job.parent])
    assert "fid_inception" not in frame.columns
    assert "checkpoints/last.pt has changed since it was scored" in caplog.text


# ----------------------------------------------------------------------------- thread count
@pytest.mark.slow
def test_rescoring_a_one_thread_run_with_its_own_settings_equals_its_summary(trained, tmp_path,
                                                                            other_threads):
    sweep = _sweep_of(trained, tmp_path)
    job = sweep / "0_seed_standard_x"
    summary = _summary(job)
    assert summary["torch_threads"] == 1 and torch.get_num_threads() == other_threads
    # one more metric: the six the run has are scored again on the same samples
    assert rescore.main([str(sweep), *OWN, "fid.metrics=[fid,kid,precision,recall,density,"
                         "coverage,confident]", "--which", "final"]) == 0
    assert torch.get_num_threads() == other_threads  # restored after scoring
    [path] = (job / "evals").glob("final_lenet_*.json")
    record = json.loads(path.read_text())
    assert record["torch_threads"] == 1
    for key in METRICS:
        assert record["values"][key] == summary[key], key  # to the bit
    # so the table shows each number once (docs/evaluation.md: no fid_lenet@<hash> column)
    table = pd.read_csv(sweep / "table.csv")
    assert "confident_lenet" in table.columns
    assert not [c for c in table.columns if "@" in c]


# ----------------------------------------------------------------------------- one line each
@pytest.mark.slow
def test_a_truncated_last_pt_is_one_line_and_the_other_runs_are_still_scored(trained, tmp_path,
                                                                            capsys, caplog):
    sweep = _sweep_of(trained, tmp_path, jobs=2)
    damaged = sweep / "0_seed_standard_x" / "checkpoints" / "last.pt"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    with caplog.at_level("INFO"):
        assert rescore.main([str(sweep), *OWN, "--which", "final"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err + caplog.text
    [line] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert f"checkpoint {damaged} is truncated or corrupt" in line and "Fix: restore" in line
    assert "\n" not in line and line.split("error: ", 1)[1] in err
    assert list((sweep / "1_seed_standard_x" / "evals").glob("final_lenet_*.json"))
    assert (sweep / "table.csv").exists()  # the table still rebuilt


@pytest.mark.slow
def test_a_read_only_run_dir_is_one_line_and_the_others_are_still_scored(trained, tmp_path,
                                                                        read_only, caplog):
    sweep = _sweep_of(trained, tmp_path, jobs=2)
    locked = sweep / "0_seed_standard_x"
    read_only(locked)
    with caplog.at_level("INFO"):
        assert rescore.main([str(sweep), *OWN, "--which", "final"]) == 1
    [line] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert f"{locked}: final G not scored: {locked / 'evals'} is not writable" in line
    assert "Fix: make the run dir writable" in line and "\n" not in line
    assert not (locked / "evals").exists()
    assert list((sweep / "1_seed_standard_x" / "evals").glob("final_lenet_*.json"))
    assert (sweep / "table.csv").exists()  # the table still rebuilt


@pytest.mark.slow
def test_a_read_only_sweep_dir_is_one_line_per_run_and_for_the_table(trained, tmp_path,
                                                                    read_only, caplog, capsys):
    sweep = _sweep_of(trained, tmp_path, jobs=2)
    read_only(sweep)
    with caplog.at_level("INFO"):
        assert rescore.main([str(sweep), *OWN, "--which", "final"]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 3 and all("\n" not in e for e in errors)
    assert all(" is not writable (" in e for e in errors[:2])
    assert errors[2].startswith(f"error: table of {sweep} not rebuilt: cannot write the table "
                                f"into {sweep} (")
    assert errors[2].endswith("Fix: choose a writable folder with --out")
    assert "Traceback" not in capsys.readouterr().err
    assert not (sweep / "table.csv").exists()
    # the fix the line names: the table elsewhere, although no job dir takes its curves.png
    assert aggregate.main([str(sweep), "--out", str(tmp_path / "table")]) == 0
    assert (tmp_path / "table" / "table.csv").exists()


def test_gansweep_table_on_a_read_only_sweep_dir_is_one_line(synthetic_sweep, read_only,
                                                             capsys):
    read_only(synthetic_sweep)
    assert aggregate.main([str(synthetic_sweep)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: cannot write the table into {synthetic_sweep} (")
    assert err.endswith("Fix: choose a writable folder with --out\n")
    assert not (synthetic_sweep / "table.csv").exists()


def test_an_unknown_fid_key_is_refused_in_one_line():
    with pytest.raises(SystemExit) as refused:
        rescore.compose_fid(["+fid.extra=1"])
    assert str(refused.value) == ("error: fid.extra is not a setting of the fid group "
                                  "(gansweep.fid.FidEvaluator takes no 'extra'). Fix: drop "
                                  "+fid.extra=...")
    with pytest.raises(SystemExit, match=r"fid.num_sample is not a setting.*or mean "
                                         r"fid.num_samples$"):
        rescore.compose_fid(["+fid.num_sample=500"])


def _finished_by_hand(tmp_path: Path, best_epoch: int | None) -> Path:
    """A finished run as gansweep-eval sees it before loading anything: summary.json and a
    last.pt, no best.pt."""
    job = tmp_path / "run"
    (job / "checkpoints").mkdir(parents=True)
    (job / "checkpoints" / "last.pt").write_bytes(b"not read")
    summary = {"status": "ok", "config": {}, "epochs_done": 3, "batches_done": 6}
    if best_epoch is not None:
        summary.update(best_epoch=best_epoch, best_step=5)
    (job / "summary.json").write_text(json.dumps(summary))
    return job


def test_a_deleted_best_pt_is_named_not_taken_for_no_best(tmp_path, caplog):
    job = _finished_by_hand(tmp_path, best_epoch=2)
    with caplog.at_level("INFO"):
        assert rescore.main([str(job), "--which", "best", "--no-table"]) == 1
    [line] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert line == (f"error: {job}: no best G to score: checkpoints/best.pt is missing, though "
                    "summary.json records one (after epoch 3). Fix: restore the file, or "
                    "--which final")
    assert "no evaluation chose one" not in caplog.text
    caplog.clear()  # a run whose evaluations chose no best G has none to score: not an error
    chose_none = _finished_by_hand(tmp_path / "none", best_epoch=None)
    with caplog.at_level("INFO"):
        assert rescore.main([str(chose_none), "--which", "best", "--no-table"]) == 0
    assert "no evaluation chose one" in caplog.text


def test_a_malformed_summary_is_named_in_a_warning(tmp_path, caplog):
    sweep = tmp_path / "sweep"
    config = seed_config("seed_standard", "standard", 1.0, 14.66, "Standard GAN")
    torn = write_job(sweep, "0_seed_standard_x", ["seed=0"], config, None)
    (torn / "summary.json").write_text('{"status": "ok", "fid_lenet": 3')
    listed = write_job(sweep, "1_seed_standard_y", ["seed=1"], config, None)
    (listed / "summary.json").write_text("[1, 2]")
    never = write_job(sweep, "2_seed_standard_z", ["seed=2"], config, None)  # not started
    with caplog.at_level("WARNING", logger="gansweep.report.table"):
        frame = collect([sweep])
    assert list(frame["status"]) == ["missing"] * 3
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and all("\n" not in w for w in warned)
    assert warned[0].startswith(f"warning: {torn / 'summary.json'} cannot be read (")
    assert warned[1].startswith(f"warning: {listed / 'summary.json'} holds a JSON list")
    assert all("Fix:" in w for w in warned) and str(never) not in caplog.text
    assert list(frame["error"].fillna("-")) == ["summary.json unreadable"] * 2 + ["-"]
    runs, skipped = rescore.scorable([sweep])
    assert runs == [] and skipped[0].startswith(f"{torn}: {torn / 'summary.json'} cannot be "
                                                "read")


def test_a_refused_report_writes_no_figure(tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text("# Results\n\nno markers here\n")
    figures = tmp_path / "figures"
    assert aggregate.main([str(PUBLISH_SWEEP), "--report", str(page), "--figures",
                           str(figures)]) == 1
    assert "exists without the markers" in capsys.readouterr().err
    assert not figures.exists() or not list(figures.iterdir())
    assert not list(tmp_path.glob("*.png"))
    assert page.read_text() == "# Results\n\nno markers here\n"


@pytest.mark.parametrize("section", ["../../evil", "a/b", ".hidden", "x--y", "-x",
                                     "name with space", "a" * 65])
def test_an_unsafe_section_name_is_refused_in_one_line(tmp_path, capsys, section):
    assert aggregate.main([str(PUBLISH_SWEEP), "--report", str(tmp_path / "r" / "page.md"),
                           f"--section={section}"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: --section {section!r} is not a "
                                                   "safe name. Fix:")
    assert not list(tmp_path.rglob("*"))  # nothing written, no folder made


@pytest.mark.parametrize("section", ["seed5ep", "gpu9", "pair15", "search23", "gpu_study.v2",
                                     "a-b"])
def test_the_section_names_in_use_are_safe(section):
    blocks.check_section(section)


def test_a_report_into_a_read_only_folder_is_refused_before_drawing(tmp_path, read_only):
    folder = tmp_path / "docs"
    folder.mkdir()
    read_only(folder)
    with pytest.raises(blocks.PublishError, match=r"cannot write into .*docs \(.*\)\. Fix: a "
                                                  r"writable --report path"):
        publish.publish([PUBLISH_SWEEP], folder / "page.md")
    assert not list(folder.iterdir())
