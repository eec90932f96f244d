"""Budget extension (gansweep.runs.extend): a job asked for more epochs than a finished run of the
same configuration beside it continues that run, and ends exactly where a run trained at the
larger budget from the start ends; a setting that ties a schedule to the budget is never
extended; runs written by the previous release extend too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from gansweep.runs import extend
from gansweep.runs.checkpoint import ResumeError
from gansweep.runs.trainer import run
from tests.helpers import compose_config

FIXTURE = Path(__file__).parent / "fixtures" / "previous_release" / "ring8_2ep"
TIMING = ("seconds",)


def _rows(job: Path) -> list[dict]:
    rows = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def _summary(job: Path) -> dict:
    return json.loads((job / "summary.json").read_text())


def assert_same_run(a: Path, b: Path) -> None:
    """metrics.jsonl (but wall time), both checkpoints' tensors, every sample grid and every
    metric of summary.json equal to the bit."""
    assert _rows(a) == _rows(b)
    for name in ("last.pt", "best.pt"):
        if not (a / "checkpoints" / name).exists():
            assert not (b / "checkpoints" / name).exists()
            continue
        sa, sb = (torch.load(d / "checkpoints" / name, weights_only=True) for d in (a, b))
        assert sa["best"] == sb["best"]
        for part in ("generator", "discriminator", "opt_d", "opt_g"):
            if part in sa:
                assert torch.equal(torch.cat([t.flatten().double() for t in _tensors(sa[part])]),
                                   torch.cat([t.flatten().double() for t in _tensors(sb[part])]))
        if "counters" in sa:
            keep = ("epoch", "batch", "step")
            assert {k: sa["counters"][k] for k in keep} == {k: sb["counters"][k] for k in keep}
            assert torch.equal(sa["rng"]["torch"], sb["rng"]["torch"])
            assert torch.equal(sa["rng"]["noise"], sb["rng"]["noise"])
    grids = sorted(p.name for p in (a / "samples").glob("*.png"))
    assert grids == sorted(p.name for p in (b / "samples").glob("*.png"))
    for name in grids:
        assert (Image.open(a / "samples" / name).tobytes()
                == Image.open(b / "samples" / name).tobytes()), name
    sa, sb = _summary(a), _summary(b)
    varying = {"wall_seconds", "seconds_per_step_median", "fid", "extended_from", "pid", "host"}
    assert {k: v for k, v in sa.items() if k not in varying} == \
        {k: v for k, v in sb.items() if k not in varying}


def _tensors(tree):
    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, dict):
        for key in sorted(tree, key=str):
            yield from _tensors(tree[key])
    elif isinstance(tree, (list, tuple)):
        for value in tree:
            yield from _tensors(value)


def _overrides(tiny_overrides, epochs: int, every: str = "1") -> list[str]:
    return [*tiny_overrides, "+experiment=seed_coulomb_1", "trainer.max_batches_per_epoch=3",
            "trainer.batch_size=32", "trainer.sample_every=2", f"fid.every_epochs={every}",
            f"trainer.epochs={epochs}"]


@pytest.mark.slow
def test_extending_2_epochs_to_3_equals_3_epochs_from_scratch(tiny_overrides, tmp_path):
    sweep = tmp_path / "sweep"
    short = run(compose_config(_overrides(tiny_overrides, 2)), sweep / "a")
    donor_files = {p: p.read_bytes() for p in (sweep / "a").rglob("*") if p.is_file()
                   and p.name not in (".lock", ".lock.owner")}
    longer = run(compose_config(_overrides(tiny_overrides, 3)), sweep / "b")
    scratch = run(compose_config(_overrides(tiny_overrides, 3)), tmp_path / "alone" / "c")

    assert short["epochs_done"] == 2 and longer["epochs_done"] == scratch["epochs_done"] == 3
    assert longer["extended_from"]["epochs"] == 2 and "extended_from" not in scratch
    assert_same_run(sweep / "b", tmp_path / "alone" / "c")
    # the shorter run is as it was: readable at its own budget
    assert {p: p.read_bytes() for p in donor_files} == donor_files
    assert _summary(sweep / "a")["epochs_done"] == 2


@pytest.mark.slow
def test_without_evaluations_on_the_way_the_best_is_the_final_g_too(tiny_overrides, tmp_path):
    """fid.every_epochs=null (the default): the shorter run's final evaluation made its
    best.pt; a run at the larger budget from the start has no evaluation there, so its best
    is its own final G. The extension must end the same."""
    sweep = tmp_path / "sweep"
    run(compose_config(_overrides(tiny_overrides, 1, "null")), sweep / "a")
    run(compose_config(_overrides(tiny_overrides, 2, "null")), sweep / "b")
    run(compose_config(_overrides(tiny_overrides, 2, "null")), tmp_path / "alone" / "c")
    assert _summary(sweep / "b")["best_epoch"] == 1 and "extended_from" in _summary(sweep / "b")
    assert_same_run(sweep / "b", tmp_path / "alone" / "c")


@pytest.mark.slow
def test_a_donor_whose_earlier_best_g_is_gone_is_not_used(tiny_overrides, tmp_path):
    """Evaluations every 2 epochs, a 3-epoch donor: its final evaluation (not one a 5-epoch
    run makes) may have replaced the G of its epoch-2 best in best.pt. When it did, the donor
    is passed over (and refused by name), since the longer run's best.pt could not be made."""
    from gansweep.runs import extend

    sweep = tmp_path / "sweep"
    donor = run(compose_config(_overrides(tiny_overrides, 3, "2")), sweep / "a")
    cfg = compose_config(_overrides(tiny_overrides, 5, "2"))
    if donor["best_epoch"] != 2:
        pytest.skip("this seed's final evaluation did not beat epoch 2's: nothing was lost")
    assert extend.find_donor(cfg, sweep / "b") is None
    named = compose_config([*_overrides(tiny_overrides, 5, "2"), f"trainer.extend_from={sweep / 'a'}"])
    with pytest.raises(ResumeError, match="cannot be recovered"):
        extend.prepare(named, tmp_path / "c")


def test_a_job_killed_while_adopting_adopts_again(tmp_path):
    """The record is written first and marked complete last: a dir whose adoption a kill
    interrupted (here: a record marked incomplete and a stray link) is adopted again."""
    from gansweep.runs import extend

    sweep = tmp_path / "sweep"
    shutil.copytree(FIXTURE, sweep / "old")
    new = sweep / "new"
    (new / "checkpoints").mkdir(parents=True)
    (new / extend.RECORD).write_text(json.dumps({"run": "x", "complete": False}))
    import os

    os.link(FIXTURE / "checkpoints" / "last.pt", new / "checkpoints" / "last.pt")
    cfg = compose_config(_mixture(3, sweep))
    assert extend.prepare(cfg, new) == sweep / "old"
    record = json.loads((new / extend.RECORD).read_text())
    assert record["complete"] and record["epochs"] == 2
    assert _rows(new) == _rows(FIXTURE)
    assert extend.prepare(cfg, new) is None  # complete now: resume it, adopt nothing


@pytest.mark.slow
def test_a_budget_tied_schedule_is_never_extended(tiny_overrides, tmp_path):
    """A toy schedule that depends on the total budget (the eps half-life set from
    trainer.epochs) puts the budget into the fingerprint: no donor is found, and naming one
    is refused before anything trains, with the key that differs."""
    tied = ["kernel.eps_half_life=${trainer.epochs}"]
    sweep = tmp_path / "sweep"
    run(compose_config([*_overrides(tiny_overrides, 2), *tied]), sweep / "a")
    cfg = compose_config([*_overrides(tiny_overrides, 3), *tied])
    assert extend.find_donor(cfg, sweep / "b") is None
    longer = run(cfg, sweep / "b")
    assert "extended_from" not in longer and longer["batches_done"] == 9  # from step 0
    named = compose_config([*_overrides(tiny_overrides, 3), *tied,
                            f"trainer.extend_from={sweep / 'a'}"])
    with pytest.raises(ResumeError, match=r"differs in: kernel.eps_half_life.*Fix"):
        run(named, tmp_path / "c")
    assert not (tmp_path / "c" / "checkpoints").exists()


def _mixture(epochs: int, root: Path, *extra: str) -> list[str]:
    return ["+experiment=mixture_coulomb", f"trainer.epochs={epochs}",
            "trainer.max_batches_per_epoch=5", "dataset.size=2048", "dataset.num_samples=500",
            "model.hidden=16", "trainer.sample_every=1000", "trainer.checkpoint_every=null",
            "trainer.threads=1", "trainer.progress=off", *extra]


@pytest.mark.slow
def test_a_run_of_the_previous_release_extends(tmp_path):
    """tests/fixtures/previous_release/ring8_2ep (2 epochs, written by the release before
    extension existed) is continued to 3 epochs: its rows and state carry over, one more
    epoch is trained, and the fixture itself is untouched."""
    sweep = tmp_path / "sweep"
    shutil.copytree(FIXTURE, sweep / "old")
    before = (sweep / "old" / "checkpoints" / "last.pt").read_bytes()
    longer = run(compose_config(_mixture(3, sweep)), sweep / "new")
    assert longer["status"] == "ok" and longer["extended_from"]["epochs"] == 2
    assert longer["batches_done"] == 12 and longer["epochs_done"] == 3
    old_rows = _rows(sweep / "old")
    assert _rows(sweep / "new")[:len(old_rows)] == old_rows
    assert [r["epoch"] for r in _rows(sweep / "new")[len(old_rows):]] == [2, 2]
    assert (sweep / "old" / "checkpoints" / "last.pt").read_bytes() == before


def test_a_previous_release_run_of_another_config_is_refused_naming_the_key(tmp_path):
    cfg = compose_config([*_mixture(3, tmp_path), "kernel.eps=2.0",
                          f"trainer.extend_from={FIXTURE}"])
    with pytest.raises(ResumeError, match=r"cannot extend .*ring8_2ep.*differs in: "
                                          r"gan_type.kernel.eps|differs in: kernel.eps"):
        extend.prepare(cfg, tmp_path / "new")
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())


def test_a_longer_run_is_not_a_donor(tmp_path):
    cfg = compose_config(_mixture(1, tmp_path, f"trainer.extend_from={FIXTURE}"))
    with pytest.raises(ResumeError, match="trained 2 epochs, more than trainer.epochs=1"):
        extend.prepare(cfg, tmp_path / "new")
