"""scripts/gpu_prepare.sh, gpu_check.sh and gpu_study.sh rehearsed on CPU as an offline GPU
node runs them (docs/running.md, "Running on GPUs and clusters"): a copy of the tree (what
git would send) plus the copied .gpu/, a Python that has torch, numpy, scipy, pandas, pillow,
matplotlib, jinja2, tqdm, joblib, pyyaml, filelock and tabulate but neither Hydra, OmegaConf,
ANTLR, pytest nor gansweep, ``DEVICE=cpu`` and a tiny budget; then the returned samples scored
here (``python -m gansweep.gpu_study score``) with LeNet, which must give the training's own
numbers. That Python is a fresh venv whose site-packages links only those distributions (and
their requirements) from the one running the tests, or ``GANSWEEP_GPU_PYTHON``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import venv
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

from tests.helpers import REPO

# what the offline node has besides the standard library (and pip)
THERE = ("torch", "numpy", "scipy", "pandas", "pillow", "matplotlib", "jinja2", "tqdm",
         "joblib", "pyyaml", "filelock", "tabulate")
NOT_THERE = ("hydra", "omegaconf", "antlr4", "hydra_plugins", "gansweep", "pytest", "pluggy",
             "setuptools")  # the machine may lack setuptools: nothing here may need it
TINY = ("dataset.limit=512 trainer.max_batches_per_epoch=2 trainer.batch_size=32 "
        "fid.num_samples=200 fid.ref_limit=1000")
SCRIPTS = ("scripts/gpu_prepare.sh", "scripts/gpu_check.sh", "scripts/gpu_study.sh",
           "gansweep/gpu_study.py")


def test_nothing_there_reaches_for_the_network():
    """The machine has no network: the scripts and the module name no URL or downloader, and
    every pip install is --no-index (gpu_prepare.sh, run here, downloads: it is left out)."""
    for name in SCRIPTS[1:]:
        text = (REPO / name).read_text()
        assert not re.search(r"https?://|urllib|urlopen|pip download|npm |curl |wget ", text), name
        for line in text.splitlines():
            if re.search(r"pip\W+install", line) and not line.lstrip().startswith("#"):
                assert "--no-index" in line, f"{name}: {line}"


def test_samples_files_are_packed_by_compressed_size_within_the_return_limits():
    from gansweep.gpu_study import RETURN_FILES, SAMPLES_LIMIT, _deflated_size, pack

    assert pack([], 10) == []
    assert pack([4, 4, 3, 9, 12, 1], 10) == [[0, 1], [2], [3], [4], [5]]  # 12: a group alone
    assert pack([5, 5, 5], 10) == [[0, 1], [2]]
    # the estimate against what np.savez_compressed writes, on digit-like levels: black
    # background, strokes of noisy grey (what G draws compresses about as well)
    rng = np.random.default_rng(0)
    levels = np.zeros((3000, 28, 28), np.uint8)
    levels[:, 6:22, 12:16] = rng.integers(100, 256, (3000, 16, 4))
    import io
    buffer = io.BytesIO()
    np.savez_compressed(buffer, a=levels)
    assert abs(_deflated_size(levels) - len(buffer.getvalue())) < 2048
    # 21 runs (7 presets x 3 seeds) of the first H200's size (0.68-1.43 MB each): 2 files,
    # which leaves the return room for manifest, archive, study.txt, table.md and montage.png
    sizes = [680_781, 701_282, 1_425_990, 740_068, 891_500, 1_130_751, 689_698] * 3
    assert len(pack(sizes, SAMPLES_LIMIT)) + 5 <= RETURN_FILES


def test_plan_sizes_the_epochs_from_the_slowest_run_in_steady_state(tmp_path):
    """Seconds per batch after the first logged one (autotuning left out), of the slowest
    run; the launch overhead and the reserve come off the time left; at most --max-epochs."""
    from gansweep import gpu_study

    for job, per_batch in (("0_seed_standard_x", 0.010), ("1_seed_coulomb_1_x", 0.020)):
        (tmp_path / job).mkdir()
        rows = [{"epoch": 0, "batch": 0, "step": 0, "d_loss": 1.0, "seconds": 5.0}]  # autotune
        rows += [{"epoch": 0, "batch": b, "step": b, "d_loss": 1.0, "seconds": 5.0 + b * per_batch}
                 for b in (100, 200, 300, 400, 467)]
        (tmp_path / job / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tmp_path / job / "summary.json").write_text(json.dumps({
            "status": "ok", "batches_done": 468, "batches_per_epoch": 468, "device": "cuda:0",
            "wall_seconds": rows[-1]["seconds"]}))
    out = tmp_path / "plan.json"
    # 0.020 s x 468 x 1.3 = 12.168 s per epoch; 294 - (40 - 14.34) - 80 = 188.3 s: 15.5 epochs
    gpu_study.main(["plan", str(tmp_path), "--launch-seconds", "40", "--reserve", "80",
                    "--deadline", str(time.time() + 294), "--out", str(out)])
    plan = json.loads(out.read_text())
    assert plan["seconds_per_batch"] == pytest.approx(0.020)
    assert plan["epochs"] == 15 and plan["runs_side_by_side"] == 2
    gpu_study.main(["plan", str(tmp_path), "--launch-seconds", "40", "--max-epochs", "5",
                    "--deadline", str(time.time() + 3000), "--out", str(out)])
    assert json.loads(out.read_text())["epochs"] == 5


def _closure(names) -> list[metadata.Distribution]:
    """The installed distributions ``names`` and, recursively, what they require."""
    seen, todo = {}, list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen or name == "setuptools":  # torch asks for it; the machine may lack it
            continue
        try:
            seen[name] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for text in seen[name].requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _bare_python(root: Path) -> Path:
    """A venv with pip (no setuptools) whose site-packages links THERE's distributions only."""
    venv.EnvBuilder(with_pip=True, symlinks=True).create(root)
    python = root / "bin" / "python"
    subprocess.run([python, "-m", "pip", "uninstall", "-y", "-q", "setuptools"],
                   capture_output=True, timeout=120)  # ensurepip adds it before Python 3.12
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(subprocess.run([python, "-c", where], capture_output=True, text=True,
                               check=True).stdout.strip())
    for dist in _closure(THERE):
        base = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if (base / top).exists() and not (site / top).exists():
                (site / top).symlink_to(base / top)
    return python


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """(tree, python, env): .gpu/ built, the tree copied, a Python without Hydra."""
    root = tmp_path_factory.mktemp("gpu_rehearsal")
    prepare = subprocess.run(["bash", "scripts/gpu_prepare.sh"], cwd=REPO, capture_output=True,
                             text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    if prepare.returncode != 0 and not (REPO / ".gpu/wheels/.pins").exists():
        pytest.skip(f"the wheels could not be built (PyPI unreachable?): {prepare.stderr[-800:]}")
    assert prepare.returncode == 0, prepare.stdout + prepare.stderr
    assert "travels: .gpu" in prepare.stdout
    manifest = (REPO / ".gpu/MANIFEST").read_text()
    for part in ("hydra_core-", "omegaconf-", "antlr4_python3_runtime-4.9.3-py3-none-any.whl",
                 "hydra_joblib_launcher-", "pytest-", "mnist/train-images-idx3-ubyte.gz"):
        assert part in manifest, part
    tree = root / "tree"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tree / name)
    shutil.copytree(REPO / ".gpu", tree / ".gpu", ignore=shutil.ignore_patterns("*.tmp"))
    python = Path(os.environ.get("GANSWEEP_GPU_PYTHON") or _bare_python(root / "venv"))
    missing = subprocess.run([python, "-c", "import importlib.util as u, sys; "
                              "print([m for m in sys.argv[1:] if u.find_spec(m)])", *NOT_THERE],
                             cwd=root, capture_output=True, text=True, check=True).stdout
    assert missing.strip() == "[]", f"{python} has {missing}: not the offline node"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GANSWEEP_"))}
    env.update(PYTHON=str(python), DEVICE="cpu", GANSWEEP_CACHE=str(root / "cache"),
               GANSWEEP_GPU_SITE=str(root / "site"))
    return tree, python, env


@pytest.mark.slow
def test_the_study_returns_samples_summaries_and_table_and_scores_here(rehearsal, tmp_path):
    tree, python, env = rehearsal
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(["bash", "scripts/gpu_study.sh"], cwd=tree, capture_output=True,
                          text=True, timeout=900,
                          env={**env, "OUT": str(out), "STUDY_SECONDS": "600", "N_JOBS": "2",
                               "MAX_EPOCHS": "2", "EXPORT_SECONDS": "30",
                               "STUDY_OVERRIDES": TINY})
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "pip --no-index --target" in log and "calibration: exit 0" in log, log[-4000:]
    assert not (tree / "gansweep" / "conf").exists(), "the link outlived the script"
    files = sorted(p.name for p in out.iterdir())
    assert files == ["manifest.json", "montage.png", "samples.npz", "study.tar.gz", "study.txt",
                     "table.md"]
    assert all((out / f).stat().st_size < 16 * 2**20 for f in files)
    plan = json.loads((tree / "outputs/gpu_study/plan.json").read_text())
    assert plan["epochs"] == 2 and plan["runs_side_by_side"] == 7
    manifest = json.loads((out / "manifest.json").read_text())
    runs = {r["name"]: r for r in manifest["runs"]}
    assert sorted(runs) == ["seed_coulomb_1", "seed_coulomb_2", "seed_coulomb_3",
                            "seed_coulomb_4", "seed_coulomb_5", "seed_coulomb_6", "seed_standard"]
    with np.load(out / "samples.npz") as samples:
        for run in runs.values():
            assert run["status"] == "ok" and run["epochs_done"] == 2 and run["device"] == "cpu"
            levels = samples[run["job"]]
            assert levels.dtype == np.uint8 and levels.shape == (200, 28, 28)
            check = run["fid_lenet_check"]  # the returned samples are the evaluated ones
            assert check["exported"] == pytest.approx(check["summary"], rel=1e-6)
    with tarfile.open(out / "study.tar.gz") as tar:
        names = tar.getnames()
    for run in runs.values():
        assert f"sweep/{run['job']}/summary.json" in names
        assert f"sweep/{run['job']}/samples/final.png" in names
    assert {"sweep/table.md", "sweep/table.html", "sweep/montage.png", "extra/plan.json",
            "extra/sweep.log"} <= set(names)
    assert not [n for n in names if "checkpoints" in n or "/samples/0" in n]

    # here: score the returned folder, read-only as a copy back may leave it (LeNet: cheap)
    for path in out.iterdir():
        path.chmod(0o444)
    scored = subprocess.run(
        [sys.executable, "-m", "gansweep.gpu_study", "score", str(out), "fid=lenet",
         "fid.num_samples=200", "fid.ref_limit=1000", "--data-root", str(tree / ".gpu/mnist"),
         "--dest", str(tmp_path / "scored")], cwd=REPO, capture_output=True, text=True,
        timeout=600, env={**os.environ, "GANSWEEP_CACHE": env["GANSWEEP_CACHE"]})
    assert scored.returncode == 0, scored.stderr[-3000:]
    sweep = tmp_path / "scored" / "sweep"
    same = []
    for run in runs.values():
        [record] = (sweep / run["job"] / "evals").glob("final_lenet_*.json")
        value = json.loads(record.read_text())["values"]["fid_lenet"]
        assert value == pytest.approx(run["fid_lenet_check"]["summary"], rel=1e-6)
        own = json.loads((sweep / run["job"] / "summary.json").read_text())["fid_lenet"]
        same.append(value == own)
    # the table shows the CPU score beside the run's own only where it differs (on a GPU);
    # one equal to the bit (this CPU rehearsal) reproduces it and is not shown twice
    assert ("fid_lenet@" in (sweep / "table.md").read_text()) == (not all(same))


@pytest.mark.slow
def test_without_pip_the_wheels_are_unzipped(rehearsal, tmp_path):
    """A Python without pip (nothing but the standard library) still gets the wheels:
    ``env`` extracts them, and the source tree's gansweep.conf through the link."""
    tree, _, _ = rehearsal
    venv.EnvBuilder(with_pip=False, symlinks=True).create(tmp_path / "nopip")
    python = tmp_path / "nopip" / "bin" / "python"
    site = tmp_path / "site"
    try:
        done = subprocess.run([python, "-m", "gansweep.gpu_study", "env", "--site", str(site)],
                              cwd=tree, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "unzipped (no pip here)" in done.stderr
        lines = dict(line.removeprefix("export ").split("=", 1)
                     for line in done.stdout.splitlines())
        assert lines["PIP_NO_INDEX"] == "1" and str(site) in lines["PYTHONPATH"]
        found = subprocess.run(
            [python, "-c", "import importlib.util as u, sys; "
             "print([m for m in sys.argv[1:] if u.find_spec(m) is None])", "hydra", "omegaconf",
             "antlr4", "pytest", "hydra_plugins.hydra_joblib_launcher", "gansweep.conf"],
            cwd=tree, capture_output=True, text=True, check=True,
            env={"PYTHONPATH": f"{tree}:{site}", "PATH": os.environ["PATH"]})
        assert found.stdout.strip() == "[]"
    finally:
        (tree / "gansweep" / "conf").unlink(missing_ok=True)


@pytest.mark.slow
def test_the_check_runs_without_hydra_and_returns_its_logs(rehearsal, tmp_path):
    tree, python, env = rehearsal
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        ["bash", "scripts/gpu_check.sh", str(tmp_path / "logs")], cwd=tree, capture_output=True,
        text=True, timeout=600,
        env={**env, "OUT": str(out), "DEVICE_TESTS": "tests/test_trainer.py",
             "DEVICE_TESTS_K": "uniform_noise", "SEED_SECONDS": "25", "RESUME_SECONDS": "20",
             "BENCH_ARGS": "--steps 1 --warmup 1 --impls fast --gan-types standard "
                           "--limit 256 --peak-size 256 --no-fid",
             "SEED_OVERRIDES": "dataset.limit=1024"})
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    summary = (out / "check.txt").read_text()
    assert "result: ok" in summary and "resumed: True" in summary, summary
    assert "hydra 1.3" in log and "tests_gpu: exit 0" in summary
    with tarfile.open(out / "check.tar.gz") as tar:
        assert {"./bench.json", "./environment.txt", "./seed_standard/summary.json"} <= set(
            tar.getnames())
