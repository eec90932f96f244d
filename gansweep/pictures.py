"""Sample grids: the seed's layout of generated images as one PNG (``samples/*.png``)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gansweep.artifacts import atomic_write


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) of the seed's grid: cols = floor(sqrt(n)), rows = ceil(n / cols)."""
    cols = int(math.sqrt(n))
    return int(math.ceil(n / cols)), cols


def image_grid(images: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) in [-1, 1] -> uint8 (rows*H, cols*W), filled row by row, unused cells
    black; (N, 3, H, W) (RGB) -> (rows*H, cols*W, 3)."""
    x = images.detach().float().cpu().numpy()
    x = x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)
    n, h, w = x.shape[:3]
    rows, cols = grid_shape(n)
    canvas = np.full((rows * h, cols * w, *x.shape[3:]), -1.0, dtype=np.float32)
    for index, img in enumerate(x):
        r, c = divmod(index, cols)
        canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    return np.clip(canvas * 127.5 + 127.5, 0, 255).astype(np.uint8)


def save_grid(images: torch.Tensor, path: Path) -> Path:
    """The grid as a PNG, replaced whole (never rewritten in place: an extended run's early
    grids are links to the run it continues). Encoded first, so that a full disk's error
    says how many bytes the file needs."""
    grid = image_grid(images)
    encoded = io.BytesIO()
    Image.fromarray(grid, mode="L" if grid.ndim == 2 else "RGB").save(encoded, format="PNG")
    data = encoded.getvalue()
    return atomic_write(path, lambda handle: handle.write(data), size=len(data))


class ImageGrid:
    """The image datasets' visualiser: a grid PNG of the samples (``save_grid``). Visualisers
    take the samples, the path and keyword context (real data, kernel, step, title)."""

    def __call__(self, samples: torch.Tensor, path: Path, **context) -> Path:
        return save_grid(samples, path)


def read_grid(path: Path) -> np.ndarray:
    return np.array(Image.open(path))  # a writable copy
