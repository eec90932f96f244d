"""``dataset=image_folder``: a folder of PNG images, of any size and channels, as the training
data and as the FID reference.

    gansweep-train dataset=image_folder dataset.path=my_pngs fid=inception

Every ``*.png`` under ``dataset.path`` (subfolders too), in the order of their paths, is
converted to ``channels`` (1: gray, 3: RGB; alpha dropped; 16-bit gray scaled to 8 bits),
resized so its shorter side is ``size`` (PIL's bicubic filter, which antialiases when it
shrinks: clean-fid's choice for FID) and centre-cropped to ``size`` x ``size``, then scaled
to [-1, 1] as MNIST is: (x - 127.5) / 127.5. ``channels`` x ``size`` x ``size`` must be the
model's input: 1 x 28 x 28 for ``model=dcgan_mnist`` (the defaults).

The same images are the FID reference (``FolderReference``), cached by the sha256 of the
decoded images, so any change to the folder (or to how it is read) computes new statistics.
LeNet's metrics apply to handwritten digits only: ``dataset.domain=digits`` says the images
are such (``fid=lenet`` is refused otherwise; ``fid=inception`` applies to any images).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gansweep.data.mnist import DataError, Dataset
from gansweep.pictures import ImageGrid
from gansweep.data.reference import Reference

log = logging.getLogger(__name__)

MODES = {1: "L", 3: "RGB"}  # channels -> the PIL mode images are converted to


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """``image`` in ``mode`` ("L" or "RGB"): 16- and 32-bit gray is scaled to 8 bits (PIL's
    own conversion would clip it at 255), alpha is dropped, palettes are looked up."""
    if image.mode.startswith("I") or image.mode == "F":
        levels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode != "F" else max(float(levels.max()), 1.0)
        image = Image.fromarray(np.clip(np.rint(levels * 255.0 / top), 0, 255).astype(np.uint8))
    return image if image.mode == mode else image.convert(mode)


def fit(image: Image.Image, size: int) -> Image.Image:
    """Shorter side resized to ``size`` (bicubic), then the centre ``size`` x ``size``; an
    image already that size is kept pixel for pixel."""
    width, height = image.size
    if (width, height) == (size, size):
        return image
    scale = size / min(width, height)
    shape = (max(size, round(width * scale)), max(size, round(height * scale)))
    image = image.resize(shape, Image.Resampling.BICUBIC)
    left, top = (shape[0] - size) // 2, (shape[1] - size) // 2
    return image.crop((left, top, left + size, top + size))


def png_files(root: Path) -> list[Path]:
    """Every ``*.png`` under ``root`` (any case, subfolders too), ordered by relative path."""
    return sorted((p for p in root.rglob("*") if p.suffix.lower() == ".png" and p.is_file()),
                  key=lambda p: p.relative_to(root).as_posix())


def folder(path: Path | str | None) -> Path:
    """``dataset.path`` as a folder; DataError, naming the fix, where it is unset or none."""
    if path is None or not str(path):
        raise DataError("dataset.path is not set: dataset=image_folder reads a folder of PNG "
                        "images. Fix: dataset.path=<that folder>")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset.path={path} is not a folder. Fix: point dataset.path at a "
                        "folder of PNG images, e.g. dataset.path=/data/my_pngs")
    return root


def read_folder(path: Path | str, channels: int = 1, size: int = 28) -> np.ndarray:
    """uint8 (N, channels, size, size) of every PNG under ``path`` (see the module doc);
    DataError, in one line naming the file or folder and the fix, where one cannot be read."""
    root = folder(path)
    files = png_files(root)
    if not files:
        raise DataError(f"dataset.path={path} holds no .png file (subfolders searched too). "
                        "Fix: point it at a folder of PNG images, or convert yours to PNG")
    out = np.empty((len(files), channels, size, size), dtype=np.uint8)
    mode = MODES[channels]
    for index, file in enumerate(files):
        try:
            with Image.open(file) as image:
                pixels = np.asarray(fit(to_mode(image, mode), size))
        except (OSError, ValueError) as exc:
            raise DataError(f"{file} (under dataset.path={path}) is not a readable PNG "
                            f"({exc}). Fix: replace or remove it") from None
        out[index] = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    return out


def content_hash(images: np.ndarray) -> str:
    """sha256 of the decoded images (their shape, then their bytes in order)."""
    digest = hashlib.sha256(repr(images.shape).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()


def to_unit_range(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [-1, 1], as MNIST's (x - 127.5) / 127.5."""
    return (torch.from_numpy(images.astype(np.float32)) - 127.5) / 127.5


class ImageFolder:
    """``dataset=image_folder``: the PNG images under ``path`` (see the module doc), pictured
    by ``visualizer`` (null: an image grid) and scored by ``evaluator`` (null: the ``fid``
    group's, against ``reference()``: these same images). The folder is read once per
    instance: training and the reference share the decoded images."""

    def __init__(self, path: str | None = None, channels: int = 1, size: int = 28,
                 limit: int | None = None, domain: str | None = None, visualizer=None,
                 evaluator=None, name: str = "image_folder"):
        if channels not in MODES:
            raise DataError(f"dataset.channels={channels} is not allowed: must be 1 (gray) or 3 "
                            "(RGB). Fix: dataset.channels=1 or dataset.channels=3")
        self.name, self.path, self.channels, self.size = str(name), path, channels, size
        self.limit, self.domain = limit, (str(domain) if domain is not None else None)
        self.visualizer = visualizer or ImageGrid()
        self.evaluator = evaluator
        self._images: np.ndarray | None = None
        self._hash: str | None = None

    def preflight(self) -> None:
        """Before training (the launch's check): the folder is set and exists."""
        folder(self.path)

    def images(self) -> np.ndarray:
        """uint8 (N, channels, size, size) of the whole folder, read on first use."""
        if self._images is None:
            self._images = read_folder(self.path, self.channels, self.size)
            log.info("%d PNG images under %s as %d x %d x %d", len(self._images), self.path,
                     self.channels, self.size, self.size)
        return self._images

    def content_hash(self) -> str:
        if self._hash is None:
            self._hash = content_hash(self.images())
        return self._hash

    def subset(self, limit: int | None) -> Dataset:
        """The first ``limit`` images (all when None) as a Dataset (unlabelled: labels 0)."""
        if limit is not None and limit <= 0:
            raise DataError(f"dataset.limit={limit}: must be a positive number of images or null")
        images = self.images()[:limit]
        checksum = f"folder-sha256:{self.content_hash()}" + (f"[:{limit}]" if limit else "")
        return Dataset(to_unit_range(images), torch.zeros(len(images), dtype=torch.int64),
                       checksum)

    def load(self, seed: int) -> Dataset:
        return self.subset(self.limit)

    def reference(self) -> "FolderReference":
        """The FID reference: the folder's images (all of them, not only ``limit``)."""
        return FolderReference(self)


class FolderReference(Reference):
    """An image folder as the FID reference: its images, keyed by their content hash. It has
    no held-out split, so no real-data floor."""

    splits = ("train",)

    def __init__(self, folder: ImageFolder):
        self.folder = folder
        self.name, self.domain = folder.name, folder.domain
        self.shape = (folder.channels, folder.size, folder.size)

    def key(self, split: str = "train") -> str:
        return f"folder-{self.folder.content_hash()[:16]}"

    def load(self, split: str = "train", limit: int | None = None) -> Dataset:
        return self.folder.subset(limit)

    def describe(self, split: str = "train") -> str:
        return f"images under {self.folder.path}"
