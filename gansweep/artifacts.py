"""Everything a run writes, all under its Hydra output dir:

    samples/EEEE_BBBB.png   grid of the batch's fakes (epoch, batch), as the seed
    samples/final.png       grid from the final G in inference mode
    checkpoints/last.pt     both models, both optimisers, counters, RNG states
    metrics.jsonl           one JSON object per logged batch
    summary.json            status and headline numbers at the end

Files that must never be seen half-written (checkpoint, summary) are written to a temp file,
fsynced and renamed over the old one, so a crash mid-write leaves the previous version.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) of the seed's grid: cols = floor(sqrt(n)), rows = ceil(n / cols)."""
    cols = int(math.sqrt(n))
    return int(math.ceil(n / cols)), cols


def image_grid(images: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) in [-1, 1] -> uint8 (rows*H, cols*W), filled row by row, unused cells black."""
    x = images.detach().float().cpu().numpy()[:, 0]
    n, h, w = x.shape
    rows, cols = grid_shape(n)
    canvas = np.full((rows * h, cols * w), -1.0, dtype=np.float32)
    for index, img in enumerate(x):
        r, c = divmod(index, cols)
        canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    return np.clip(canvas * 127.5 + 127.5, 0, 255).astype(np.uint8)


def save_grid(images: torch.Tensor, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(images), mode="L").save(path)
    return path


def read_grid(path: Path) -> np.ndarray:
    return np.array(Image.open(path))  # a writable copy


def sample_name(epoch: int, batch: int) -> str:
    return f"{epoch:04d}_{batch:04d}.png"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write) -> Path:
    """Call ``write(file_object)`` on a temp file beside ``path``, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def save_checkpoint(state: dict[str, Any], path: Path) -> Path:
    return atomic_write(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path, map_location="cpu") -> dict[str, Any]:
    return torch.load(path, map_location=map_location, weights_only=False)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite_or_none(row: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN/Inf: write them as null (the status field says why)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in row.items()}


def write_json(data: dict[str, Any], path: Path) -> Path:
    text = json.dumps(_finite_or_none(data), indent=2, default=_json_default) + "\n"
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def truncate_metrics(path: Path, step: int) -> None:
    """Keep only rows of steps before ``step`` (0: empty the file), atomically.

    A run killed after its last checkpoint logged steps it will train again on resume;
    dropping them keeps metrics.jsonl identical to an uninterrupted run's.
    """
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] < step:
                kept.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            break  # a torn last line from a crash mid-write
    atomic_write(path, lambda handle: handle.write("".join(kept).encode()))


class OutputDirError(RuntimeError):
    """The run's output dir cannot be written."""


def ensure_writable(root: Path) -> None:
    probe = root / ".write-probe"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise OutputDirError(
            f"output dir {root} is not writable ({exc.strerror or exc}). Fix: free space or "
            "permissions there, or choose another with hydra.run.dir=... / hydra.sweep.dir=..."
        ) from exc


class MetricsLog:
    """Append-only metrics.jsonl; each row is flushed so a killed run keeps what it logged."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = open(path, "a", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        self._handle.write(json.dumps(_finite_or_none(row), default=_json_default) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class RunDir:
    """Paths of one run's artifacts."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.samples = self.root / "samples"
        self.checkpoint = self.root / "checkpoints" / "last.pt"
        self.metrics = self.root / "metrics.jsonl"
        self.summary = self.root / "summary.json"
        self.final_sample = self.samples / "final.png"

    def sample(self, epoch: int, batch: int) -> Path:
        return self.samples / sample_name(epoch, batch)
