"""One evaluation pass: FID, KID, precision/recall and density/coverage of one set of samples,
on one extractor's features, against one reference; plus the best-checkpoint bookkeeping.

Every metric is named by its extractor (``fid_lenet``, ``kid_lenet``, ``precision_inception``
...), never mixed. The samples are drawn once, their features extracted once, and every
requested metric (``fid.metrics``) is computed on those features:

* FID against the cached mean/covariance of the reference images (``gansweep.fid``);
* the others against a fixed, seeded subset of ``fid.ref_features`` reference features
  (drawn from the same first ``fid.ref_limit`` training images, cached beside the
  statistics under the same key scheme). KID and PRDC use its first ``fid.num_samples``
  features, i.e. as many reals as fakes (``gansweep.metrics.compute``).

Directions (``gansweep.metrics.LOWER_IS_BETTER``): FID and KID are minimised; precision,
recall, density and coverage maximised. ``fid.objective`` names the metric the Hydra main
returns, always as a value to *minimise*: a maximised metric is returned negated
(``objective = -recall_lenet``), so Optuna's ``direction: minimize`` works for all of them.
``fid.best_metric`` picks the metric that decides ``checkpoints/best.pt``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from gansweep import fid, metrics
from gansweep.data import load_mnist

log = logging.getLogger(__name__)

DEFAULT_METRICS = list(metrics.METRICS)


def metric_key(metric: str, extractor: str) -> str:
    """``kid`` + ``lenet`` -> ``kid_lenet`` (the summary, metrics.jsonl and table name)."""
    return f"{metric}_{extractor}"


def requested(fc) -> list[str]:
    """The metrics ``fid.metrics`` asks for, in ``metrics.METRICS`` order."""
    names = [str(m) for m in (fc.get("metrics") or ["fid"])]
    unknown = sorted(set(names) - set(metrics.METRICS))
    if unknown:
        raise ValueError(f"fid.metrics: unknown {unknown}; choose from {list(metrics.METRICS)}")
    return [m for m in metrics.METRICS if m in names]


def _settings(fc) -> dict:
    """The settings that change the non-FID numbers (part of the floor's cache key)."""
    return {"ref_features": fc.get("ref_features", 10000), "ref_seed": fc.get("ref_seed", 0),
            "kid_subsets": fc.get("kid_subsets", 100),
            "kid_subset_size": fc.get("kid_subset_size", 1000),
            "pr_k": fc.get("pr_k", 3), "dc_k": fc.get("dc_k", 5)}


# ----------------------------------------------------------------------------- reference
def reference_features(extractor: fid.Extractor, data_root: Path | str, limit: int | None,
                       count: int = 10000, seed: int = 0, cache_dir: Path | str | None = None,
                       fetch_data: bool = True, progress: bool = False) -> np.ndarray:
    """Features (float32) of ``count`` training images drawn without replacement by
    ``RandomState(seed)`` from the first ``limit`` (all when None), in draw order (so any
    prefix is a random subset too). Cached beside the reference statistics, keyed like them
    (``fid.reference_key``) plus count and seed."""
    key = fid.reference_key(extractor, limit)
    path = fid._stats_dir(cache_dir) / f"ref_{key}_features-{count}-seed{seed}.npy"

    def read(p: Path) -> np.ndarray | None:
        try:
            feats = np.load(p)
            if feats.ndim == 2 and feats.shape[1] == extractor.dim and np.isfinite(feats).all():
                return feats
            problem = f"shape {feats.shape} or non-finite values"
        except Exception as exc:  # noqa: BLE001 - any unreadable file is treated alike
            problem = f"{type(exc).__name__}: {exc}"
        log.warning("reference features %s are corrupt (%s); recomputing them", p, problem)
        return None

    def compute() -> np.ndarray:
        data = load_mnist(data_root, "train", limit, fetch_data, log=log.info)
        index = np.random.RandomState(seed).choice(len(data), min(count, len(data)), replace=False)
        log.info("computing %d %s reference features (seed %d) -> %s", len(index),
                 extractor.name, seed, path)
        feats = fid._features_resumable(extractor, data.x[torch.from_numpy(index)],
                                        path.with_suffix(".partial.npy"), progress,
                                        f"{extractor.name} reference features")

        def save(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.save(handle, feats)

        fid._atomic(path, save)
        return feats

    # shared by the jobs of a sweep: one computes under the file lock, the others wait
    return fid.locked_cache(path, read, compute)


# ----------------------------------------------------------------------------- one pass
def score(names: list[str], extractor: str, feats: np.ndarray, ref_stats, ref_feats, fc) \
        -> tuple[dict, dict, dict]:
    """(values by metric key, details, seconds by metric) of generated ``feats``.

    Non-finite features (a diverged G) give NaN for every metric."""
    values, details, seconds = {}, {}, {}
    finite = bool(np.isfinite(feats).all())
    if "fid" in names:
        t0 = time.perf_counter()
        value = float("nan")
        if finite:
            mu, sigma = fid.statistics(feats)
            value = fid.frechet_distance(mu, sigma, ref_stats[0], ref_stats[1])
        values[metric_key("fid", extractor)] = value
        seconds["fid"] = round(time.perf_counter() - t0, 3)
    others = [n for n in names if n != "fid"]
    if others:
        s = _settings(fc)
        if finite:
            result, took = metrics.compute(others, ref_feats, feats, s["kid_subsets"],
                                           s["kid_subset_size"], s["ref_seed"], s["pr_k"],
                                           s["dc_k"], real_samples=len(feats))
        else:
            result, took = {n: float("nan") for n in others}, {}
        for name in others:
            values[metric_key(name, extractor)] = result[name]
        details.update({k: v for k, v in result.items() if k not in others})
        seconds.update({k: round(v, 3) for k, v in took.items()})
    return values, details, seconds


def evaluate(sample: Callable[[int], torch.Tensor], cfg, device: torch.device) -> dict:
    """Every metric of ``fid.metrics`` on ``fid.num_samples`` samples from ``sample(n)``
    (images (n, 1, 28, 28) in [-1, 1]): {metric key: value, ..., 'details': {...}}."""
    fc = cfg.fid
    name = str(fc.extractor)
    names = requested(fc)
    t0 = time.perf_counter()
    extractor = fid.load_extractor(name, device, fc.cache_dir, fc.batch_size, fc.fetch)
    ref = fid.reference_stats(extractor, cfg.dataset.root, fc.ref_limit, fc.cache_dir,
                              cfg.dataset.fetch, progress=False)
    ref_feats = None
    if any(n != "fid" for n in names):
        s = _settings(fc)
        ref_feats = reference_features(extractor, cfg.dataset.root, fc.ref_limit,
                                       s["ref_features"], s["ref_seed"], fc.cache_dir,
                                       cfg.dataset.fetch)
    t_sample = time.perf_counter()
    feats = extractor.features(sample(fc.num_samples))
    t_feats = time.perf_counter()
    values, details, seconds = score(names, name, feats, ref, ref_feats, fc)
    seconds = {"samples_and_features": round(t_feats - t_sample, 3), **seconds,
               "total": round(time.perf_counter() - t0, 3)}
    return {**values, "details": {
        "extractor": name, "weights": extractor.tag, "metrics": names,
        "arithmetic": f"{extractor.device.type}-{fid.precision(extractor.device)}",
        "num_samples": fc.num_samples, "ref_limit": fc.ref_limit, "ref_count": ref[2]["count"],
        **({"ref_features": len(ref_feats)} if ref_feats is not None else {}),
        **details, "seconds": seconds}}


# ----------------------------------------------------------------------------- floor
def floor(cfg, device: torch.device | str = "cpu", compute: bool = True) -> dict | None:
    """Every requested metric of the first ``fid.num_samples`` real MNIST *test* images
    against the same reference: what a perfect generator would score at this sample count
    (FID's and KID's floor; precision/recall/density/coverage's ceiling). Cached; with
    ``compute=False`` None unless cached."""
    fc = cfg.fid
    extractor = fid.load_extractor(str(fc.extractor), device, fc.cache_dir, fc.batch_size,
                                   fc.fetch)
    names = requested(fc)
    settings = json.dumps({"metrics": names, **_settings(fc)}, sort_keys=True)
    digest = hashlib.sha256(settings.encode()).hexdigest()[:10]
    path = (fid._stats_dir(fc.cache_dir)
            / f"floor-metrics_{fid.reference_key(extractor, fc.num_samples, 'test')}_vs_"
              f"{fid.reference_key(extractor, fc.ref_limit)}_{digest}.json")
    if path.exists():
        return json.loads(path.read_text())
    if not compute:
        return None
    test = load_mnist(cfg.dataset.root, "test", fc.num_samples, log=log.info)
    if len(test) < fc.num_samples:
        raise ValueError(f"fid.num_samples={fc.num_samples}: the MNIST test set has "
                         f"{len(test)} images")
    result = evaluate(lambda n: test.x[:n], cfg, torch.device(device))
    result["details"]["settings"] = json.loads(settings)
    fid._atomic(path, lambda tmp: tmp.write_text(json.dumps(result, indent=2) + "\n"))
    return result


# ----------------------------------------------------------------------------- best, objective
def direction_key(fc, extractor: str | None = None) -> tuple[str, bool]:
    """(metric key, lower is better) of ``fid.best_metric``."""
    metric = str(fc.get("best_metric") or "fid")
    return metric_key(metric, extractor or str(fc.extractor)), metrics.LOWER_IS_BETTER[metric]


def is_better(value: float, best: float | None, lower: bool) -> bool:
    """NaN is never better; anything finite beats no best yet."""
    if value is None or not math.isfinite(value):
        return False
    if best is None or not math.isfinite(best):
        return True
    return value < best if lower else value > best


def objective(values: dict, fc) -> float:
    """The number the Hydra main returns: ``fid.objective``'s value, negated when that
    metric is maximised (sweepers minimise); +inf when it could not be computed."""
    metric = str(fc.get("objective") or "fid")
    value = values.get(metric_key(metric, str(fc.extractor)))
    if value is None or not math.isfinite(value):
        return math.inf
    return float(value) if metrics.LOWER_IS_BETTER[metric] else -float(value)
