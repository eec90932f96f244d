"""The Fréchet distance with pytorch-fid's numerics, and the 8-bit quantisation of samples.

pytorch-fid's ``calculate_activation_statistics`` / ``calculate_frechet_distance``: features
as float64, mean and covariance with n - 1; d^2 = |mu1-mu2|^2 + tr S1 + tr S2 -
2 tr sqrtm(S1 S2) with ``scipy.linalg.sqrtm`` (no deprecated ``disp``); when the root is not
finite, 1e-6 I is added to both covariances and it is retried; an imaginary part is dropped
when the diagonal's is within 1e-3 of 0, otherwise FIDError.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from scipy import linalg

log = logging.getLogger(__name__)


class FIDError(RuntimeError):
    """A Fréchet distance that cannot be computed (e.g. a large imaginary part)."""


def metric_name(extractor: str) -> str:
    return f"fid_{extractor}"


def statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (n - 1) of (N, D) features, in float64."""
    act = np.asarray(features, dtype=np.float64)
    if act.ndim != 2 or act.shape[0] < 2:
        raise FIDError(f"need at least 2 feature vectors of shape (N, D), got {act.shape}")
    return act.mean(axis=0), np.cov(act, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """pytorch-fid's ``calculate_frechet_distance``."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1 = np.atleast_2d(sigma1).astype(np.float64)
    sigma2 = np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise FIDError(f"statistics differ in shape: {mu1.shape}/{sigma1.shape} vs "
                       f"{mu2.shape}/{sigma2.shape} (different feature extractors?)")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        log.warning("FID: singular product; adding %s to the covariances' diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise FIDError(f"sqrtm(S1 S2) has a large imaginary component "
                           f"(max |imag| {np.max(np.abs(covmean.imag)):.4g}); the statistics "
                           "are degenerate (too few samples? NaN features?)")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def quantize(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> the nearest of the 256 levels an 8-bit PNG can hold (back in [-1, 1]):
    pytorch-fid reads its images from files, so the samples it scores are 8-bit."""
    levels = torch.round((images.clamp(-1, 1) + 1) * 127.5)
    return levels / 127.5 - 1
