"""Feature extractors: images (N, 1, 28, 28) in [-1, 1] -> float32 features (N, dim).

``FeatureExtractor`` is what an extractor implements (its entry in ``gansweep.fid.registry``,
``load`` and ``features``; ``preflight`` and ``fetch_weights`` where it has weights to get);
``load_extractor`` gives the loaded ``Extractor`` of a registered name or class path, kept
loaded for the life of the process. The built-ins are ``gansweep.fid.inception`` (the field's
metric, slow on a CPU) and ``gansweep.fid.lenet`` (an MNIST classifier, seconds); their
metrics are named apart (``fid_inception``, ``fid_lenet``) and never mixed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from gansweep.device import isolated_rng, precision
from gansweep.fid import registry
from gansweep.fid.registry import ExtractorInfo

DEFAULT_CACHE = "~/.cache/gansweep"


def default_cache_dir() -> Path:
    return Path(os.environ.get("GANSWEEP_CACHE") or DEFAULT_CACHE).expanduser()


class FeatureExtractor:
    """One feature extractor. A subclass sets ``info`` (its registry entry) and implements
    ``load`` and ``features``; ``fid.extractor=<dotted path of the subclass>`` selects it."""

    info: ExtractorInfo

    def load(self, device: torch.device, cache_dir: Path, fetch: bool,
             precision: str) -> tuple[torch.nn.Module, str]:
        """The network in inference mode on ``device``, and where its weights came from."""
        raise NotImplementedError

    def features(self, model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Features of a batch of images (N, 1, 28, 28) in [-1, 1] (preprocessing included);
        of another shape where the entry's ``shape`` says (None: any image)."""
        raise NotImplementedError

    # a classifier also offers classify(model, features) -> class probabilities (N, classes),
    # and its entry says how many classes: the metrics confident and digits use them

    def preflight(self, cache_dir: Path, fetch: bool) -> None:
        """Before training: the weights exist (fetched when ``fetch``) and match their
        checksum, so a run cannot fail on them after hours. Default: nothing to get."""

    def fetch_weights(self, cache_dir: Path) -> Path | None:
        """Obtain and verify the weights (``gansweep-fid fetch-weights``); None: shipped."""
        return None


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
    forward: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]
    precision: str = "fp32"  # fid.precision: the network's arithmetic (bf16 where it has it)
    classify: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor] | None = None

    @torch.inference_mode()
    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities of features this extractor computed (a classifier's only)."""
        if self.classify is None:
            raise ValueError(f"the {self.name} extractor does not classify")
        feats = torch.from_numpy(np.asarray(features, dtype=np.float32)).to(self.device)
        return self.classify(self.model, feats).float().cpu().numpy()

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
    """The extractor ``name`` (a registry name or class path) on ``device``, kept loaded for
    the life of the process; ``precision="bf16"`` where its entry has it."""
    entry = registry.info(name)
    precision = str(precision)
    if precision not in entry.precisions:
        raise ValueError(f"fid.precision={precision!r} with extractor {name!r}: it has "
                         f"{', '.join(entry.precisions)}. Fix: fid.precision=fp32"
                         + "".join(f", or fid={n}" for n, e in registry.BUILTIN.items()
                                   if precision in e.precisions))
    device = torch.device(device)
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    key = (name, str(device), str(cache_dir), precision)
    if key not in _LOADED:
        implementation = registry.implementation(name)()
        # building a network initialises its layers from the global RNG before the weights
        # are loaded: fork it, so loading an extractor never shifts a training run's streams
        with isolated_rng(device):
            model, source = implementation.load(device, cache_dir, fetch, precision)
        _LOADED[key] = Extractor(entry.name, entry.tag, entry.dim, model, device,
                                 entry.default_batch(device.type), source,
                                 implementation.features, precision,
                                 getattr(implementation, "classify", None))
    extractor = _LOADED[key]
    if batch_size:
        extractor = Extractor(**{**vars(extractor), "batch_size": batch_size})
    return extractor
