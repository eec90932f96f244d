"""KID, precision/recall and density/coverage (gansweep.fid.metrics) against hand-computed cases,
an explicit-loop transcription of the formulas, and the ``prdc`` package."""

from __future__ import annotations

import time

import numpy as np
import pytest

from gansweep.fid import metrics


def loop_mmd2(x, y):
    """The unbiased MMD^2 written out term by term (Bińkowski et al. 2018, eq. 3)."""
    m, d = len(x), len(x[0])

    def k(a, b):
        return (sum(ai * bi for ai, bi in zip(a, b)) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_mmd2_hand_computed():
    # d=1: k(a,b) = (ab + 1)^3. XX: k(0,1)=1 twice -> 1; YY: k(1,2)=27 twice -> 27;
    # XY: 1 + 1 + 8 + 27 = 37 -> 2*37/4 = 18.5. MMD^2 = 1 + 27 - 18.5 = 9.5
    assert metrics.mmd2_unbiased(np.array([[0.], [1.]]), np.array([[1.], [2.]])) == 9.5
    # d=2 (the 1/d matters): XX 1, YY 1, XY (1.5^3 * 2 + 1 + 1) = 8.75 -> 4.375; = -2.375
    x, y = np.array([[1., 1.], [0., 0.]]), np.array([[1., 0.], [0., 1.]])
    assert metrics.mmd2_unbiased(x, y) == pytest.approx(-2.375, abs=1e-12)


def test_mmd2_matches_loop_transcription():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 4)), rng.normal(0.5, 1.2, size=(7, 4))
    assert metrics.mmd2_unbiased(x, y) == pytest.approx(loop_mmd2(x.tolist(), y.tolist()),
                                                        rel=1e-12)


def test_kid_subsets_mean_and_std():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(12, 3)), rng.normal(0.3, 1, size=(10, 3))
    result = metrics.kid(real, fake, subsets=5, subset_size=4, seed=7)
    # the same draws, written out: fake subset first, then real, from RandomState(seed)
    draws = np.random.RandomState(7)
    values = []
    for _ in range(5):
        f = fake[draws.choice(10, 4, replace=False)]
        r = real[draws.choice(12, 4, replace=False)]
        values.append(loop_mmd2(f.tolist(), r.tolist()))
    assert result["kid"] == pytest.approx(np.mean(values), rel=1e-10)
    assert result["kid_std"] == pytest.approx(np.std(values), rel=1e-10)
    assert metrics.kid(real, fake, subsets=5, subset_size=4, seed=7) == result  # seeded


def test_kid_subset_size_capped_and_full_set_has_zero_std():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    result = metrics.kid(real, fake, subsets=3, subset_size=1000)
    assert result["kid_subset_size"] == 6  # fewer samples than the default 1000
    assert result["kid"] == pytest.approx(metrics.mmd2_unbiased(fake, real), rel=1e-12)
    assert result["kid_std"] == pytest.approx(0, abs=1e-12)


def test_kid_is_unbiased_near_zero_for_one_distribution():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16))
    far = rng.normal(0.5, 1, size=(2000, 16))
    same = metrics.kid(real, fake, subsets=20, subset_size=500)
    assert abs(same["kid"]) < 3 * same["kid_std"] / np.sqrt(20) + 1e-3
    assert metrics.kid(real, far, subsets=20, subset_size=500)["kid"] > 10 * abs(same["kid"])


def test_prdc_boundary_conventions_by_hand():
    # reals 0,1,2,3 (k=1: every radius 1), fakes 4,6 (k=1: radius 2). Fake 4 lies exactly on
    # real 3's sphere and real 2 exactly on fake 4's: the official conventions differ there.
    real, fake = np.array([[0.], [1.], [2.], [3.]]), np.array([[4.], [6.]])
    closed = metrics.prdc(real, fake, k_pr=1, k_dc=1, strict_pr=False, strict_dc=False)
    assert closed == {"precision": 0.5, "recall": 0.5, "density": 0.5, "coverage": 0.25}
    open_ = metrics.prdc(real, fake, k_pr=1, k_dc=1, strict_pr=True, strict_dc=True)
    assert open_ == {"precision": 0.0, "recall": 0.25, "density": 0.0, "coverage": 0.0}
    # defaults: NVlabs' <= for precision/recall, prdc's < for density/coverage
    assert metrics.prdc(real, fake, k_pr=1, k_dc=1) == {
        "precision": 0.5, "recall": 0.5, "density": 0.0, "coverage": 0.0}


def loop_prdc(real, fake, k, strict):
    """Kynkäänniemi's and Naeem's definitions, one point at a time."""
    def dist(a, b):
        return float(np.sqrt(((a - b) ** 2).sum()))

    def radius(points, i):
        return sorted(dist(points[i], p) for j, p in enumerate(points) if j != i)[k - 1]

    inside = (lambda d, r: d < r) if strict else (lambda d, r: d <= r)
    rr = [radius(real, i) for i in range(len(real))]
    fr = [radius(fake, j) for j in range(len(fake))]
    precision = np.mean([any(inside(dist(f, r), rr[i]) for i, r in enumerate(real)) for f in fake])
    recall = np.mean([any(inside(dist(r, f), fr[j]) for j, f in enumerate(fake)) for r in real])
    density = np.mean([sum(inside(dist(f, r), rr[i]) for i, r in enumerate(real))
                       for f in fake]) / k
    coverage = np.mean([any(inside(dist(f, r), rr[i]) for f in fake) for i, r in enumerate(real)])
    return precision, recall, density, coverage


@pytest.mark.parametrize("strict", [False, True])
def test_prdc_matches_loop_transcription_with_ties(strict):
    rng = np.random.default_rng(4)  # integer points: many distances tie with radii
    real, fake = rng.integers(0, 4, size=(25, 2)).astype(float), \
        rng.integers(0, 5, size=(20, 2)).astype(float)
    ours = metrics.prdc(real, fake, k_pr=3, k_dc=3, strict_pr=strict, strict_dc=strict)
    expected = loop_prdc(real, fake, 3, strict)
    assert [ours[m] for m in ("precision", "recall", "density", "coverage")] == \
        pytest.approx(expected, abs=1e-12)


def test_prdc_matches_prdc_package():
    prdc = pytest.importorskip("prdc", reason="test extra: pip install prdc")
    rng = np.random.default_rng(5)
    real = rng.normal(size=(400, 32))
    fake = rng.normal(0.2, 0.9, size=(300, 32))
    for k in (3, 5):
        expected = prdc.compute_prdc(real, fake, nearest_k=k)
        # the package uses strict < for all four
        ours = metrics.prdc(real, fake, k_pr=k, k_dc=k, strict_pr=True, strict_dc=True)
        for name in ours:
            assert ours[name] == pytest.approx(float(expected[name]), abs=1e-12), (k, name)
        # on continuous data nothing lies on a sphere: the conventions agree
        assert metrics.prdc(real, fake, k_pr=k, k_dc=k) == ours


def test_errors_name_the_problem():
    with pytest.raises(metrics.MetricError, match="dimension"):
        metrics.kid(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(metrics.MetricError, match="nearest_k=5"):
        metrics.prdc(np.random.rand(4, 2), np.random.rand(4, 2), k_dc=5)
    with pytest.raises(metrics.MetricError, match="unknown metric"):
        metrics.compute(["fid", "sharpness"], np.zeros((5, 2)), np.zeros((5, 2)))


@pytest.mark.slow
def test_compute_all_metrics_of_3000_lenet_sized_features_is_fast():
    """The issue's budget: all metrics of 3000 x 128 features well under 10 s on 2 cores.
    Measured in CPU seconds (all threads), which a loaded machine does not inflate."""
    rng = np.random.default_rng(6)
    real = rng.normal(size=(10000, 128)).astype(np.float32)
    fake = rng.normal(0.1, 1, size=(3000, 128)).astype(np.float32)
    t0 = time.process_time()
    values, seconds = metrics.compute(list(metrics.METRICS[1:]), real, fake,
                                      clock=time.process_time)
    cpu = time.process_time() - t0
    assert set(values) >= {"kid", "kid_std", "precision", "recall", "density", "coverage"}
    assert values["real_samples"] == 3000 and set(seconds) == {"grams", "kid", "prdc"}
    assert cpu < 10, f"all metrics took {cpu:.1f} CPU s (budget: 10 s on 2 cores)"


# ----------------------------------------------------------------------------- class metrics
def test_class_metrics_by_hand():
    """4 samples, 3 classes: rows 0 and 2 are confident (max 0.95 and 0.9 >= 0.9); the
    predicted classes 0, 0, 1, 2 have shares 1/2, 1/4, 1/4: entropy 1.5 ln 2 over ln 3."""
    from gansweep.fid.metrics import class_metrics

    probs = np.array([[0.95, 0.03, 0.02], [0.5, 0.3, 0.2], [0.05, 0.9, 0.05],
                      [0.1, 0.2, 0.7]])
    values = class_metrics(probs, ["confident", "digits"])
    assert values["confident"] == 0.5
    assert values["digits"] == pytest.approx(1.5 * np.log(2) / np.log(3))
    assert class_metrics(np.eye(3)[[1, 1, 1]], ["digits"]) == {"digits": 0.0}  # one class
    assert class_metrics(np.eye(3), ["digits"])["digits"] == pytest.approx(1.0)  # all even


@pytest.mark.slow
def test_lenet_class_metrics_of_real_and_of_noise(mnist_root):
    """Real test digits are legible to the shipped LeNet and cover the ten digits evenly;
    uniform noise is neither."""
    import torch

    from gansweep.data import load_mnist
    from gansweep.fid.evaluator import FidEvaluator

    ev = FidEvaluator(extractor="lenet", num_samples=500, ref_limit=1000, data_root=mnist_root,
                      metrics=["fid", "confident", "digits"])
    test = load_mnist(mnist_root, "test", 500)
    real = ev.evaluate(lambda n: test.x[:n], quantized=False)
    assert real["confident_lenet"] > 0.95 and real["digits_lenet"] > 0.98
    noise = ev.evaluate(lambda n: torch.rand(n, 1, 28, 28, generator=torch.Generator()
                                             .manual_seed(0)) * 2 - 1)
    assert noise["confident_lenet"] < 0.5 and noise["digits_lenet"] < 0.5
