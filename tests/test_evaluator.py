"""The FID-family evaluator as the trainer uses it: built by ``hydra.utils.instantiate`` from
the ``fid`` config group, fed a generator callable, scoring every metric in one pass with the
same numbers as the lower-level functions; ``fid=none`` builds a disabled one."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from gansweep import schema  # noqa: F401 - registers the schemas
from gansweep.fid import metrics
from gansweep.fid.evaluator import FidEvaluator, build_evaluator
from gansweep.fid import cache as fid_cache
from gansweep.fid.extractors import load_extractor
from gansweep.fid.frechet import frechet_distance, quantize, statistics

KEYS = ["fid_lenet", "kid_lenet", "precision_lenet", "recall_lenet", "density_lenet",
        "coverage_lenet"]


def fid_config(*overrides: str):
    with initialize_config_module(config_module="gansweep.conf", version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides)).fid


@pytest.fixture
def cheap(tmp_path) -> list[str]:
    return ["fid.num_samples=200", "fid.ref_limit=1000", "fid.ref_features=600",
            f"fid.cache_dir={tmp_path / 'cache'}"]


def fixed_images(n: int = 200) -> torch.Tensor:
    """Not 8-bit levels: the evaluator must quantise them as a saved PNG would be."""
    images = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(7)) * 2 - 1
    return images.clamp(-1, 1)


@pytest.mark.slow  # reference statistics and features: seconds
def test_config_builds_the_evaluator_and_it_scores_a_generator_callable(cheap, mnist_root):
    cfg = fid_config(*cheap, "fid.objective=recall", "fid.best_metric=kid")
    assert cfg._target_ == "gansweep.fid.FidEvaluator"
    ev = instantiate(cfg, data_root=mnist_root, device=torch.device("cpu"))
    assert isinstance(ev, FidEvaluator) and ev.enabled
    assert (ev.best_key, ev.lower_is_better) == ("kid_lenet", True)
    asked = []

    def sample(n):
        asked.append(n)
        return fixed_images(n)

    result = ev(sample)
    assert asked == [200]  # drawn once, every metric on the same samples
    # the same numbers by hand, from the building blocks
    ext = load_extractor("lenet", "cpu", cfg.cache_dir)
    feats = ext.features(quantize(fixed_images()))
    ref = fid_cache.reference_stats(ext, mnist_root, 1000, cfg.cache_dir)
    assert result["fid_lenet"] == frechet_distance(*statistics(feats), ref[0], ref[1])
    real = fid_cache.reference_features(ext, mnist_root, 1000, 600, 0, cfg.cache_dir)
    others, _ = metrics.compute(["kid", "precision", "recall", "density", "coverage"],
                                real, feats, 100, 1000, 0, 3, 5, real_samples=200)
    for key in KEYS[1:]:
        assert result[key] == others[key.removesuffix("_lenet")], key
    assert result["objective"] == -result["recall_lenet"] == ev.objective(result)
    assert result["objective_metric"] == "recall_lenet"
    assert result["fid"]["num_samples"] == 200 and result["fid"]["ref_count"] == 1000
    assert not any(k.startswith("floor_") for k in result)  # none cached yet
    assert ev.row(result) == {**{k: result[k] for k in KEYS}, "fid_num_samples": 200}


@pytest.mark.slow  # reference statistics and features: seconds
def test_floors_are_reported_once_cached(cheap, mnist_root):
    ev = build_evaluator(fid_config(*cheap), data_root=mnist_root, device="cpu")
    assert ev.floors() == {}  # compute=False: nothing cached
    floors = ev.floors(compute=True)
    assert set(floors) == {"floor_lenet", *(f"floor_{k}" for k in KEYS[1:])}
    assert 0 < floors["floor_lenet"] < 50 and ev.floors() == floors
    result = ev(fixed_images)
    assert {k: result[k] for k in floors} == floors
    assert result["fid"]["floor"] == floors["floor_lenet"]


@pytest.mark.slow
def test_due_every_n_epochs_but_not_the_last(cheap):
    ev = build_evaluator(fid_config(*cheap, "fid.every_epochs=2"))
    assert [e for e in range(1, 7) if ev.due(e, total_epochs=6)] == [2, 4]
    assert ev.due(6)  # without a total, every second epoch
    assert not any(build_evaluator(fid_config(*cheap)).due(e) for e in range(1, 5))


def test_fid_none_is_a_disabled_evaluator(cheap, tmp_path):
    ev = build_evaluator(fid_config(*cheap, "fid=none", "fid.every_epochs=1"),
                         data_root=tmp_path / "no-mnist", device="cpu")
    assert not ev.enabled and not ev.due(1)

    def sample(n):
        raise AssertionError("a disabled evaluator drew samples")

    assert ev(sample) == {} and ev.floors(compute=True) == {}
    ev.preflight()  # nothing to check
    assert not build_evaluator(None).enabled  # a config without a fid group


def test_a_fid_config_without_target_still_builds_the_evaluator():
    from omegaconf import OmegaConf

    ev = build_evaluator(OmegaConf.create({"extractor": "lenet", "best_metric": "recall"}))
    assert isinstance(ev, FidEvaluator) and (ev.best_key, ev.lower_is_better) == (
        "recall_lenet", False)


@pytest.mark.slow  # reference statistics and features: seconds
def test_non_finite_samples_give_nan_and_an_infinite_objective(cheap, mnist_root):
    ev = build_evaluator(fid_config(*cheap, "fid.metrics=[fid,coverage]"),
                         data_root=mnist_root)
    result = ev(lambda n: torch.full((n, 1, 28, 28), float("nan")))
    assert math.isnan(result["fid_lenet"]) and math.isnan(result["coverage_lenet"])
    assert result["objective"] == math.inf


def test_unknown_metric_is_named(cheap):
    with pytest.raises(ValueError, match=r"fid.metrics: unknown \['sharpness'\]"):
        FidEvaluator(metrics=["fid", "sharpness"])
    assert np.isfinite(FidEvaluator().objective({"fid_lenet": 1.0}))


def test_fid_precision_bf16_is_for_inception_and_named_in_identity():
    from gansweep.identity import identity, identity_hash
    from gansweep.schema import ConfigError, check
    from tests.helpers import compose_config

    with pytest.raises(ConfigError, match=r"fid.precision='bf16'.*the lenet extractor has fp32.*fid=inception"):
        check(compose_config(["fid.precision=bf16"]))  # lenet has no bf16 variant
    with pytest.raises(ValueError, match="with extractor 'lenet': it has fp32. Fix: fid.precision=fp32, or fid=inception"):
        load_extractor("lenet", precision="bf16")
    fp32 = compose_config(["fid=inception"])
    bf16 = compose_config(["fid=inception", "fid.precision=bf16"])
    check(bf16)
    assert "precision" not in identity(fp32)["fid"]  # float32 jobs keep their dir hashes
    assert identity(bf16)["fid"]["precision"] == "bf16"
    assert identity_hash(fp32) != identity_hash(bf16)  # never the same job dir or resume
    evaluator = instantiate(bf16.fid, data_root="data", device="cpu")
    assert evaluator.precision == "bf16"
