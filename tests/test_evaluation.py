"""One evaluation pass (gansweep.fid.evaluator): the seeded reference features, every metric
named by extractor in summary.json and metrics.jsonl, the floors, the objective's sign and
checkpoints/best.pt (also across a resume)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from tests.helpers import compose_config

from gansweep import artifacts
from gansweep.runs import trainer
from gansweep.fid import cache as fid_cache, extractors as fid_extractors, metrics as fid_metrics
from gansweep.gan import step as step_module
from gansweep.fid.evaluator import FidEvaluator, build_evaluator
from gansweep.runs.trainer import Run, run
from gansweep.schema import ConfigError

KEYS = ["fid_lenet", "kid_lenet", "precision_lenet", "recall_lenet", "density_lenet",
        "coverage_lenet"]


@pytest.fixture
def overrides(tiny_overrides, tmp_path):
    return tiny_overrides + [f"fid.cache_dir={tmp_path / 'cache'}", "fid.ref_features=600"]


def test_reference_features_are_a_cached_seeded_subset(mnist_root, tmp_path, monkeypatch):
    ext = fid_extractors.load_extractor("lenet", "cpu")
    feats = fid_cache.reference_features(ext, mnist_root, 1000, 300, seed=3, cache_dir=tmp_path)
    assert feats.shape == (300, 128) and feats.dtype == np.float32
    # the same images the seeded draw names, in draw order
    index = np.random.RandomState(3).choice(1000, 300, replace=False)
    from gansweep.data import load_mnist
    images = load_mnist(mnist_root, "train", 1000).x[torch.from_numpy(index[:5])]
    np.testing.assert_allclose(feats[:5], ext.features(images), rtol=1e-5, atol=1e-5)
    cached = list((tmp_path / "stats").glob("ref_lenet_*_1000_*_features-300-seed3.npy"))
    assert len(cached) == 1

    def boom(*args, **kwargs):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(fid_extractors.Extractor, "features", boom)
    np.testing.assert_array_equal(
        fid_cache.reference_features(ext, mnist_root, 1000, 300, seed=3, cache_dir=tmp_path),
        feats)


def test_objective_sign_and_best_direction():
    ev = build_evaluator(compose_config(["fid.objective=recall", "fid.best_metric=kid"]).fid)
    values = {"fid_lenet": 30.0, "recall_lenet": 0.25, "kid_lenet": 0.1}
    assert ev.objective(values) == -0.25  # maximised: negated for minimisers
    assert (ev.best_key, ev.lower_is_better) == ("kid_lenet", True)
    assert build_evaluator(compose_config([]).fid).objective({"fid_lenet": 3.0}) == 3.0
    assert ev.objective({"recall_lenet": math.nan}) == math.inf
    assert fid_metrics.is_better(0.5, 0.6, lower=True) and not fid_metrics.is_better(0.6, 0.5, True)
    assert fid_metrics.is_better(0.6, 0.5, lower=False)
    assert not fid_metrics.is_better(math.nan, None, True) and fid_metrics.is_better(1.0, None, True)


@pytest.mark.parametrize("override,text", [
    ("fid.metrics=[fid,sharpness]", "fid.metrics"),
    ("fid.best_metric=kid", "fid.best_metric"),
    ("fid.objective=coverage", "fid.objective"),
])
def test_bad_metric_settings_are_refused(tiny_overrides, tmp_path, override, text):
    cfg = compose_config(tiny_overrides + ["fid.metrics=[fid,recall]", override])
    with pytest.raises(ConfigError, match=text):
        run(cfg, tmp_path)
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.slow
def test_every_metric_in_one_pass_curves_best_and_floor(overrides, tmp_path):
    cfg = compose_config(overrides + ["trainer.epochs=2", "fid.every_epochs=1",
                                      "fid.objective=coverage"])
    ev = build_evaluator(cfg.fid, data_root=cfg.dataset.root)
    floor = ev.metric_floor()  # the real-vs-real values, cached for the run to report
    assert floor["fid_lenet"] < 50 and floor["precision_lenet"] > 0.5
    assert ev.metric_floor(compute=False) == floor
    summary = run(cfg, tmp_path / "run")
    for key in KEYS:
        assert np.isfinite(summary[key]), key
        if key != "fid_lenet":  # the FID's floor is fid_cache.floor's (floor_lenet), as before
            assert summary[f"floor_{key}"] == floor[key], key
    assert summary["objective"] == -summary["coverage_lenet"]
    assert summary["objective_metric"] == "coverage_lenet"
    details = summary["fid"]
    assert details["ref_features"] == 600 and details["real_samples"] == 200
    assert details["kid_subset_size"] == 200 and details["kid_subsets"] == 100
    assert set(details["seconds"]) >= {"fid", "kid", "prdc", "total"}
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    evals = [r for r in rows if "kid_lenet" in r]
    assert len(evals) == 1 and set(KEYS) <= set(evals[0])
    # best.pt: the better of epoch 0's row and the final values, by FID (the default)
    candidates = [(evals[0]["fid_lenet"], 0), (summary["fid_lenet"], 1)]
    best_value, best_epoch = min(candidates)
    assert summary["best_epoch"] == best_epoch and summary["best_fid_lenet"] == best_value
    best = artifacts.load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best["best"]["epoch"] == best_epoch and set(best) >= {"generator", "discriminator"}


@pytest.mark.slow
def test_resume_keeps_the_best(overrides, tmp_path, monkeypatch):
    """Evaluations scripted per epoch (FID 5, 9, 7): the best is epoch 0. A run interrupted in
    epoch 1 and resumed must still say epoch 0, with epoch 0's weights in best.pt."""
    cfg = compose_config(overrides + ["trainer.epochs=3", "fid.every_epochs=1",
                                      "fid.metrics=[fid]"])
    scripted = {1: 5.0, 2: 9.0, 3: 7.0}  # by epochs completed
    current: dict = {}

    def fake_evaluate(self, sample, quantized=None):
        return {"fid_lenet": scripted[current["run"].counters.epoch],
                "details": {"extractor": "lenet", "num_samples": 200, "ref_count": 1000}}

    monkeypatch.setattr(FidEvaluator, "evaluate", fake_evaluate)

    def train(out, stop_at=None):
        r = Run(cfg, out)
        current["run"] = r
        if stop_at is not None:
            real_d_step = step_module.d_step

            def d_step(*args):  # a SIGTERM arriving during this batch
                if (r.counters.epoch, r.counters.batch) == stop_at:
                    r.stop_signal = 15
                return real_d_step(*args)

            monkeypatch.setattr(step_module, "d_step", d_step)
        return r.train()

    whole = train(tmp_path / "whole")
    with pytest.raises(trainer.Interrupted):
        train(tmp_path / "resumed", stop_at=(1, 0))
    resumed = train(tmp_path / "resumed")
    for summary in (whole, resumed):
        assert summary["best_epoch"] == 0 and summary["best_fid_lenet"] == 5.0
        assert summary["fid_lenet"] == 7.0
    a, b = (artifacts.load_checkpoint(p / "checkpoints" / "best.pt")
            for p in (tmp_path / "whole", tmp_path / "resumed"))
    assert a["best"] == b["best"] and a["best"]["step"] == 1  # epoch 0's last batch
    for name, tensor in a["generator"].items():
        assert torch.equal(tensor, b["generator"][name]), name
