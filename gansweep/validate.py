"""Value checks the config schema cannot express, run before any training starts.

Types, choices and unknown keys are rejected by the dataclass schemas (gansweep.schema);
this module rejects values that are well-typed but meaningless, naming the key, the value
and what is allowed, so a sweep fails at launch rather than hours into a run.
"""

from __future__ import annotations

import math

from omegaconf import DictConfig

from gansweep import inception, lenet
from gansweep.device import check_device_name


MAX_SEED = 2**32 - 3
FEATURE_DIMS = {"lenet": lenet.FEATURE_DIM, "inception": inception.FEATURE_DIM}


class ConfigError(ValueError):
    """A config value outside its allowed range; the message names key, value and fix."""


def _require(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}. "
                          f"Fix it in the config or override it, e.g. `{key}=<value>`.")


def _positive(cfg: DictConfig, key: str) -> None:
    value = _get(cfg, key)
    _require(value is not None and math.isfinite(value) and value > 0, key, value,
             "must be a finite number > 0")


def _non_negative(cfg: DictConfig, key: str) -> None:
    value = _get(cfg, key)
    _require(value is not None and math.isfinite(value) and value >= 0, key, value,
             "must be a finite number >= 0")


def _get(cfg: DictConfig, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def validate(cfg: DictConfig, dataset_size: int | None = None) -> None:
    """Raise ConfigError on the first invalid value. ``dataset_size`` enables data checks."""
    seed = cfg.get("seed")
    _require(isinstance(seed, int) and 0 <= seed <= MAX_SEED, "seed", seed,
             f"must be an integer in [0, {MAX_SEED}] (seed + 1 and seed + 2 seed the final "
             "samples, and numpy-based samplers such as Optuna's take 32-bit seeds)")
    for side in ("d", "g"):
        _positive(cfg, f"optimizer.{side}.lr")
        _non_negative(cfg, f"optimizer.{side}.decay")
        _positive(cfg, f"optimizer.{side}.epsilon")
        for beta in ("beta_1", "beta_2"):
            value = _get(cfg, f"optimizer.{side}.{beta}")
            _require(0 <= value < 1, f"optimizer.{side}.{beta}", value, "must be in [0, 1)")
    if str(cfg.gan_type.name) == "coulomb":
        _positive(cfg, "kernel.eps")
        _positive(cfg, "kernel.eps_half_life")
        _require(cfg.kernel.dim >= 3, "kernel.dim", cfg.kernel.dim,
                 "must be >= 3 (the Plummer kernel is flat for d <= 2)")
    trainer = cfg.trainer
    for key in ("epochs", "batch_size", "sample_every", "log_every"):
        _require(trainer[key] >= 1, f"trainer.{key}", trainer[key], "must be an integer >= 1")
    every, minutes = trainer.checkpoint_every, trainer.checkpoint_minutes
    _require(every is None or every >= 1, "trainer.checkpoint_every", every,
             "must be an integer >= 1 or null (not by batch count)")
    _require(minutes is None or (math.isfinite(minutes) and minutes > 0),
             "trainer.checkpoint_minutes", minutes, "must be a number > 0 or null (not by time)")
    if trainer.max_batches_per_epoch is not None:
        _require(trainer.max_batches_per_epoch >= 1, "trainer.max_batches_per_epoch",
                 trainer.max_batches_per_epoch, "must be >= 1 or null (all batches)")
    if trainer.threads is not None:
        _require(trainer.threads >= 1, "trainer.threads", trainer.threads, "must be >= 1 or null")
    device_problem = check_device_name(str(trainer.device))
    _require(device_problem is None, "trainer.device", str(trainer.device), device_problem)
    noise = cfg.noise
    if str(noise.dist) == "uniform":
        _require(noise.low < noise.high, "noise.low", noise.low, f"must be < noise.high={noise.high}")
    else:
        _require(noise.std > 0, "noise.std", noise.std, "must be > 0")
    limit = cfg.dataset.get("limit")
    if limit is not None:
        _require(limit >= 1, "dataset.limit", limit, "must be >= 1 or null (all images)")
    fid = cfg.get("fid")
    if fid is not None and str(fid.extractor) != "none":
        # fewer samples than feature dimensions leave the covariance singular: no real FID
        dim = FEATURE_DIMS[str(fid.extractor)]
        # n samples give a covariance of rank at most n - 1: n must exceed the dimension
        _require(fid.num_samples > dim, "fid.num_samples", fid.num_samples,
                 f"must be > {dim}, the {fid.extractor} feature dimension, for a full-rank "
                 "covariance (the seed used 3000)")
        _require(fid.ref_limit is None or fid.ref_limit > dim, "fid.ref_limit", fid.ref_limit,
                 f"must be > {dim} or null (all 60000 training images)")
        _require(fid.batch_size >= 1, "fid.batch_size", fid.batch_size, "must be >= 1")
        _require(fid.every_epochs is None or fid.every_epochs >= 1, "fid.every_epochs",
                 fid.every_epochs, "must be >= 1 or null (only at the end)")
        _validate_metrics(fid)
    if dataset_size is not None:
        _require(trainer.batch_size <= dataset_size, "trainer.batch_size", trainer.batch_size,
                 f"must be <= the {dataset_size} training samples available "
                 "(raise dataset.limit or lower the batch size)")


def _validate_metrics(fid) -> None:
    """fid.metrics, best_metric and objective name known metrics; sizes fit the k's."""
    from gansweep.fid.metrics import METRICS

    names = [str(m) for m in (fid.get("metrics") or [])]
    allowed = ", ".join(METRICS)
    bad = [m for m in names if m not in METRICS]
    _require(not bad and names, "fid.metrics", names, f"must be a non-empty list of: {allowed}")
    for key in ("best_metric", "objective"):
        value = str(fid.get(key) or "fid")
        _require(value in names, f"fid.{key}", value, f"must be one of fid.metrics ({names})")
    if set(names) - {"fid"}:
        k = max(fid.get("pr_k", 3), fid.get("dc_k", 5))
        for key in ("pr_k", "dc_k", "kid_subsets"):
            _require(fid.get(key, 1) >= 1, f"fid.{key}", fid.get(key), "must be >= 1")
        _require(fid.get("kid_subset_size", 1000) >= 2, "fid.kid_subset_size",
                 fid.get("kid_subset_size"), "must be >= 2")
        _require(fid.get("ref_features", 10000) > k, "fid.ref_features", fid.get("ref_features"),
                 f"must be > {k} (the largest of fid.pr_k/fid.dc_k)")
