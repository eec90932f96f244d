"""FID: pytorch-fid numerics, the Inception pipeline and weights, the shipped LeNet, cached
reference statistics, the real-data floor and the end-of-run FID in summary.json."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from scipy import linalg

from gansweep.fid import cache as fid_cache, cli as fid_cli, extractors as fid_extractors
from gansweep.fid import frechet, inception, lenet
from gansweep.data import load_mnist
from gansweep.runs.trainer import run
from gansweep.schema import ConfigError
from tests.helpers import compose_config


# ----------------------------------------------------------------------------- helpers
def pytorch_fid_reference(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """A straightforward re-implementation of pytorch-fid's calculate_frechet_distance
    (fid_score.py), minus scipy's deprecated ``disp`` argument."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        assert np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3)
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def eig_reference(mu1, sigma1, mu2, sigma2):
    """tr sqrtm(S1 S2) as the sum of sqrt of S1 S2's (real, >= 0) eigenvalues."""
    ev = np.linalg.eigvals(sigma1 @ sigma2).real.clip(min=0)
    diff = mu1 - mu2
    return diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(ev).sum()


def random_stats(rng, n, d, scale=1.0):
    feats = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * scale + rng.normal(size=d)
    return frechet.statistics(feats)


@pytest.fixture(scope="session")
def inception_cache():
    """The default cache dir, holding verified Inception weights (`make test` fetches them
    first; this fetches them lazily when pytest runs alone)."""
    cache = fid_extractors.default_cache_dir()
    if inception.hub_checkpoint() is None:
        inception.fetch_weights(cache)
    return cache


@pytest.fixture(scope="session")
def lenet_ext():
    return fid_extractors.load_extractor("lenet", "cpu")


# ----------------------------------------------------------------------------- numerics
def test_statistics_float64_and_unbiased():
    x = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    mu, sigma = frechet.statistics(x)
    assert mu.dtype == sigma.dtype == np.float64
    centred = x.astype(np.float64) - x.astype(np.float64).mean(0)
    np.testing.assert_allclose(sigma, centred.T @ centred / 6, rtol=1e-12)


def test_identical_statistics_give_zero():
    mu, sigma = random_stats(np.random.default_rng(1), 400, 32)
    assert abs(frechet.frechet_distance(mu, sigma, mu, sigma)) < 1e-8 * np.trace(sigma)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
    a, b = rng.uniform(0.1, 3, size=10), rng.uniform(0.1, 3, size=10)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected,
                                                                                   rel=1e-10)


@pytest.mark.parametrize("n,d", [(500, 40), (30, 64), (5, 20)])  # full rank, rank-deficient
def test_agrees_with_pytorch_fid_algorithm(n, d):
    rng = np.random.default_rng(n + d)
    mu1, s1 = random_stats(rng, n, d)
    mu2, s2 = random_stats(rng, n, d, scale=1.3)
    ours = frechet.frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(pytorch_fid_reference(mu1, s1, mu2, s2), rel=1e-6)
    assert ours == pytest.approx(eig_reference(mu1, s1, mu2, s2), rel=1e-4)


def test_non_finite_root_retries_with_offset(monkeypatch):
    rng = np.random.default_rng(3)
    mu1, s1 = random_stats(rng, 200, 8)
    mu2, s2 = random_stats(rng, 200, 8)
    calls = []
    real_sqrtm = linalg.sqrtm

    def flaky(matrix):
        calls.append(matrix.copy())
        return np.full_like(matrix, np.nan) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(frechet.linalg, "sqrtm", flaky)
    value = frechet.frechet_distance(mu1, s1, mu2, s2)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s1 + 1e-6 * np.eye(8)) @ (s2 + 1e-6 * np.eye(8)))
    assert value == pytest.approx(pytorch_fid_reference(mu1, s1, mu2, s2), rel=1e-5)


def test_large_imaginary_component_is_an_error():
    with pytest.raises(frechet.FIDError, match="imaginary"):
        frechet.frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), -np.eye(3))


def test_shape_mismatch_is_an_error():
    with pytest.raises(frechet.FIDError, match="different feature extractors"):
        frechet.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# ----------------------------------------------------------------------------- Inception
def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """PyTorch's bilinear weights, align_corners=False, written out by hand."""
    w = np.zeros((n_out, n_in))
    for o in range(n_out):
        src = max((o + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = int(np.floor(src))
        i1 = min(i0 + 1, n_in - 1)
        lam = src - i0
        w[o, i0] += 1 - lam
        w[o, i1] += lam
    return w


def test_preprocess_matches_hand_computation():
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, size=(3, 28, 28)) / 255.0
    out = inception.preprocess(torch.tensor(images, dtype=torch.float32).unsqueeze(1)).numpy()
    assert out.shape == (3, 3, 299, 299)
    w = bilinear_matrix(28, 299)
    for k in range(3):
        expected = 2 * (w @ images[k] @ w.T) - 1
        for c in range(3):  # gray repeated to RGB
            np.testing.assert_allclose(out[k, c], expected, atol=1e-5)
    assert out.min() >= -1 - 1e-6 and out.max() <= 1 + 1e-6


@pytest.mark.slow
def test_inception_features_equal_torchscript_and_pipeline(inception_cache, mnist_root):
    """Our pytorch-fid-structured network on default_1.pt's tensors gives the same pool3
    features as the TorchScript module itself; the extractor maps [-1,1] images to k/255."""
    ext = fid_extractors.load_extractor("inception", "cpu", inception_cache)
    x = load_mnist(mnist_root, "test", 2).x
    feats = ext.features(x)
    assert feats.shape == (2, 2048) and np.isfinite(feats).all() and feats.min() >= 0
    pixels = torch.round((x + 1) * 127.5) / 255  # what pytorch-fid's ToTensor gives
    path = inception.weights_path(inception_cache)
    if path.exists():
        script = torch.jit.load(str(path), map_location="cpu")
        with torch.inference_mode():
            scripted = script(inception.preprocess(pixels)).numpy()
        np.testing.assert_allclose(feats, scripted, atol=1e-4, rtol=1e-4)
    with torch.inference_mode():
        direct = ext.model(inception.preprocess(pixels)).numpy()
    np.testing.assert_allclose(feats, direct, atol=1e-5)


@pytest.mark.slow
def test_corrupted_weights_are_refused(inception_cache, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no .pth
    source = inception.weights_path(inception_cache)
    if not source.exists():
        pytest.skip("weights present only as pytorch-fid's .pth")
    bad = inception.weights_path(tmp_path)
    bad.parent.mkdir(parents=True)
    shutil.copyfile(source, bad)
    with open(bad, "r+b") as handle:  # flip one byte in the middle
        handle.seek(inception.WEIGHTS_SIZE // 2)
        byte = handle.read(1)
        handle.seek(inception.WEIGHTS_SIZE // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(inception.WeightsError) as err:
        inception.load_inception(tmp_path, fetch=False)
    message = str(err.value)
    assert "corrupt" in message and inception.WEIGHTS_SHA256 in message
    assert "gansweep-fid fetch-weights" in message
    bad.unlink()
    with pytest.raises(inception.WeightsError, match="missing.*gansweep-fid fetch-weights"):
        inception.load_inception(tmp_path, fetch=False)


# ----------------------------------------------------------------------------- LeNet
@pytest.mark.slow
def test_shipped_lenet_accuracy(mnist_root):
    record = lenet.record()
    assert record["sha256"] == hashlib.sha256(lenet.WEIGHTS.read_bytes()).hexdigest()
    assert record["command"].startswith("gansweep-fid train-classifier")
    test = load_mnist(mnist_root, "test")
    acc = lenet.accuracy(lenet.load_lenet(), test.x, test.labels)
    assert acc >= 0.99
    assert acc == pytest.approx(record["test_accuracy"], abs=2e-4)


@pytest.mark.slow
def test_real_vs_itself_zero_and_vs_noise_large(lenet_ext, mnist_root):
    x = load_mnist(mnist_root, "train", 2000).x
    ref = frechet.statistics(lenet_ext.features(x[:1000]))
    assert abs(fid_cache.fid_of_images(lenet_ext, x[:1000], ref)) < 1e-6
    other_real = fid_cache.fid_of_images(lenet_ext, x[1000:], ref)
    noise = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    noise_fid = fid_cache.fid_of_images(lenet_ext, noise, ref)
    assert 0 < other_real < noise_fid / 20


# ----------------------------------------------------------------------------- cache, floor
def test_reference_stats_cached_per_limit(lenet_ext, mnist_root, tmp_path, monkeypatch):
    mu, sigma, meta = fid_cache.reference_stats(lenet_ext, mnist_root, 300, tmp_path, progress=False)
    assert meta["count"] == 300 and meta["extractor"] == "lenet" and sigma.shape == (128, 128)
    files = list((tmp_path / "stats").glob("ref_lenet_*_300_cpu-float32.npz"))
    assert len(files) == 1

    def boom(*args, **kwargs):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(fid_extractors.Extractor, "features", boom)
    mu2, sigma2, _ = fid_cache.reference_stats(lenet_ext, mnist_root, 300, tmp_path)
    np.testing.assert_array_equal(mu, mu2)
    np.testing.assert_array_equal(sigma, sigma2)
    with pytest.raises(AssertionError, match="recomputed"):  # another limit, another entry
        fid_cache.reference_stats(lenet_ext, mnist_root, 301, tmp_path)


@pytest.mark.slow
def test_floor_cached_and_retrievable(mnist_root, tmp_path):
    assert fid_cache.floor("lenet", 300, 1000, mnist_root, tmp_path, compute=False) is None
    result = fid_cache.floor("lenet", 300, 1000, mnist_root, tmp_path)
    assert result["extractor"] == "lenet" and result["num_samples"] == 300
    assert 0 < result["fid_lenet"] < 50
    assert fid_cache.floor("lenet", 300, 1000, mnist_root, tmp_path, compute=False) == result


@pytest.mark.slow
def test_cli_ref_and_floor(mnist_root, tmp_path, capsys):
    common = ["--extractor", "lenet", "--root", str(mnist_root), "--cache-dir", str(tmp_path),
              "--limit", "400"]
    assert fid_cli.main(["ref", *common, "--estimate-only"]) == 0
    assert "images/s" in capsys.readouterr().out
    assert fid_cli.main(["ref", *common]) == 0
    assert "img/s (measured on the first batch)" in capsys.readouterr().err
    assert fid_cli.main(["floor", *common, "--num-samples", "200"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["num_samples"] == 200
    assert set(out["metrics"]) >= {"kid_lenet", "precision_lenet", "coverage_lenet"}


# ----------------------------------------------------------------------------- configs, runs
@pytest.mark.slow
def test_config_defaults_and_choices():
    cfg = compose_config()
    assert str(cfg.fid.extractor) == "lenet" and cfg.fid.num_samples == 3000
    assert cfg.fid.ref_limit is None
    assert str(compose_config(["fid=inception"]).fid.extractor) == "inception"
    assert compose_config(["fid=inception"]).fid.batch_size is None  # the extractor's own
    assert str(compose_config(["fid=none"]).fid.extractor) == "none"


def test_invalid_fid_values_rejected(tiny_overrides, tmp_path):
    cfg = compose_config(tiny_overrides + ["fid.num_samples=1"])
    with pytest.raises(ConfigError, match="fid.num_samples"):
        run(cfg, tmp_path)


@pytest.mark.slow
def test_training_run_writes_fid(tiny_overrides, tmp_path):
    cfg = compose_config(tiny_overrides + [f"fid.cache_dir={tmp_path / 'cache'}",
                                           "trainer.epochs=2", "fid.every_epochs=1"])
    summary = run(cfg, tmp_path / "run")
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["fid_lenet"] == summary["fid_lenet"] == summary["objective"]
    assert np.isfinite(written["fid_lenet"]) and written["fid_lenet"] > 0
    assert written["fid"]["extractor"] == "lenet"
    assert written["fid"]["num_samples"] == 200 and written["fid"]["ref_limit"] == 1000
    assert "fid_inception" not in written
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    fid_rows = [r for r in rows if "fid_lenet" in r]
    assert len(fid_rows) == 1 and fid_rows[0]["epoch"] == 0


@pytest.mark.slow
def test_training_run_without_fid(tiny_overrides, tmp_path):
    summary = run(compose_config(tiny_overrides + ["fid=none"]), tmp_path)
    assert "objective" not in summary and not any(k.startswith("fid") for k in summary)


@pytest.mark.slow
def test_bf16_inception_is_its_own_extractor_with_its_own_cache_key(inception_cache, mnist_root):
    """fid.precision=bf16: the same network in bfloat16, loaded apart from the float32 one,
    its features close to float32's but never mixed with them (cache key, summary)."""
    fp32 = fid_extractors.load_extractor("inception", "cpu", inception_cache)
    bf16 = fid_extractors.load_extractor("inception", "cpu", inception_cache, precision="bf16")
    assert bf16 is not fp32 and bf16.model.precision == "bf16" and fp32.model.precision == "fp32"
    assert fp32.batch_size == 16  # a CPU's default: small batches are fastest there
    assert fid_extractors.load_extractor("inception", "cpu", inception_cache, precision="bf16") is bf16
    assert (fid_cache.reference_key(fp32, None).endswith("_cpu-float32")
            and fid_cache.reference_key(bf16, None).endswith("_cpu-bf16"))
    x = load_mnist(mnist_root, "test", 4).x
    a, b = fp32.features(x), bf16.features(x)
    assert b.dtype == np.float32
    rel = np.abs(a - b).max() / np.abs(a).max()
    assert 0 < rel < 0.05, rel  # bfloat16 rounding, not another network
