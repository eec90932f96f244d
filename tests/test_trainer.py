"""The training loop keeps the seed's train/inference-mode semantics and is reproducible."""

from __future__ import annotations

import json
import signal

import pytest
import torch

from gansweep.gan import step
from gansweep.gan import state as state_module
from gansweep.runs.signals import Interrupted
from gansweep.runs.trainer import Run, run
from tests.helpers import compose_config


def make_run(overrides, tmp_path, extra=()):
    return Run(compose_config([*overrides, *extra]), tmp_path)


def test_fakes_for_the_d_step_come_from_g_in_inference_mode(tiny_overrides, tmp_path):
    r = make_run(tiny_overrides, tmp_path)
    with torch.no_grad():  # give the moving statistics values that differ from batch ones
        r.g.bn2.moving_mean.fill_(0.3)
        r.g.bn2.moving_variance.fill_(2.0)
    before = {k: v.clone() for k, v in r.g.state_dict().items()}
    z = r.state.noise()
    fakes = step.predict_fakes(r.state.parts, z)
    r.g.eval()
    assert torch.equal(fakes, r.g(z))  # moving averages, not batch statistics
    r.g.train()
    assert not torch.allclose(fakes, r.g(z))
    r.g.load_state_dict(before)
    step.predict_fakes(r.state.parts, z)
    for key, value in r.g.state_dict().items():  # predict updates nothing
        assert torch.equal(value, before[key]), key


def test_train_mode_fakes_switch(tiny_overrides, tmp_path):
    r = make_run(tiny_overrides, tmp_path, ["trainer.fake_mode=train"])
    z = r.state.noise()
    step.predict_fakes(r.state.parts, z)
    assert r.g.training
    assert not torch.equal(r.g.bn1.moving_mean, torch.zeros(1024, device=r.device))


def test_g_step_freezes_d_but_keeps_its_dropout_active(tiny_overrides, tmp_path):
    r = make_run(tiny_overrides, tmp_path, ["+experiment=seed_coulomb_1"])
    seen = []
    r.d.dropout.register_forward_hook(lambda m, i, o: seen.append((m.training, (o == 0).float().mean().item())))
    d_before = {k: v.clone() for k, v in r.d.state_dict().items()}
    g_before = {k: v.clone() for k, v in r.g.state_dict().items()}
    step.g_step(r.state.parts, r.state.noise())
    assert seen and seen[0][0] is True and 0.3 < seen[0][1] < 0.7  # dropout zeroed ~half
    for key, value in r.d.state_dict().items():
        assert torch.equal(value, d_before[key]), f"D changed in the G step: {key}"
    assert not torch.equal(r.g.fc1.weight, g_before["fc1.weight"])
    assert all(p.requires_grad for p in r.d.parameters())  # unfrozen again for the D step
    assert r.state.opt_g.iterations == 1 and r.state.opt_d.iterations == 0


def test_d_step_updates_only_d(tiny_overrides, tmp_path):
    r = make_run(tiny_overrides, tmp_path)
    g_before = {k: v.clone() for k, v in r.g.state_dict().items()}
    real = r.data[:32]
    fakes = step.predict_fakes(r.state.parts, r.state.noise())
    w = r.d.fc2.weight.clone()
    step.d_step(r.state.parts, real, fakes, 0)
    assert not torch.equal(w, r.d.fc2.weight)
    for key, value in r.g.state_dict().items():
        assert torch.equal(value, g_before[key]), key
    assert r.state.opt_d.iterations == 1


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


# 20 images in batches of 8: 2 batches an epoch, the last 4 images of each shuffle unused;
# the FID after every epoch shows that evaluation leaves the shuffle stream alone
SHUFFLE = ["dataset.limit=20", "trainer.batch_size=8", "trainer.max_batches_per_epoch=null",
           "trainer.epochs=3", "trainer.checkpoint_every=null", "trainer.sample_every=1000",
           "fid.every_epochs=1", "fid.metrics=[fid]", "+experiment=seed_coulomb_1"]


def _record_batches(monkeypatch, runs: list, batches: list, stop_at_step: int | None = None):
    """Wrap the loop's train_step: append (epoch, batch, real images, noise draws) of every
    step of the newest Run in ``runs``; after step ``stop_at_step`` ask the run to stop, as
    SIGTERM does (it stops at the next batch boundary with a checkpoint)."""
    real_train_step = state_module.train_step

    def recording(parts, real, noise, step_):
        r, draws = runs[-1], []

        def counted():
            draws.append(None)
            return noise()

        out = real_train_step(parts, real, counted, step_)
        batches.append((r.counters.epoch, r.counters.batch, real.clone(), len(draws)))
        if r.counters.step == stop_at_step:
            r.stop_signal = signal.SIGTERM
        return out

    monkeypatch.setattr(state_module, "train_step", recording)


def _seed_shuffle(r: Run, epochs: int) -> list[tuple[int, int, torch.Tensor]]:
    """The batches a run must see, computed apart from the loop: one generator seeded with
    the run's seed feeds, in order, a fresh randperm of the training images at each epoch's
    start and the step's two noise batches (fakes, then the G step) after each batch; the
    images after the last full batch of a permutation are dropped."""
    generator = torch.Generator(r.device).manual_seed(r.cfg.seed)
    size = r.cfg.trainer.batch_size
    expected = []
    for epoch in range(epochs):
        perm = torch.randperm(len(r.data), generator=generator, device=r.device)
        for batch in range(len(r.data) // size):
            expected.append((epoch, batch, r.data[perm[batch * size:(batch + 1) * size]]))
            for _ in range(2):
                r.state.noise_source(size, r.state.latent_dim, generator, r.device)
    return expected


def _assert_batches(seen, expected):
    assert [(e, b) for e, b, *_ in seen] == [(e, b) for e, b, _ in expected]
    assert all(draws == 2 for *_, draws in seen)
    for (epoch, batch, real, _), (_, _, want) in zip(seen, expected):
        same = torch.equal(real, want)
        assert same, f"epoch {epoch}, batch {batch}: not the batch of the seed's shuffle"


def test_each_epoch_trains_on_a_fresh_shuffle_from_the_runs_generator(tiny_overrides, tmp_path,
                                                                      monkeypatch):
    runs, seen = [], []
    _record_batches(monkeypatch, runs, seen)
    runs.append(make_run(tiny_overrides, tmp_path, SHUFFLE))
    r = runs[0]
    assert r.batches_per_epoch == 2  # 20 // 8: the partial batch is dropped
    assert r.train()["status"] == "ok"
    expected = _seed_shuffle(r, epochs=3)
    _assert_batches(seen, expected)
    # each epoch: 16 distinct images, in another order than the epoch before
    epochs = [torch.cat([real for e, _, real, _ in seen if e == epoch]) for epoch in range(3)]
    for images in epochs:
        assert len(torch.unique(images.flatten(1), dim=0)) == 16
    assert not torch.equal(epochs[0], epochs[1]) and not torch.equal(epochs[1], epochs[2])


def test_a_resume_mid_epoch_keeps_that_epochs_shuffle(tiny_overrides, tmp_path, monkeypatch):
    runs, seen = [], []
    _record_batches(monkeypatch, runs, seen, stop_at_step=2)  # after epoch 1's batch 0
    runs.append(make_run(tiny_overrides, tmp_path, SHUFFLE))
    with pytest.raises(Interrupted):
        runs[0].train()
    assert [(e, b) for e, b, *_ in seen] == [(0, 0), (0, 1), (1, 0)]
    runs.append(make_run(tiny_overrides, tmp_path, SHUFFLE))  # relaunched on the same dir
    assert runs[1].train()["status"] == "ok"
    _assert_batches(seen, _seed_shuffle(runs[1], epochs=3))  # epoch 1 goes on with batch 1


def test_uniform_noise_range(tiny_overrides, tmp_path):
    r = make_run(tiny_overrides, tmp_path)
    z = torch.cat([r.state.noise() for _ in range(20)])
    assert z.shape[1] == 100 and z.min() >= -1 and z.max() <= 1 and z.min() < -0.99
