"""A dataset brings its own FID reference: an image folder (PNGs of any size and channels,
made here) trains and is scored against its own images, cached by their content; MNIST keeps
its cache key; a 2-D mixture offers its points; LeNet is refused where it does not apply."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from gansweep.data import DataError, MnistReference
from gansweep.fid import cache as fid_cache
from gansweep.fid.evaluator import FidEvaluator, NotApplicable, build_evaluator, check_applies
from gansweep.fid.extractors import FeatureExtractor, load_extractor
from gansweep.fid.frechet import frechet_distance, statistics
from gansweep.fid.registry import ExtractorInfo
from gansweep.data.image_folder import ImageFolder, content_hash
from gansweep.data.mixtures import MixtureDataset
from gansweep.pictures import save_grid
from tests.helpers import REPO, compose_config

EXAMPLE = REPO / "examples" / "extending"


def write_pngs(folder, count: int, seed: int = 0) -> None:
    """``count`` PNGs of noise in several sizes and modes (RGB, gray, RGBA, palette), some in
    subfolders: not digits."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        height, width = (32, 36) if i % 2 else (24, 30)
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        image = [image, image.convert("L"), image.convert("RGBA"), image.convert("P")][i % 4]
        path = folder / (f"sub{i % 3}" if i % 5 == 0 else "") / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)


class PointFeatures(FeatureExtractor):
    """2-D points as their own features: an extractor for the mixtures' reference."""

    info = ExtractorInfo(name="points", dim=2,
                         implementation="tests.test_dataset_reference.PointFeatures",
                         tag="identity2d", shape=(2,))

    def load(self, device, cache_dir, fetch, precision):
        return torch.nn.Identity().to(device), "no weights"

    def features(self, model, images):
        return model(images)


# ----------------------------------------------------------------------------- reading
def test_an_image_folder_reads_pngs_of_any_size_and_channels_as_the_models_input(tmp_path):
    write_pngs(tmp_path / "pngs", 8)
    exact = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    Image.fromarray(exact).save(tmp_path / "pngs" / "zz_exact.png")
    Image.fromarray(np.full((28, 28), 65535, np.uint16)).save(tmp_path / "pngs" / "zz_white16.png")

    data = ImageFolder(str(tmp_path / "pngs")).load(seed=0)
    assert data.x.shape == (10, 1, 28, 28) and data.x.dtype == torch.float32
    assert data.x.min() >= -1 and data.x.max() <= 1
    # an image already 28x28 is kept pixel for pixel, scaled as MNIST is
    assert torch.equal(data.x[8, 0], (torch.from_numpy(exact).float() - 127.5) / 127.5)
    assert torch.equal(data.x[9], torch.ones(1, 28, 28))  # 16-bit white is white, not clipped

    rgb = ImageFolder(str(tmp_path / "pngs"), channels=3, size=16, limit=4)
    assert rgb.load(seed=0).x.shape == (4, 3, 16, 16)
    assert rgb.load(seed=0).checksum == f"folder-sha256:{content_hash(rgb.images())}[:4]"
    grid = save_grid(rgb.load(seed=0).x, tmp_path / "grid.png")  # RGB samples: an RGB grid
    assert Image.open(grid).mode == "RGB" and Image.open(grid).size == (32, 32)


def test_the_folders_content_names_its_reference_not_its_name(tmp_path):
    write_pngs(tmp_path / "a", 6)
    first = ImageFolder(str(tmp_path / "a")).reference()
    same = ImageFolder(str(tmp_path / "a"), name="renamed").reference()
    assert first.key() == same.key() and first.key().startswith("folder-")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "a" / "0001.png")
    assert ImageFolder(str(tmp_path / "a")).reference().key() != first.key()
    assert first.splits == ("train",)  # no held-out images: no floor


def test_a_folder_that_cannot_be_read_is_refused_with_the_fix(tmp_path):
    for folder, words in ((None, "dataset.path is not set"),
                          (tmp_path / "nowhere", "is not a folder"),
                          (tmp_path, "holds no .png file")):
        with pytest.raises(DataError, match=words) as refused:
            ImageFolder(None if folder is None else str(folder)).load(seed=0)
        assert "Fix:" in str(refused.value) and "\n" not in str(refused.value)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png .* is not a readable PNG"):
        ImageFolder(str(tmp_path)).load(seed=0)


# ----------------------------------------------------------------------------- cache
def test_mnist_keeps_its_reference_cache_key():
    """Existing caches of MNIST statistics stay valid: the key is what it always was."""
    lenet = load_extractor("lenet", "cpu")
    assert fid_cache.reference_key(lenet, None) == (
        "lenet_lenet-86cb2bad79a4_train-6bbc9ace898e44ae57da46a324031adb_all_cpu-float32")
    assert fid_cache.reference_key(lenet, 3000, "test", MnistReference("elsewhere")) == (
        "lenet_lenet-86cb2bad79a4_test-2646ac647ad5339dbf082846283269ea_3000_cpu-float32")


def test_reference_statistics_are_cached_per_folder_and_extractor(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    write_pngs(tmp_path / "pngs", 64)
    folder = ImageFolder(str(tmp_path / "pngs"))
    pixels = load_extractor("my_features.PixelFeatures", "cpu", tmp_path / "cache")
    mu, sigma, meta = fid_cache.reference_stats(pixels, folder.reference(), None,
                                                tmp_path / "cache", progress=False)
    assert meta["data"] == f"folder-sha256:{folder.content_hash()}" and meta["count"] == 64
    names = sorted(p.name for p in (tmp_path / "cache" / "stats").glob("ref_*.npz"))
    assert names == [f"ref_pixels_avgpool7x7_{folder.reference().key()}_all_cpu-float32.npz"]
    # the statistics are of these images: they score 0 against themselves
    own = statistics(pixels.features(folder.load(0).x))
    assert frechet_distance(*own, mu, sigma) == pytest.approx(0, abs=1e-6)


# ----------------------------------------------------------------------------- which extractor
def test_lenet_is_refused_for_a_dataset_not_of_digits_with_the_reason_and_the_fix(tmp_path):
    write_pngs(tmp_path / "pngs", 2)
    folder = ImageFolder(str(tmp_path / "pngs")).reference()
    with pytest.raises(NotApplicable) as refused:
        check_applies("lenet", folder)
    message = str(refused.value)
    assert message.startswith("fid.extractor=lenet cannot score dataset image_folder: lenet's "
                              "features describe digits only")
    assert "Fix: fid=inception" in message and "dataset.domain=digits" in message
    assert "\n" not in message
    check_applies("inception", folder)  # any image
    check_applies("lenet", MnistReference())
    check_applies("lenet", ImageFolder(str(tmp_path / "pngs"), domain="digits").reference())
    # digits of another shape: LeNet takes 1x28x28, and no domain forces it
    with pytest.raises(NotApplicable, match="lenet takes samples of shape 1x28x28, and the "
                                            "dataset's are 3x32x32") as refused:
        check_applies("lenet", ImageFolder(str(tmp_path / "pngs"), channels=3, size=32,
                                           domain="digits").reference())
    assert "dataset.domain" not in str(refused.value)
    mixture = MixtureDataset("ring8").reference()
    for name in ("lenet", "inception"):
        with pytest.raises(NotApplicable, match="an extractor of your own"):
            check_applies(name, mixture)


def test_a_launch_on_a_folder_with_lenet_is_refused_before_any_training(tmp_path):
    from gansweep.runs.preflight import Preflight

    write_pngs(tmp_path / "pngs", 2)
    config = compose_config(["dataset=image_folder", f"dataset.path={tmp_path / 'pngs'}"])
    with pytest.raises(SystemExit, match="^error: fid.extractor=lenet cannot score dataset "
                                         "image_folder"):
        Preflight._check_assets(config)
    missing = compose_config(["dataset=image_folder"])
    with pytest.raises(SystemExit, match="^error: dataset.path is not set"):
        Preflight._check_assets(missing)
    Preflight._check_assets(compose_config(["dataset=image_folder", "dataset.domain=digits",
                                            f"dataset.path={tmp_path / 'pngs'}"]))


def test_a_model_refuses_a_dataset_of_another_shape(tmp_path):
    from gansweep.runs.trainer import Run

    write_pngs(tmp_path / "pngs", 40)
    cfg = compose_config(["dataset=image_folder", f"dataset.path={tmp_path / 'pngs'}",
                          "dataset.channels=3", "fid=none", "trainer=smoke",
                          "trainer.batch_size=32"])
    with pytest.raises(ValueError, match="dataset image_folder has samples of shape 3x28x28, "
                                         "and model dcgan_mnist makes and takes 1x28x28. Fix:"):
        Run(cfg, tmp_path / "run")


def test_a_dataset_without_a_reference_is_not_scored_against_mnist():
    class Faces:
        name, evaluator = "faces", None

    cfg = compose_config([]).fid
    with pytest.raises(NotApplicable, match="dataset faces .* has no reference()"):
        build_evaluator(cfg, dataset=Faces(), device="cpu")


def test_a_mixture_offers_its_points_as_a_reference(tmp_path):
    dataset = MixtureDataset("ring8", size=4000)
    reference = dataset.reference()
    assert reference.key("train") == MixtureDataset("ring8", size=4000).reference().key("train")
    assert reference.key("train") != reference.key("test")  # held out: another draw
    evaluator = FidEvaluator("tests.test_dataset_reference.PointFeatures", num_samples=2000,
                             quantize=False, metrics=["fid"], cache_dir=str(tmp_path),
                             reference=reference)
    evaluator.preflight()
    generator = torch.Generator().manual_seed(7)
    good = evaluator(lambda n: dataset.mixture.sample(n, generator)[0])
    bad = evaluator(lambda n: dataset.mixture.sample(n, generator)[0] * 0.5)
    assert good["fid_points"] < 0.05 < 0.5 < bad["fid_points"]  # bad: about 1 by hand
    floor = evaluator.floors(compute=True)["floor_points"]  # held-out points vs the reference
    assert 0 <= floor < 0.05


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_an_image_folder_trains_and_is_scored_against_its_own_reference(tmp_path, mnist_root,
                                                                        monkeypatch, capsys):
    """`gansweep-train -m dataset=image_folder dataset.path=... fid=pixels`: the run is scored
    against the folder's statistics (its images score ~0 against them, MNIST far from it),
    `gansweep-table` shows it, and `gansweep-eval` rescores it against the same reference."""
    write_pngs(tmp_path / "pngs", 160)
    cache = tmp_path / "cache"
    env = {**os.environ, "GANSWEEP_CACHE": str(cache),
           "PYTHONPATH": os.pathsep.join([str(EXAMPLE), os.environ.get("PYTHONPATH", "")])}
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "gansweep.train", "-m", "--config-dir", str(EXAMPLE / "conf"),
           "dataset=image_folder", f"dataset.path={tmp_path / 'pngs'}", "fid=pixels",
           "fid.num_samples=150", "trainer=smoke", "trainer.batch_size=32",
           "trainer.threads=1", "trainer.device=cpu", "seed=0",
           f"hydra.sweep.dir={sweep_dir}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (job,) = [p for p in sweep_dir.iterdir() if (p / "summary.json").exists()]
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["fid_pixels"] > 0
    folder = ImageFolder(str(tmp_path / "pngs"))
    assert summary["fid"]["ref_data"] == f"folder-sha256:{folder.content_hash()}"
    assert summary["fid"]["ref_count"] == 160 and "floor_pixels" not in summary

    monkeypatch.syspath_prepend(str(EXAMPLE))
    pixels = load_extractor("my_features.PixelFeatures", "cpu", cache)
    mu, sigma, meta = fid_cache.reference_stats(pixels, folder.reference(), None, cache)
    assert meta["data"] == summary["fid"]["ref_data"]  # the cached statistics the run used
    own = statistics(pixels.features(folder.load(0).x))
    mnist = statistics(pixels.features(MnistReference(mnist_root).load("train", 1000).x))
    assert frechet_distance(*own, mu, sigma) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(*mnist, mu, sigma) > 10  # MNIST digits are far from these

    from gansweep.report.aggregate import main as table

    assert table([str(sweep_dir)]) in (0, None)
    shown = (sweep_dir / "table.md").read_text()
    assert "image_folder" in shown and "fid_pixels" in shown

    from gansweep.runs import rescore

    monkeypatch.setenv("GANSWEEP_CACHE", str(cache))
    fid_cfg = rescore.compose_fid(["fid.extractor=my_features.PixelFeatures",
                                   "fid.num_samples=150"])
    record = rescore.score(job, fid_cfg, "final", torch.device("cpu"))
    assert record["values"]["fid_pixels"] == summary["fid_pixels"]
    assert record["fid"]["ref_data"] == summary["fid"]["ref_data"]
