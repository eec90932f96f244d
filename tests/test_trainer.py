"""The training loop keeps the seed's train/inference-mode semantics and is reproducible."""

from __future__ import annotations

import pytest

import json

import torch

from tests.helpers import compose_config
from gansweep import step
from gansweep.trainer import Run, run


def make_run(overrides, tmp_path, extra=()):
    return Run(compose_config([*overrides, *extra]), tmp_path)


def test_fakes_for_the_d_step_come_from_g_in_inference_mode(tiny_overrides, tmp_path):
    r = make_run(tiny_overrides, tmp_path)
    with torch.no_grad():  # give the moving statistics values that differ from batch ones
        r.g.bn2.moving_mean.fill_(0.3)
        r.g.bn2.moving_variance.fill_(2.0)
    before = {k: v.clone() for k, v in r.g.state_dict().items()}
    z = r.noise()
    fakes = step.predict_fakes(r.parts, z)
    r.g.eval()
    assert torch.equal(fakes, r.g(z))  # moving averages, not batch statistics
    r.g.train()
    assert not torch.allclose(fakes, r.g(z))
    r.g.load_state_dict(before)
    step.predict_fakes(r.parts, z)
    for key, value in r.g.state_dict().items():  # predict updates nothing
        assert torch.equal(value, before[key]), key


def test_train_mode_fakes_switch(tiny_overrides, tmp_path):
    r = make_run(tiny_overrides, tmp_path, ["trainer.fake_mode=train"])
    z = r.noise()
    fakes = step.predict_fakes(r.parts, z)
    assert r.g.training
    assert not torch.equal(r.g.bn1.moving_mean, torch.zeros(1024, device=r.device))


def test_g_step_freezes_d_but_keeps_its_dropout_active(tiny_overrides, tmp_path):
    r = make_run(tiny_overrides, tmp_path, ["+experiment=seed_coulomb_1"])
    seen = []
    r.d.dropout.register_forward_hook(lambda m, i, o: seen.append((m.training, (o == 0).float().mean().item())))
    d_before = {k: v.clone() for k, v in r.d.state_dict().items()}
    g_before = {k: v.clone() for k, v in r.g.state_dict().items()}
    step.g_step(r.parts, r.noise())
    assert seen and seen[0][0] is True and 0.3 < seen[0][1] < 0.7  # dropout zeroed ~half
    for key, value in r.d.state_dict().items():
        assert torch.equal(value, d_before[key]), f"D changed in the G step: {key}"
    assert not torch.equal(r.g.fc1.weight, g_before["fc1.weight"])
    assert all(p.requires_grad for p in r.d.parameters())  # unfrozen again for the D step
    assert r.opt_g.iterations == 1 and r.opt_d.iterations == 0


def test_d_step_updates_only_d(tiny_overrides, tmp_path):
    r = make_run(tiny_overrides, tmp_path)
    g_before = {k: v.clone() for k, v in r.g.state_dict().items()}
    real = r.data[:32]
    fakes = step.predict_fakes(r.parts, r.noise())
    w = r.d.fc2.weight.clone()
    step.d_step(r.parts, real, fakes, 0)
    assert not torch.equal(w, r.d.fc2.weight)
    for key, value in r.g.state_dict().items():
        assert torch.equal(value, g_before[key]), key
    assert r.opt_d.iterations == 1


def _train(overrides, path):
    run(compose_config(overrides), path)
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_seeded_runs_are_reproducible(tiny_overrides, tmp_path):
    overrides = [*tiny_overrides, "+experiment=seed_coulomb_4"]
    a = _train(overrides, tmp_path / "a")
    b = _train(overrides, tmp_path / "b")
    strip = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
    assert strip(a) == strip(b)
    wa = torch.load(tmp_path / "a/checkpoints/last.pt", weights_only=False)["generator"]
    wb = torch.load(tmp_path / "b/checkpoints/last.pt", weights_only=False)["generator"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = _train([*overrides, "seed=1"], tmp_path / "c")
    assert strip(c) != strip(a)


@pytest.mark.slow
def test_run_writes_metrics_summary_samples_checkpoint(tiny_overrides, tmp_path):
    summary = run(compose_config([*tiny_overrides, "+experiment=seed_coulomb_1",
                                  "trainer.epochs=2"]), tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["batch"], r["step"]) for r in rows] == [(0, 0, 0), (0, 1, 1), (1, 0, 2), (1, 1, 3)]
    assert set(rows[0]) >= {"d_loss", "g_loss", "eps", "lr_d", "lr_g", "seconds"}
    assert rows[3]["eps"] == 2 ** (-3 / 5000)
    assert rows[1]["lr_d"] == 1e-3 / (1 + 1e-3 * 1)
    assert summary["status"] == "ok" and summary["batches_done"] == 4
    assert json.loads((tmp_path / "summary.json").read_text())["epochs_done"] == 2
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names == ["0000_0000.png", "0000_0001.png", "0001_0000.png", "0001_0001.png", "final.png"]
    state = torch.load(tmp_path / "checkpoints/last.pt", weights_only=False)
    assert {k: state["counters"][k] for k in ("epoch", "batch", "step")} == {"epoch": 2, "batch": 0, "step": 4}
    assert state["opt_d"]["iterations"] == 4 and state["opt_g"]["iterations"] == 4


def test_each_epoch_reshuffles_and_drops_the_partial_batch(tiny_overrides, tmp_path):
    r = make_run(tiny_overrides, tmp_path, ["trainer.max_batches_per_epoch=null",
                                            "trainer.batch_size=100"])
    assert r.batches_per_epoch == 5  # 512 // 100
    first = torch.randperm(512, generator=r.generator, device=r.device)
    second = torch.randperm(512, generator=r.generator, device=r.device)
    assert not torch.equal(first, second)


def test_uniform_noise_range(tiny_overrides, tmp_path):
    r = make_run(tiny_overrides, tmp_path)
    z = torch.cat([r.noise() for _ in range(20)])
    assert z.shape[1] == 100 and z.min() >= -1 and z.max() <= 1 and z.min() < -0.99
