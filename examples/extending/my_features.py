"""A feature extractor of your own, outside the gansweep package: one class here plus one
YAML (conf/fid/pixels.yaml) that names it, and every FID-family metric runs on its features
(``fid_pixels``, ``kid_pixels``, ...) with its own reference statistics in the cache.

    PYTHONPATH=examples/extending gansweep-train --config-dir examples/extending/conf \\
        +experiment=seed_standard fid=pixels
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gansweep.fid.extractors import FeatureExtractor
from gansweep.fid.registry import ExtractorInfo


class PixelFeatures(FeatureExtractor):
    """The image itself, average-pooled to 7x7 (49 numbers in [-1, 1]): no network, no
    weights. A yardstick that sees only blurred shapes, not what a classifier sees."""

    # shape: the samples it takes (gray 28x28: 49 features); any dataset of that shape, an
    # image folder's too, is scored against its own reference
    info = ExtractorInfo(name="pixels", dim=49, implementation="my_features.PixelFeatures",
                         tag="avgpool7x7", weights="none: the pixels are the features",
                         shape=(1, 28, 28))

    def load(self, device, cache_dir, fetch, precision):
        return torch.nn.Identity().to(device), "no weights"

    def features(self, model, images):
        return F.avg_pool2d(model(images), 4).flatten(1)
