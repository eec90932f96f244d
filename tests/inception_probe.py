"""Inception FID at a size a 2-core CPU rehearses in seconds (``fid.extractor=
tests.inception_probe.InceptionFirst32``): pytorch-fid's Inception-v3 with the same weights
(``default_1.pt``, sha256-checked on every load, from the same cache), its pool3 features cut
to their first 32 dimensions. ``fid=inception`` needs more than 2048 samples and reference
images for a full-rank covariance (the config refuses fewer): some 6 minutes a run on that
CPU, and a 2048x2048 matrix square root on top. 33 will do here, with every step of the real
path but the feature width: the weights file, the network, its preprocessing, the cache
keys, the Fréchet distance."""

from __future__ import annotations

from dataclasses import replace

from gansweep.fid.inception import InceptionFeatures

DIM = 32


class InceptionFirst32(InceptionFeatures):
    info = replace(InceptionFeatures.info, name=f"inception{DIM}", dim=DIM,
                   implementation="tests.inception_probe.InceptionFirst32",
                   tag=f"{InceptionFeatures.info.tag}-first{DIM}", published=False)

    def features(self, model, images):
        return super().features(model, images)[:, :DIM]
