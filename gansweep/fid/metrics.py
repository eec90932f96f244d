"""Sample-quality metrics on feature arrays: KID, precision/recall, density/coverage.

Pure numpy (float64), no extractor, no files: every function takes a real and a fake
feature array of shape (N, D) (the same features the FID uses) and returns numbers.

* **KID** (Bińkowski et al. 2018), torch-fidelity's estimator: the unbiased MMD^2 with the
  cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over ``subsets`` random
  subsets of ``subset_size`` real and ``subset_size`` fake features (drawn without
  replacement by ``np.random.RandomState(seed)``); reported as mean and (population) std
  over the subsets. Unbiased, so its mean does not depend on the subset size: when fewer
  than ``subset_size`` samples exist the size is reduced to what there is.
* **Precision / recall** (Kynkäänniemi et al. 2019, k=3): the fraction of fakes inside the
  real manifold (union of balls around each real feature with the radius of its k-th
  nearest real neighbour), and of reals inside the fake manifold. The official NVlabs code
  counts a point on a ball's surface as inside (``<=``); that is the default here.
* **Density / coverage** (Naeem et al. 2020, k=5): density = mean over fakes of the number
  of real balls containing it, divided by k (unbounded, 1 for matching distributions);
  coverage = fraction of real balls that contain at least one fake. The official ``prdc``
  package uses strict ``<``; that is the default here. ``strict`` switches either.

Radii exclude the point itself (the (k+1)-th smallest distance in its own set, itself
included), as both reference implementations do. Distances use |a|^2 + |b|^2 - 2 a.b in
float64 (clipped at 0), as scikit-learn's ``pairwise_distances`` that ``prdc`` calls, and
are compared squared (NVlabs' code does; the square root is monotone).
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np

# Which way is better: the table ranks by it, the best checkpoint and the objective follow it.
LOWER_IS_BETTER = {"fid": True, "kid": True, "precision": False, "recall": False,
                   "density": False, "coverage": False, "confident": False, "digits": False}
METRICS = tuple(LOWER_IS_BETTER)
# metrics of the extractor's class predictions (an extractor that classifies: LeNet), not of
# features against the reference
CLASS_METRICS = ("confident", "digits")
CONFIDENT = 0.9  # the probability a most likely class needs for a sample to count as confident


def class_metrics(probs: np.ndarray, names, threshold: float = CONFIDENT) -> dict:
    """Of class probabilities (N, classes): ``confident``, the share of samples whose most
    likely class has probability >= ``threshold`` (legible digits, for an MNIST classifier);
    ``digits``, how evenly the predicted classes are spread: the entropy of their histogram
    over log(classes), 1 when every class is predicted equally often, 0 for one class."""
    probs = np.asarray(probs, dtype=np.float64)
    values = {}
    if "confident" in names:
        values["confident"] = float((probs.max(axis=1) >= threshold).mean())
    if "digits" in names:
        counts = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])
        p = counts[counts > 0] / counts.sum()
        values["digits"] = float(-(p * np.log(p)).sum() / np.log(probs.shape[1])) + 0.0
    return values


def is_better(value: float, best: float | None, lower: bool) -> bool:
    """NaN is never better; anything finite beats no best yet."""
    if value is None or not math.isfinite(value):
        return False
    if best is None or not math.isfinite(best):
        return True
    return value < best if lower else value > best


class MetricError(ValueError):
    """Features that a metric cannot be computed on (too few, wrong shape)."""


def _features(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise MetricError(f"{name} features must be (N, D), got shape {a.shape}")
    return a


# ----------------------------------------------------------------------------- shared
def _pair(real, fake) -> tuple[np.ndarray, np.ndarray]:
    real, fake = _features(real, "real"), _features(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise MetricError(f"real and fake features differ in dimension: {real.shape[1]} vs "
                          f"{fake.shape[1]} (different feature extractors?)")
    return real, fake


class Grams:
    """The dot products every metric here needs, computed once: real.real, fake.fake and
    real.fake (float64). KID's kernel and PRDC's distances are both functions of them."""

    def __init__(self, real, fake):
        self.real, self.fake = _pair(real, fake)
        self.dim = self.real.shape[1]
        self.rr = self.real @ self.real.T
        self.ff = self.fake @ self.fake.T
        self.rf = self.real @ self.fake.T

    def kernel(self, gram: np.ndarray, degree: int = 3) -> np.ndarray:
        """k(x, y) = (x.y / d + 1)^degree from the dot products."""
        base = gram / self.dim + 1.0
        out = base.copy()
        for _ in range(degree - 1):  # repeated products: numpy's ** 3 is a slow pow()
            out *= base
        return out

    def distances(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """*Squared* Euclidean distances real-real, fake-fake (diagonals exactly 0),
        real-fake. Squared, as NVlabs' precision/recall code: every comparison of a distance
        with a radius (itself a distance) is the same without the square roots."""
        r2, f2 = np.diagonal(self.rr), np.diagonal(self.ff)
        out = []
        for gram, a, b in ((self.rr, r2, r2), (self.ff, f2, f2), (self.rf, r2, f2)):
            d2 = a[:, None] + b[None, :] - 2 * gram
            np.maximum(d2, 0, out=d2)
            if gram is not self.rf:
                np.fill_diagonal(d2, 0)
            out.append(d2)
        return tuple(out)


# ----------------------------------------------------------------------------- KID
def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> np.ndarray:
    """(gamma x.y + coef0)^degree with gamma = 1/d by default."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3) -> float:
    """Unbiased MMD^2 of two equal-size sets: mean of k(x_i, x_j) and k(y_i, y_j) over i != j
    minus twice the mean of k(x_i, y_j) over all i, j (torch-fidelity's ``mmd2``)."""
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise MetricError(f"MMD^2 needs two sets of equal size >= 2, got {x.shape[0]} and "
                          f"{y.shape[0]}")
    k_xx, k_yy, k_xy = (polynomial_kernel(a, b, degree) for a, b in ((x, x), (y, y), (x, y)))
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


def kid(real, fake, subsets: int = 100, subset_size: int = 1000, seed: int = 0,
        degree: int = 3, grams: Grams | None = None) -> dict:
    """{'kid', 'kid_std', 'kid_subset_size', 'kid_subsets'}: mean and std of the unbiased
    MMD^2 over ``subsets`` random subsets (see the module doc).

    Same subsets as torch-fidelity's loop (per subset: ``choice`` of fakes, then of reals),
    but each subset's kernel sums come from the full kernel matrices and the subsets'
    indicator vectors (one matrix product for all subsets) instead of three fresh
    subset-size matrices per subset: the same numbers, a fraction of the work."""
    grams = grams or Grams(real, fake)
    n_real, n_fake = len(grams.real), len(grams.fake)
    size = min(subset_size, n_real, n_fake)
    if size < 2 or subsets < 1:
        raise MetricError(f"KID needs >= 2 real and fake features and >= 1 subset, got "
                          f"{n_real} real, {n_fake} fake, {subsets} subsets")
    rng = np.random.RandomState(seed)
    v_fake, v_real = np.zeros((n_fake, subsets)), np.zeros((n_real, subsets))
    for i in range(subsets):
        v_fake[rng.choice(n_fake, size, replace=False), i] = 1
        v_real[rng.choice(n_real, size, replace=False), i] = 1

    def subset_sums(kernel: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return np.einsum("ns,ns->s", left, kernel @ right)

    k = grams.kernel(grams.ff, degree)
    ff = subset_sums(k, v_fake, v_fake) - v_fake.T @ np.diagonal(k)
    k = grams.kernel(grams.rr, degree)
    rr = subset_sums(k, v_real, v_real) - v_real.T @ np.diagonal(k)
    k = grams.kernel(grams.rf, degree)
    rf = subset_sums(k, v_real, v_fake)
    del k
    values = (ff + rr) / (size * (size - 1)) - 2 * rf / (size * size)
    return {"kid": float(values.mean()), "kid_std": float(values.std()),
            "kid_subset_size": size, "kid_subsets": subsets}


# ----------------------------------------------------------------------------- PRDC
def knn_radii(distances_within: np.ndarray, ks) -> dict[int, np.ndarray]:
    """{k: distance of each point to its k-th nearest other point of its set}."""
    n = distances_within.shape[0]
    for k in ks:
        if not 1 <= k < n:
            raise MetricError(f"nearest_k={k} needs at least k + 1 = {k + 1} points per set, "
                              f"got {n}")
    part = np.partition(distances_within, sorted(set(ks)), axis=1)
    return {k: part[:, k] for k in ks}


def prdc(real, fake, k_pr: int = 3, k_dc: int = 5, strict_pr: bool = False,
         strict_dc: bool = True, grams: Grams | None = None) -> dict:
    """{'precision', 'recall', 'density', 'coverage'} of ``fake`` against ``real`` (see the
    module doc); ``strict_*`` use ``<`` instead of ``<=`` for the ball test."""
    grams = grams or Grams(real, fake)
    d_rr, d_ff, d_rf = grams.distances()  # d_rf: (real, fake)
    real_r = knn_radii(d_rr, (k_pr, k_dc))
    fake_r = knn_radii(d_ff, (k_pr,))[k_pr]
    del d_rr, d_ff
    inside = np.less if strict_pr else np.less_equal
    precision = inside(d_rf, real_r[k_pr][:, None]).any(axis=0).mean()
    recall = inside(d_rf, fake_r[None, :]).any(axis=1).mean()
    inside = np.less if strict_dc else np.less_equal
    balls = inside(d_rf, real_r[k_dc][:, None])  # real ball i contains fake j
    density = balls.sum(axis=0).mean() / k_dc
    coverage = inside(d_rf.min(axis=1), real_r[k_dc]).mean()
    return {"precision": float(precision), "recall": float(recall),
            "density": float(density), "coverage": float(coverage)}


# ----------------------------------------------------------------------------- all at once
def compute(names, real, fake, kid_subsets: int = 100, kid_subset_size: int = 1000,
            kid_seed: int = 0, k_pr: int = 3, k_dc: int = 5, real_samples: int | None = None,
            clock: Callable[[], float] = time.perf_counter) -> tuple[dict, dict]:
    """The requested metrics (names from ``METRICS``; ``fid`` is the caller's) of fake vs
    real features, and the seconds each took (``grams``: the shared dot products).

    Both KID and PRDC compare the first ``real_samples`` (default: as many as fakes) of
    ``real``, which should be a random subset: precision and recall depend on the sample
    sizes, so they are compared at equal sizes, and KID's real kernel matrix stays small."""
    unknown = sorted(set(names) - set(METRICS))
    if unknown:
        raise MetricError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
    values, seconds = {}, {}
    wanted = [n for n in ("precision", "recall", "density", "coverage") if n in names]
    if "kid" not in names and not wanted:
        return values, seconds
    t0 = clock()
    n = min(len(real), real_samples or len(fake))
    grams = Grams(np.asarray(real)[:n], fake)
    values["real_samples"] = n
    seconds["grams"] = clock() - t0
    if "kid" in names:
        t0 = clock()
        values.update(kid(None, None, kid_subsets, kid_subset_size, kid_seed, grams=grams))
        seconds["kid"] = clock() - t0
    if wanted:
        t0 = clock()
        result = prdc(None, None, k_pr, k_dc, grams=grams)
        values.update({name: result[name] for name in wanted})
        seconds["prdc"] = clock() - t0
    return values, seconds
