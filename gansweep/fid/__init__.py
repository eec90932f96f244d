"""Fréchet distances (and KID, precision/recall, density/coverage) of MNIST-like image sets,
with pytorch-fid's numerics.

* ``registry``: the feature extractors, one entry each (dimension, batch, precisions,
  weights and their checksum); ``extractors``: loading them (``inception``, ``lenet``);
* ``frechet``: the distance, the statistics it compares, the 8-bit quantisation of samples;
* ``cache``: reference statistics and features of a dataset's real images (its
  ``gansweep.data.reference.Reference``; MNIST's by default), the real-data floor, shared by a
  sweep's jobs through file locks;
* ``metrics``: KID and PRDC on feature arrays, and which way each metric is better;
* ``evaluator``: ``FidEvaluator``, built from the ``fid`` config group (``_target_``), which
  scores a generator callable on every metric in one pass;
* ``cli``: ``gansweep-fid ref | floor | fetch-weights``.
"""

from __future__ import annotations


def __getattr__(name: str):
    # ``gansweep.fid.FidEvaluator`` is the fid group's ``_target_``, which is part of every
    # run's identity (its job dir hash): it must keep resolving. Imported on first use, so
    # the torch-free report code that imports gansweep.fid.metrics or .registry stays light.
    if name == "FidEvaluator":
        from gansweep.fid.evaluator import FidEvaluator

        return FidEvaluator
    raise AttributeError(f"module 'gansweep.fid' has no attribute {name!r}")
