"""Successive halving (``hydra/sweeper=halving``, gansweep.sweep.halving): the budget ladder, the
ranking and promotion on a toy grid with a deterministic objective, a relaunch after a kill
mid-rung, a real sweep whose promoted runs extend their shorter runs, and bad input refused
before anything trains."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gansweep.sweep import halving
from gansweep.report import halving as report
from tests.helpers import CHEAP_FID, ON_TEST_DEVICE, REPO

APP = REPO / "tests" / "halving_app" / "app.py"
GRID = ["x=0,1,2,3,4,5", "seed=0,1,2", "hydra.sweeper.min_epochs=1",
        "hydra.sweeper.max_epochs=9", "hydra.sweeper.eta=3"]


def toy(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(APP), "-m", "hydra/sweeper=halving", *GRID,
                           f"hydra.sweep.dir={tmp_path / 'sweep'}", f"calls={tmp_path / 'calls'}",
                           f"cache={tmp_path / 'cache'}", *extra],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_the_ladder():
    assert halving.ladder(1, 9, 3) == [1, 3, 9]
    assert halving.ladder(3, 27, 3) == [3, 9, 27]
    assert halving.ladder(2, 10, 2) == [2, 5, 10]  # rounded down from the top
    assert halving.ladder(1, 30, 3) == [1, 3, 10, 30]


@pytest.mark.parametrize("args, message", [
    ((1, 9, 1), "eta=1: must be an integer >= 2"),
    ((5, 3, 2), "min_epochs=5, max_epochs=3: need integers with 1 <= min_epochs <= max_epochs"),
    ((3, 5, 2), "one rung only .*Fix: lower min_epochs or eta"),
    ((0, 5, 2), "need integers with 1 <= min_epochs"),
])
def test_a_ladder_that_cannot_be_built_is_refused(args, message):
    with pytest.raises(halving.HalvingError, match=message):
        halving.ladder(*args)


def test_promotion_and_means():
    scores = {("a",): 3.0, ("b",): 1.0, ("c",): 2.0, ("d",): float("inf")}
    assert halving.promote(scores, 2) == [("b",), ("c",)]
    assert halving.promote({("a",): 1.0}, 3) == [("a",)]  # at least one goes up
    # a setting whose runs failed or diverged never goes up, even to fill the quota
    assert halving.promote({("a",): 1.0, ("b",): float("inf"), ("c",): float("inf")}, 1) \
        == [("a",)]
    assert halving.promote({("a",): float("inf")}, 3) == []
    assert halving.ranks({("a",): 0.0, ("b",): 1.0, ("c",): 1.0, ("d",): 4.0}) == \
        {("a",): 1, ("b",): 2, ("c",): 2, ("d",): 4}
    assert halving.mean_objective([1.0, 3.0]) == 2.0
    assert halving.mean_objective([1.0, None]) == float("inf")  # a failed seed sinks it
    assert halving.labels([("e=1", "s=0"), ("e=2", "s=0")]) == {("e=1", "s=0"): "e=1",
                                                                 ("e=2", "s=0"): "e=2"}


def test_a_tie_at_the_cut_is_recorded_and_shown():
    """Promotion that must choose among equal means (e.g. an objective still 0 for most
    settings at a low budget) says so: in halving.json, in the log and in the table."""
    scores = {("a",): -0.5, ("b",): 0.0, ("c",): 0.0, ("d",): 0.0, ("e",): 0.0, ("f",): 0.0}
    promoted = halving.promote(scores, 3)
    assert promoted == [("a",), ("b",)]  # ties kept in grid order
    assert halving.tied_at_cut(scores, promoted) == {"mean": 0.0, "settings": 5, "promoted": 1}
    assert halving.tied_at_cut({("a",): 1.0, ("b",): 2.0, ("c",): 2.0}, [("a",)]) is None
    assert halving.tied_at_cut(scores, []) is None
    record = {"budget": "trainer.epochs", "ladder": [1, 3], "eta": 3, "settings": 6, "seeds": 1,
              "rungs": [{"budget": 1, "tied_at_cut": {"mean": 0.0, "settings": 5,
                                                      "promoted": 1}, "settings": []}]}
    lines = report.summary_lines(Path("."), record)
    assert "trainer.epochs=1: 5 settings tie at the cut (mean objective 0); 1 went up in grid " \
           "order: this rung could not rank them." in lines


def test_halving_on_a_toy_grid(tmp_path):
    """6 settings x 3 seeds on 1, 3, 9 epochs, eta 3: 18 + 6 + 3 jobs; the objective
    (x - 2)^2 + (seed - 1) * 4 / epochs averages the seed term away, so x=1 and x=2 (means 1
    and 0) go up, then x=2 alone."""
    done = toy(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(calls(tmp_path)) == 18 + 6 + 3
    record = json.loads((tmp_path / "sweep" / "halving.json").read_text())
    assert record["ladder"] == [1, 3, 9] and record["settings"] == 6 and record["seeds"] == 3
    first, second, top = record["rungs"]
    assert [s["setting"] for s in first["settings"] if s["promoted"]] == ["x=1", "x=2"]
    assert [s["setting"] for s in second["settings"]] == ["x=1", "x=2"]
    assert [s["setting"] for s in second["settings"] if s["promoted"]] == ["x=2"]
    assert [(s["setting"], s["mean"], s["rank"]) for s in top["settings"]] == [("x=2", 0.0, 1)]
    x0 = next(s for s in first["settings"] if s["setting"] == "x=0")
    assert x0["objective"] == [0.0, 4.0, 8.0] and x0["mean"] == 4.0 and x0["rank"] == 4  # ties: grid order
    assert "halving: best setting x=2" in done.stderr + done.stdout


def test_a_relaunch_after_a_kill_mid_rung_redoes_nothing_finished(tmp_path):
    killed = toy(tmp_path, "crash_at='x=2 seed=1 epochs=3'")
    assert killed.returncode != 0
    before = calls(tmp_path)
    assert before[-1] == "x=2 seed=1 epochs=3" and len(before) == 18 + 5  # killed: 5th of rung 2
    done = toy(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    after = calls(tmp_path)[len(before):]
    # the killed job runs again, then the rest of rung 2 and rung 3; rung 1 is not redone
    assert after == ["x=2 seed=1 epochs=3", "x=2 seed=2 epochs=3", "x=2 seed=0 epochs=9",
                     "x=2 seed=1 epochs=9", "x=2 seed=2 epochs=9"]
    uninterrupted = tmp_path / "again"
    uninterrupted.mkdir()
    assert toy(uninterrupted).returncode == 0
    def outcome(root: Path) -> list:
        rungs = json.loads((root / "sweep" / "halving.json").read_text())["rungs"]
        return [[(s["setting"], s["objective"], s["rank"], s["promoted"]) for s in r["settings"]]
                for r in rungs]

    assert outcome(tmp_path) == outcome(uninterrupted)


def _mixture_sweep(sweep: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "gansweep.train", "-m", "hydra/sweeper=halving", *ON_TEST_DEVICE,
           "+experiment=mixture_coulomb", "kernel.eps=0.3,1,3,10", "seed=0,1",
           "trainer.max_batches_per_epoch=3", "dataset.size=2048", "dataset.num_samples=500",
           "model.hidden=16", "trainer.sample_every=1000", "trainer.checkpoint_every=null",
           "hydra.sweeper.min_epochs=1", "hydra.sweeper.max_epochs=4", "hydra.sweeper.eta=2",
           f"hydra.sweep.dir={sweep}", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=sweep.parent, timeout=600)


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory) -> Path:
    sweep = tmp_path_factory.mktemp("real") / "sweep"
    done = _mixture_sweep(sweep)
    assert done.returncode == 0, done.stderr[-3000:]
    return sweep


@pytest.mark.slow
def test_a_real_halving_sweep_extends_its_promoted_runs(real_sweep):
    sweep = real_sweep
    record = json.loads((sweep / "halving.json").read_text())
    assert record["ladder"] == [1, 2, 4] and [len(r["settings"]) for r in record["rungs"]] == [4, 2, 1]
    for lower, upper in zip(record["rungs"], record["rungs"][1:]):
        below = {s["setting"]: s["jobs"] for s in lower["settings"]}
        for setting in upper["settings"]:
            for job, donor in zip(setting["jobs"], below[setting["setting"]]):
                summary = json.loads((sweep / job / "summary.json").read_text())
                assert summary["extended_from"]["run"] == str((sweep / donor).resolve())
    spent = report.steps(sweep, record)
    assert spent["batches"] == 3 * (8 * 1 + 4 * 1 + 2 * 2)  # each rung trains its increment
    assert spent["full_grid_batches"] == 3 * 8 * 4
    table = (sweep / "table.md").read_text()
    assert table.startswith("## Successive halving") and "Rank agreement trainer.epochs=1 -> 2" in table
    assert "Successive halving" in (sweep / "table.html").read_text()
    again = _mixture_sweep(sweep)  # a relaunch: every job is finished, none trains
    assert again.returncode == 0 and "training mixture_coulomb" not in again.stderr


@pytest.mark.slow
def test_the_search_report_reads_halving_against_the_full_grid(real_sweep, tmp_path):
    """gansweep-table <halving> --against <grid> --report: the cost of each, the winners, the
    rungs against the full budget, and the halving runs at the top budget equal to the grid's
    runs trained from step 0 (exact extension at scale); same dirs, same bytes."""
    from gansweep.report import aggregate, search

    grid = tmp_path / "grid"
    cmd = [sys.executable, "-m", "gansweep.train", "-m", *ON_TEST_DEVICE,
           "+experiment=mixture_coulomb", "kernel.eps=10,3,1,0.3", "seed=1,0",  # another order
           "trainer.max_batches_per_epoch=3", "dataset.size=2048", "dataset.num_samples=500",
           "model.hidden=16", "trainer.sample_every=1000", "trainer.checkpoint_every=null",
           "trainer.epochs=4", f"hydra.sweep.dir={grid}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    found = search.analyse(real_sweep, grid)
    assert found.cost["grid"] == {"jobs": 8, "batches": 8 * 4 * 3,
                                  "seconds": pytest.approx(found.cost["grid"]["seconds"])}
    assert (found.cost["halving"]["jobs"], found.cost["halving"]["batches"]) == (14, 48)
    assert found.cost["halving"]["seconds"] > 0
    assert found.exact == {"compared": 2, "equal": 2, "differing": []}
    assert [r["settings"] for r in found.rungs] == [4, 2, 1]
    assert sorted(found.grid["label"]) == sorted(f"kernel.eps={e}" for e in ("0.3", "1", "3", "10"))
    best, pick = found.winners["grid"], found.winners["halving"]
    assert found.grid.iloc[0]["label"] == best["label"]
    assert found.winners["regret"] == pytest.approx(best["mean"] - pick["mean"])  # maximised
    assert found.winners["regret"] >= 0  # the grid best has the best mean by definition
    axes = search.axis_effects(found.grid)
    assert [a["override"] for a in axes] == [f"kernel.eps={e}" for e in ("0.3", "1", "3", "10")]
    assert all(a["settings"] == 1 for a in axes) and sorted(a["best_rank"] for a in axes) == \
        sorted(found.grid["rank"])

    page = tmp_path / "page.md"
    argv = [str(real_sweep), "--against", str(grid), "--report", str(page), "--commit", "abc"]
    assert aggregate.main(argv) == 0
    first = page.read_text()
    assert "### Exact extension at scale" in first and "2 of 2 equal" in first
    assert "**Commit:** abc" in first and str(tmp_path) not in first
    assert aggregate.main(argv) == 0 and page.read_text() == first  # same dirs, same bytes

    assert aggregate.main([str(grid), "--against", str(real_sweep), "--report",
                           str(tmp_path / "x.md")]) == 1  # a grid has no halving record
    with pytest.raises(SystemExit):
        aggregate.main([str(real_sweep), "--against", str(grid)])  # --against needs --report
    _search_refuses_or_notes_what_is_not_like_for_like(real_sweep, grid, tmp_path)


def _search_refuses_or_notes_what_is_not_like_for_like(sweep: Path, grid: Path, tmp: Path):
    import shutil

    from gansweep.report import search

    def edit(job: Path, **changes):
        path = job / "summary.json"
        summary = json.loads(path.read_text())
        summary.update(changes)
        path.write_text(json.dumps(summary))

    jobs = sorted(p for p in grid.iterdir() if (p / "summary.json").exists())
    metric = json.loads((jobs[0] / "summary.json").read_text())["objective_metric"]

    twice = shutil.copytree(grid, tmp / "twice")  # a run copied under another name
    shutil.copytree(twice / jobs[0].name, twice / "99_copy")
    with pytest.raises(search.SearchError, match="are the same setting and seed; keep one"):
        search.analyse(sweep, twice)

    other = shutil.copytree(grid, tmp / "other")  # the grid ranked by another objective
    edit(other / jobs[0].name, objective_metric="high_quality")
    with pytest.raises(search.SearchError, match="ranks by high_quality, the halving sweep by"):
        search.analyse(sweep, other)

    broken = shutil.copytree(grid, tmp / "broken")  # a seed missing, a setting without a value
    shutil.rmtree(broken / jobs[0].name)
    key = search.setting_key(json.loads((jobs[1] / "summary.json").read_text()))
    for job in jobs[1:]:
        if search.setting_key(json.loads((job / "summary.json").read_text())) == key:
            edit(broken / job.name, **{metric: None})
        (broken / job.name / "samples" / "final.png").unlink(missing_ok=True)
    found = search.analyse(sweep, broken)
    assert any("finished seeds" in n and "are not the halving sweep's" in n for n in found.notes)
    assert any(f"no finite {metric} in the grid; ranked last" in n for n in found.notes)
    assert found.grid.iloc[-1]["key"] == key and found.exact["compared"] == 0
    assert any(n.startswith("not compared for exactness") for n in found.notes)

    record = shutil.copytree(sweep, tmp / "record", symlinks=True)
    (record / "halving.json").write_text("{\"rungs\": [")
    with pytest.raises(search.SearchError, match="not a halving record the sweeper wrote"):
        search.analyse(record, grid)


@pytest.mark.parametrize("extra, message", [
    (["fid=none"], "ranks settings by fid.objective, and fid=none computes none"),
    (["trainer.epochs=3"], "trainer.epochs=3: the halving sweeper sets trainer.epochs itself"),
    (["hydra.sweeper.min_epochs=3", "hydra.sweeper.max_epochs=4"], "one rung only"),
])
def test_bad_input_is_refused_before_anything_trains(tmp_path, extra, message):
    cmd = [sys.executable, "-m", "gansweep.train", "-m", "hydra/sweeper=halving",
           "+experiment=seed_standard", "seed=0,1", "trainer=smoke", *CHEAP_FID,
           f"hydra.sweep.dir={tmp_path / 'sweep'}", *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr[-2000:]
    assert not list((tmp_path / "sweep").glob("*/summary.json"))  # nothing trained
