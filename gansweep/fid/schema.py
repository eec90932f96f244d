"""The fid group's schema (conf/fid/) and its checks across keys: a registered extractor,
sample counts its feature dimension needs, a precision it has, known metrics. Torch-free:
the registry and the metric names are plain data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from gansweep.checks import Choice, ConfigError, require
from gansweep.fid import registry
from gansweep.fid.metrics import CLASS_METRICS, METRICS
from gansweep.runs.schema import Precision


class FidExtractor(Choice):
    """Not a schema type any more (``fid.extractor`` is any name of gansweep.fid.registry or
    a class path, checked by ``check_fid_values``): kept because checkpoints written before
    configs were stored as plain strings hold it, and CHOICES lets them load."""

    none = "none"
    inception = "inception"
    lenet = "lenet"


@dataclass
class FidConfig:
    """End-of-run FID (gansweep.fid): generated samples vs MNIST training-set statistics.
    ``_target_`` is the evaluator these settings build (``hydra.utils.instantiate``, with the
    run's ``data_root`` and ``device``); ``extractor: none`` builds a disabled one."""

    _target_: str = MISSING
    extractor: str = MISSING  # a gansweep.fid.registry name, a class path, or none
    num_samples: int = MISSING
    ref_limit: Optional[int] = MISSING
    batch_size: Optional[int] = MISSING  # null: the extractor's default for the device
    every_epochs: Optional[int] = MISSING
    quantize: bool = MISSING
    cache_dir: str = MISSING
    fetch: bool = MISSING
    # gansweep.fid.evaluator: which metrics, their reference subset, the best checkpoint, objective
    metrics: List[str] = MISSING
    ref_features: int = MISSING
    ref_seed: int = MISSING
    kid_subsets: int = MISSING
    kid_subset_size: int = MISSING
    pr_k: int = MISSING
    dc_k: int = MISSING
    best_metric: str = MISSING
    objective: str = MISSING
    precision: Precision = MISSING  # the extractor's arithmetic; bf16: Inception only


def _get(node, key: str, default=None):
    return node.get(key, default) if isinstance(node, dict) else getattr(node, key, default)


def check_fid(fid) -> None:
    """The fid group's checks on its own (a re-score's settings): ConfigError or nothing."""
    check_fid_values(OmegaConf.to_object(fid) if isinstance(fid, DictConfig) else fid)


def check_fid_values(fid) -> None:
    """FID-family settings: a registered extractor, the sample counts its features need,
    a precision it has, known metrics."""
    extractor = str(_get(fid, "extractor", registry.NONE))
    if extractor == registry.NONE:
        return
    try:
        entry = registry.info(extractor)
    except registry.UnknownExtractor as exc:
        raise ConfigError("fid.extractor", extractor, str(exc)) from None
    # n samples give a covariance of rank at most n - 1: n must exceed the dimension
    dim, n, ref = entry.dim, _get(fid, "num_samples"), _get(fid, "ref_limit")
    require(n > dim, "fid.num_samples", n,
            f"must be > {dim}, the {entry.name} feature dimension, for a full-rank covariance "
            "(the seed used 3000)")
    require(ref is None or ref > dim, "fid.ref_limit", ref,
            f"must be > {dim} or null (all 60000 training images)")
    batch = _get(fid, "batch_size")
    require(batch is None or batch >= 1, "fid.batch_size", batch,
            "must be >= 1, or null (the extractor's default for the device)")
    precision = str(_get(fid, "precision", "fp32"))
    require(precision in entry.precisions, "fid.precision", precision,
            f"the {entry.name} extractor has {', '.join(entry.precisions)}; use one of those"
            + "".join(f", or fid={name}" for name, other in registry.BUILTIN.items()
                      if precision in other.precisions and name != extractor))
    every = _get(fid, "every_epochs")
    require(every is None or every >= 1, "fid.every_epochs", every,
            "must be >= 1 or null (only at the end)")
    _check_metrics(fid)
    asked = [str(m) for m in (_get(fid, "metrics") or []) if str(m) in CLASS_METRICS]
    require(not asked or entry.classes, "fid.metrics", asked,
            f"{' and '.join(asked)} {'judge' if len(asked) > 1 else 'judges'} a classifier's "
            f"predictions, and the {entry.name} "
            "extractor does not classify; use fid=lenet for them")


def _check_metrics(fid) -> None:
    """fid.metrics, best_metric and objective name known metrics; sizes fit the k's."""
    names = [str(m) for m in (_get(fid, "metrics") or [])]
    bad = [m for m in names if m not in METRICS]
    require(not bad and names, "fid.metrics", names,
            f"must be a non-empty list of: {', '.join(METRICS)}")
    for key in ("best_metric", "objective"):
        value = str(_get(fid, key) or "fid")
        require(value in names, f"fid.{key}", value, f"must be one of fid.metrics ({names})")
    if set(names) - {"fid"}:
        k = max(_get(fid, "pr_k", 3), _get(fid, "dc_k", 5))
        for key in ("pr_k", "dc_k", "kid_subsets"):
            require(_get(fid, key, 1) >= 1, f"fid.{key}", _get(fid, key), "must be >= 1")
        require(_get(fid, "kid_subset_size", 1000) >= 2, "fid.kid_subset_size",
                _get(fid, "kid_subset_size"), "must be >= 2")
        require(_get(fid, "ref_features", 10000) > k, "fid.ref_features",
                _get(fid, "ref_features"), f"must be > {k} (the largest of fid.pr_k/fid.dc_k)")


SCHEMAS = (("fid", "fid", FidConfig),)
