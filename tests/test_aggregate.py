"""The comparison table over synthetic and real sweep dirs, and Hydra's launchers."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gansweep.report import aggregate
from tests.helpers import compose_config, has_plugin, write_job
from tests.helpers import sweep as run_sweep


@pytest.mark.slow
def test_statuses_ranks_and_files_of_a_synthetic_sweep(synthetic_sweep, capsys):
    frame = aggregate.aggregate([synthetic_sweep])
    status = dict(zip(frame["job"], frame["status"]))
    assert status == {"0_seed_standard": "ok", "1_seed_coulomb_1": "ok",
                      "2_seed_coulomb_2": "failed", "3_seed_coulomb_3": "diverged",
                      "4_seed_coulomb_4": "running", "5_seed_coulomb_5": "missing",
                      "6_seed_coulomb_6": "stopped"}
    ok = frame[frame["status"] == "ok"]
    assert list(ok["rank"]) == [1, 2] and list(ok["seed_rank"]) == [1, 2]
    assert ok["rank_agrees"].all()
    assert "param:experiment" in frame.columns
    assert pd.isna(frame.loc[0, "eps0"]) and frame.loc[4, "eps0"] == 0.1
    for name in ("table.csv", "table.md", "table.html", "montage.png"):
        assert (synthetic_sweep / name).exists(), name
    md = (synthetic_sweep / "table.md").read_text()
    assert "failed: ConfigError: kernel.eps=0.0 is not allowed" in md
    assert "![0_seed_standard](0_seed_standard/samples/final.png)" in md
    assert "Claim 'the standard GAN has the lowest FID' holds" in md
    html = (synthetic_sweep / "table.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "<script>" in html
    assert (synthetic_sweep / "0_seed_standard/curves.png").exists()
    printed = capsys.readouterr().out  # the compact summary: a line per setting, the findings
    assert re.search(r"^1=? +seed_standard +3 +1/1 +14\.66$", printed, re.M)
    assert re.search(r"^- +seed_coulomb_2 +2_seed_coulomb_2: failed +0/1", printed, re.M)
    assert "Claim 'the standard GAN has the lowest FID' holds" in printed
    assert "| 0_seed_standard" not in printed  # the per-job table stays in table.md
    csv = pd.read_csv(synthetic_sweep / "table.csv")
    assert len(csv) == 7 and "fid_lenet" in csv.columns and "seed_fid_inception" in csv.columns


def test_extractors_are_never_mixed(synthetic_sweep):
    summary = synthetic_sweep / "1_seed_coulomb_1/summary.json"
    data = json.loads(summary.read_text())
    data.pop("fid_lenet")
    data["fid_inception"] = 60.0
    summary.write_text(json.dumps(data))
    frame = aggregate.collect([synthetic_sweep])
    assert {"fid_lenet", "fid_inception"} <= set(frame.columns)
    assert pd.isna(frame.loc[1, "fid_lenet"]) and pd.isna(frame.loc[0, "fid_inception"])
    # the ranking uses one metric only: Inception; one run has it, so no ranking is claimed
    assert aggregate.primary_metric(frame) == "fid_inception"
    assert frame["rank"].isna().all()


def test_cli_errors_clearly_on_a_wrong_dir(tmp_path, capsys):
    assert aggregate.main([str(tmp_path / "nope")]) == 1
    assert "not a sweep or run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_real_tiny_multirun_builds_the_table(mnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_sweep(mnist_root, sweep, "+experiment=seed_standard,seed_coulomb_4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the end of a sweep prints a line per setting; the per-job table is in table.md
    assert re.search(r"^\S+ +seed_standard +\S+ +1/1 +14\.66$", proc.stdout, re.M)
    assert re.search(r"^\S+ +seed_coulomb_4 +\S+ +1/1 +108$", proc.stdout, re.M)
    assert "| 0_seed_standard_" in (sweep / "table.md").read_text()
    frame = pd.read_csv(sweep / "table.csv")
    assert list(frame["name"]) == ["seed_standard", "seed_coulomb_4"]
    assert list(frame["status"]) == ["ok", "ok"] and list(frame["seed_fid_inception"]) == [14.66, 108.0]
    assert (sweep / "table.html").exists() and (sweep / "montage.png").exists()


@pytest.mark.slow
@pytest.mark.skipif(not has_plugin("hydra_joblib_launcher"), reason="pip install 'gansweep[scale]'")
def test_joblib_launcher_runs_two_jobs_in_parallel_with_divided_threads(mnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_sweep(mnist_root, sweep, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                     "+experiment=seed_standard,seed_coulomb_1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())  # <num>_<name>_<config hash>
    assert [p.name[:-9] for p in jobs] == ["0_seed_standard", "1_seed_coulomb_1"]
    logs = [(job / "train.log").read_text() for job in jobs]
    threads = max(1, (os.cpu_count() or 1) // 2)
    assert all(f"({threads} torch threads)" in log for log in logs)
    statuses = {json.loads((job / "summary.json").read_text())["status"] for job in jobs}
    assert statuses == {"ok"}
    assert "joblib" in proc.stderr + proc.stdout  # Hydra announces the launcher


@pytest.mark.slow
@pytest.mark.skipif(not has_plugin("hydra_submitit_launcher"), reason="pip install 'gansweep[scale]'")
def test_submitit_local_launcher_path(mnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_sweep(mnist_root, sweep, "hydra/launcher=submitit_local",
                     "hydra.launcher.timeout_min=10", "+experiment=seed_coulomb_1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (job,) = sweep.glob("0_seed_coulomb_1_*")  # <num>_<name>_<config hash>
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "ok"
    assert (sweep / "table.md").exists()


@pytest.mark.slow
def test_tensorboard_logger_writes_events(tiny_overrides, tmp_path):
    pytest.importorskip("tensorboard")
    from gansweep.runs.trainer import run
    run(compose_config([*tiny_overrides, "logger=tensorboard"]), tmp_path)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_optuna_preset_composes(mnist_root):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="gansweep.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=["hparams_search=coulomb_optuna"],
                      return_hydra_config=True)
    assert str(cfg.gan_type.name) == "coulomb"
    sweeper = cfg.hydra.sweeper
    assert "optuna" in sweeper._target_ and sweeper.direction == "minimize"
    # resumable, one study per budget
    assert sweeper.storage == f"sqlite:///{cfg.hydra.sweep.dir}/optuna_{cfg.trainer.epochs}ep.db"
    assert set(sweeper.params) == {"kernel.eps", "optimizer.d.lr", "optimizer.g.lr",
                                   "optimizer.d.decay", "optimizer.g.decay"}


@pytest.mark.slow
@pytest.mark.skipif(not has_plugin("hydra_optuna_sweeper"), reason="pip install 'gansweep[scale]'")
def test_optuna_search_runs_two_trials_minimising_fid(mnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_sweep(mnist_root, sweep, "hparams_search=coulomb_optuna",
                     "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2
    fids = [json.loads((job / "summary.json").read_text())["fid_lenet"] for job in jobs]
    assert all(f > 0 for f in fids)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(fids))
    assert set(best["best_params"]) >= {"kernel.eps", "optimizer.d.lr"}


# ----------------------------------------------------------------------------- studies
def _plain_job(sweep: Path, number: int, lr: float, fid: float | None, reference=None) -> Path:
    config = {"name": "mine", "seed": 0, "gan_type": {"name": "coulomb"}, "kernel": {"eps": 1.0},
              "optimizer": {"d": {"lr": lr, "decay": 1e-3}, "g": {"lr": 1e-3, "decay": 1e-3}},
              "trainer": {"epochs": 1}}
    if reference:
        config["reference"] = reference
    summary = {"status": "ok" if fid is not None else "failed", "name": "mine",
               "gan_type": "coulomb", "epochs_done": 1, "batches_done": 2, "config": config,
               "final_sample": "samples/final.png"}
    if fid is None:
        summary["error"] = "RuntimeError: boom"
    else:
        summary["fid_lenet"] = fid
    return write_job(sweep, f"{number}_mine", [f"optimizer.d.lr={lr}"], config, summary)


@pytest.mark.slow
def test_a_sweep_without_a_study_gets_a_clean_table(tmp_path):
    sweep = tmp_path / "sweep"
    for number, (lr, fid) in enumerate([(1e-3, 9.0), (1e-4, 5.0), (1e-5, None)]):
        _plain_job(sweep, number, lr, fid)
    frame = aggregate.aggregate([sweep], echo=False)
    assert list(frame["rank"].fillna(0)) == [2, 1, 0]
    study_columns = {"study", "vs_seed", "rank_agrees"} | {c for c in frame if "seed_" in c}
    assert not study_columns & set(frame.columns)
    for name in ("table.csv", "table_groups.csv", "table.md", "table.html"):
        text = (sweep / name).read_text()
        assert "seed_" not in text and "Claim" not in text and "Seed ranking" not in text, name
    page = (sweep / "table.html").read_text()
    assert 'id="chart"' in page and (sweep / "ranking.png").stat().st_size > 1000
    assert "param:optimizer.d.lr" not in page.split('id="all-columns"')[0]  # compact: "optimizer.d.lr"


MYSTUDY = '''
COLUMNS = ("paper_fid", "paper_gap")
COMPACT = ("paper_fid",)
SETTINGS = ("paper_fid",)
PUBLISHED = "paper_fid"
PUBLISHED_LABEL = "the paper's FID"
def job_columns(config, row):
    return {"paper_fid": {"a": 7.0, "b": 3.0}[config["reference"]["row"]]}
def annotate(frame, metric):
    frame["paper_gap"] = frame[metric] - frame["paper_fid"]
def findings(frame, metric):
    return [f"paper rows: {int(frame['paper_fid'].notna().sum())}"]
'''


@pytest.mark.slow
def test_the_table_loads_the_study_module_the_runs_name(tmp_path, monkeypatch):
    (tmp_path / "mystudy.py").write_text(MYSTUDY)
    monkeypatch.syspath_prepend(str(tmp_path))
    sweep = tmp_path / "sweep"
    _plain_job(sweep, 0, 1e-3, 9.0, {"study": "mystudy", "row": "a"})
    _plain_job(sweep, 1, 1e-4, 5.0, {"study": "mystudy", "row": "b"})
    frame = aggregate.aggregate([sweep], echo=False)
    assert list(frame["paper_fid"]) == [7.0, 3.0] and list(frame["paper_gap"]) == [2.0, 2.0]
    assert "seed_fid_inception" not in frame  # no 2018 columns for another study's runs
    assert "- paper rows: 2" in (sweep / "table.md").read_text()
    page = (sweep / "table.html").read_text()
    assert "<th title=\"click to sort\">paper_fid</th>" in page.split('id="all-columns"')[0]


def test_an_unknown_study_is_one_clear_error(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    _plain_job(sweep, 0, 1e-3, 9.0, {"study": "nope", "row": "a"})
    assert aggregate.main([str(sweep)]) == 1
    err = capsys.readouterr().err
    assert "reference.study=nope: no module gansweep.report.studies.nope" in err and "Fix:" in err


def test_keras2018_rows_come_from_the_study_module(tmp_path):
    from gansweep.report.studies import keras2018

    sweep = tmp_path / "sweep"
    row = {"study": "keras2018", "row": "Coulomb No.4"}
    job = _plain_job(sweep, 0, 1e-3, 9.0, row)
    summary = json.loads((job / "summary.json").read_text())
    summary["config"]["kernel"]["eps"] = 0.1  # Coulomb No.4's settings exactly
    (job / "summary.json").write_text(json.dumps(summary))
    _plain_job(sweep, 1, 1e-4, 5.0, row)  # another D lr: not the published row's run
    frame = aggregate.collect([sweep])
    assert frame.loc[0, "seed_fid_inception"] == keras2018.PUBLISHED_ROWS["Coulomb No.4"][0]
    assert frame.loc[0, "vs_seed"] == "seed settings"
    assert pd.isna(frame.loc[1, "seed_fid_inception"])
    assert frame.loc[1, "vs_seed"] == "not comparable: d_lr=0.0001 (seed 0.001), eps0=1 (seed 0.1)"


def test_keras2018_findings_count_presets_not_runs_when_presets_repeat():
    from gansweep.report.studies import keras2018

    def frame(rows):
        return pd.DataFrame([{"study": "keras2018", "status": "ok", "vs_seed": "seed settings",
                              "batches_done": keras2018.SEED_BATCHES, "name": r[0],
                              "job": f"{i}_{r[0]}", "seed_row": r[0], "gan_type": r[1],
                              "fid_lenet": r[2], "seed_fid_inception": r[3],
                              "rank_agrees": r[4]} for i, r in enumerate(rows)])

    once = frame([("Standard GAN", "standard", 10.0, 14.66, True),
                  ("Coulomb No.1", "coulomb", 20.0, 52.32, True)])
    assert ("Seed ranking reproduced for 2 of 2 seed presets (Spearman rho 1.00)."
            in keras2018.findings(once, "fid_lenet"))
    twice = frame([("Standard GAN", "standard", 10.0, 14.66, True),
                   ("Standard GAN", "standard", 30.0, 14.66, False),
                   ("Coulomb No.1", "coulomb", 20.0, 52.32, True)])
    line = next(s for s in keras2018.findings(twice, "fid_lenet") if "ranking" in s)
    assert line.startswith("Seed ranking reproduced for 2 of 3 runs (2 seed presets, each run "
                           "ranked on its own; Spearman rho")


def test_seed_presets_name_their_study_and_row():
    for preset, row in (("seed_standard", "Standard GAN"), ("seed_coulomb_5", "Coulomb No.5")):
        cfg = compose_config([f"+experiment={preset}"])
        assert dict(cfg.reference) == {"study": "keras2018", "row": row}


def test_the_tables_help_is_one_screen_and_the_page_options_have_their_own(capsys):
    """gansweep-table --help shows what a user tables with; a results page's options (still
    accepted by gansweep-table, as the pages' markers name them) are gansweep-table-report's."""
    for entry, wanted, unwanted in ((aggregate.main, "gansweep-table-report --help", "--figures"),
                                    (aggregate.report_main, "--figures", None)):
        with pytest.raises(SystemExit):
            entry(["--help"])
        text = capsys.readouterr().out
        assert wanted in text and (unwanted is None or unwanted not in text)
        if entry is aggregate.main:
            assert len(text.splitlines()) <= 24
