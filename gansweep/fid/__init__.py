"""Fréchet distances (and KID, precision/recall, density/coverage) of MNIST-like image sets,
with pytorch-fid's numerics.

* ``frechet``: the distance, the statistics it compares, the 8-bit quantisation of samples;
* ``extractors``: one feature function per network (``inception``, ``lenet``), loaded by name;
* ``cache``: reference statistics and features of real MNIST, the real-data floor, shared
  by a sweep's jobs through file locks;
* ``metrics``: KID and PRDC on feature arrays;
* ``evaluator``: ``FidEvaluator``, built from the ``fid`` config group (``_target_``), which
  scores a generator callable on every metric in one pass;
* ``cli``: ``gansweep-fid ref | floor | fetch-weights``.
"""

from __future__ import annotations

import importlib

# Names other modules import from gansweep.fid, and the submodule each lives in. Loaded on
# first use (PEP 562), so `from gansweep.fid.metrics import LOWER_IS_BETTER` (the table code,
# a Hydra callback in every sweep process) does not import torch.
_EXPORTS = {
    "cache": ("fid_of_images", "floor", "locked_cache", "reference_features", "reference_key",
              "reference_stats", "stats_dir", "features_resumable"),
    "evaluator": ("FidEvaluator", "is_better", "metric_key"),
    "extractors": ("BUILDERS", "DEFAULT_CACHE", "EXTRACTORS", "FEATURES", "Extractor",
                   "default_cache_dir", "load_extractor"),
    "frechet": ("FIDError", "frechet_distance", "metric_name", "quantize", "statistics"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"gansweep.fid.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'gansweep.fid' has no attribute {name!r}")


def build_evaluator(fid_cfg, **context):
    """The evaluator the ``fid`` config names (``hydra.utils.instantiate(fid_cfg, **context)``;
    ``context``: ``data_root``, ``device``, ``fetch_data``); a disabled one when the config
    has no ``fid`` group."""
    if fid_cfg is None:
        from gansweep.fid.evaluator import FidEvaluator

        return FidEvaluator(extractor="none", **context)
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    if "_target_" not in fid_cfg:  # a config saved before the group named its class
        fid_cfg = OmegaConf.merge({"_target_": "gansweep.fid.FidEvaluator"}, fid_cfg)
    return instantiate(fid_cfg, **context)


def preflight(fid_cfg) -> None:
    """``FidEvaluator.preflight`` from a ``fid`` config, before a device is chosen (the
    sweep launcher's check): the Inception weights exist and are verified."""
    if fid_cfg is None or str(fid_cfg.extractor) != "inception":
        return
    from gansweep.fid.evaluator import FidEvaluator

    FidEvaluator(extractor="inception", cache_dir=fid_cfg.cache_dir,
                 fetch=fid_cfg.fetch).preflight()


def main(argv: list[str] | None = None) -> int:
    """``gansweep-fid`` (see ``gansweep.fid.cli``)."""
    from gansweep.fid.cli import main as cli_main

    return cli_main(argv)


__all__ = [*_WHERE, "build_evaluator", "main", "preflight"]
