"""Feature extractors: images (N, 1, 28, 28) in [-1, 1] -> float32 features (N, dim).

Each extractor is one feature function (``FEATURES``: the network and a batch of images in,
features out) plus a builder that loads its network (``BUILDERS``); ``load_extractor`` keeps
each one loaded for the life of the process. Two, never mixed in one number (the metric
names say which):

* ``inception`` -> ``fid_inception``: pytorch-fid's Inception-v3 pool3 (2048-d), see
  ``gansweep.inception``. Comparable to published FIDs (the 2018 study's metric), but about
  4 images/s on 2 CPU cores: reference statistics of the 60000 training images take hours.
* ``lenet`` -> ``fid_lenet``: penultimate features (128-d) of a small MNIST classifier shipped
  with the package (``gansweep.lenet``). Seconds on a CPU; only comparable to other fid_lenet.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from gansweep.device import isolated_rng, precision

DEFAULT_CACHE = "~/.cache/gansweep"


def default_cache_dir() -> Path:
    return Path(os.environ.get("GANSWEEP_CACHE") or DEFAULT_CACHE).expanduser()


def inception_features(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """pytorch-fid's pipeline: [-1, 1] -> [0, 1] -> resized 299x299 RGB -> pool3."""
    from gansweep.inception import preprocess

    return model(preprocess((images + 1) / 2))


def lenet_features(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The classifier was trained on [-1, 1] images: they go in as they are."""
    return model.features(images)


FEATURES: dict[str, Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]] = {
    "inception": inception_features,
    "lenet": lenet_features,
}


@dataclass
class Extractor:
    """A loaded extractor: ``features(images)`` batched, in inference mode, on ``device``."""

    name: str
    tag: str  # identifies the weights: part of every cache key
    dim: int
    model: torch.nn.Module
    device: torch.device
    batch_size: int
    source: str
    forward: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor] | None = None
    precision: str = "fp32"  # fid.precision: the network's arithmetic (bf16: Inception only)

    def __post_init__(self):
        if self.forward is None:
            self.forward = FEATURES[self.name]

    @torch.inference_mode()
    def features(self, images: torch.Tensor, out: np.ndarray | None = None, start: int = 0,
                 on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Features of ``images[start:]`` written into ``out`` (allocated if None)."""
        if out is None:
            out = np.empty((len(images), self.dim), dtype=np.float32)
        for i in range(start, len(images), self.batch_size):
            batch = images[i:i + self.batch_size].to(self.device, torch.float32)
            out[i:i + len(batch)] = self.forward(self.model, batch).float().cpu().numpy()
            if on_batch is not None:
                on_batch(i + len(batch))
        return out

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return self.features(images)

    def throughput(self, images: torch.Tensor) -> float:
        """Images/s on one batch of ``images`` (after a one-image warm-up)."""
        self.features(images[:1])
        batch = images[:self.batch_size]
        t0 = time.perf_counter()
        self.features(batch)
        return len(batch) / (time.perf_counter() - t0)


def build_inception(device: torch.device, cache_dir: Path, fetch: bool,
                    precision: str = "fp32") -> Extractor:
    from gansweep import inception

    model, source = inception.load_inception(cache_dir, device, fetch=fetch, precision=precision)
    # images per forward: on a CPU small batches are fastest (less memory traffic per layer;
    # 2 cores, float32: 17.0 images/s at 8, 16.2 at 16, 14.3 at 48, bf16 flat at ~31-32), and
    # float32 features are the same to the bit at any batch size (docs/performance.md)
    batch = 16 if device.type == "cpu" else 100
    return Extractor("inception", "pt_inception-2015-12-05", inception.FEATURE_DIM, model,
                     device, batch, source, precision=precision)


def build_lenet(device: torch.device, cache_dir: Path, fetch: bool) -> Extractor:
    from gansweep import lenet

    digest = hashlib.sha256(lenet.WEIGHTS.read_bytes()).hexdigest()
    return Extractor("lenet", f"lenet-{digest[:12]}", lenet.FEATURE_DIM,
                     lenet.load_lenet(device), device, 500, str(lenet.WEIGHTS))


# name -> builder(device, cache_dir, fetch); the keys are fid.extractor's choices
BUILDERS: dict[str, Callable[[torch.device, Path, bool], Extractor]] = {
    "inception": build_inception,
    "lenet": build_lenet,
}
EXTRACTORS = tuple(BUILDERS)
# extractors whose builder takes precision="bf16" (fid.precision); the others are float32 only
BF16_EXTRACTORS = ("inception",)


def arithmetic(extractor: Extractor) -> str:
    """Where and in what arithmetic the features are computed, e.g. ``cpu-float32``,
    ``cuda-tf32`` or ``cpu-bf16``: part of the reference cache key and of every FID summary,
    since each gives other features."""
    if extractor.precision == "bf16":
        return f"{extractor.device.type}-bf16"
    return f"{extractor.device.type}-{precision(extractor.device)}"


_LOADED: dict[tuple, Extractor] = {}


def load_extractor(name: str, device: torch.device | str = "cpu",
                   cache_dir: Path | str | None = None, batch_size: int | None = None,
                   fetch: bool = True, precision: str = "fp32") -> Extractor:
    """The named extractor on ``device`` (kept loaded for the life of the process);
    ``precision="bf16"`` (Inception only) runs its convolutions in bfloat16."""
    if name not in BUILDERS:
        raise ValueError(f"unknown FID extractor {name!r}; choose one of {EXTRACTORS}")
    precision = str(precision)
    if precision != "fp32" and (precision != "bf16" or name not in BF16_EXTRACTORS):
        raise ValueError(f"fid.precision={precision!r} with extractor {name!r}: only "
                         f"{', '.join(BF16_EXTRACTORS)} has a bf16 variant. Fix: "
                         "fid.precision=fp32, or fid=inception")
    device = torch.device(device)
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    key = (name, str(device), str(cache_dir), precision)
    if key not in _LOADED:
        # building a network initialises its layers from the global RNG before the weights
        # are loaded: fork it, so loading an extractor never shifts a training run's streams
        extra = {"precision": precision} if precision != "fp32" else {}
        with isolated_rng(device):
            _LOADED[key] = BUILDERS[name](device, cache_dir, fetch, **extra)
    extractor = _LOADED[key]
    if batch_size:
        extractor = Extractor(**{**vars(extractor), "batch_size": batch_size})
    return extractor
