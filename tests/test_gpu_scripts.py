"""scripts/gpu_prepare.sh, gpu_check.sh, gpu_study.sh and gpu_study.py rehearsed on CPU as an
offline GPU machine runs them (docs/running.md, "Running on GPUs and clusters"): a copy of the
tree (what git would send) plus what the first command carries (.gpu/wheels, .gpu/mnist and
the first part of the Inception weights), a Python that has torch, numpy, scipy, pandas,
pillow, matplotlib, jinja2, tqdm, joblib, pyyaml, filelock and tabulate but neither Hydra,
OmegaConf, ANTLR, pytest nor gansweep, ``DEVICE=cpu`` and a tiny budget. The check runs as
the first command; the study first refuses in one line without the second part, then, with
it, trains, scores Inception FID there and returns records only, which must equal what
``gansweep-eval <run> fid=inception`` computes here for the same G (with the Inception
features cut to 32 dimensions, tests/inception_probe.py: the full width needs more than 2048
samples, minutes a run on this CPU). That Python is a fresh venv whose site-packages links
only those distributions (and their requirements) from the one running the tests, or
``GANSWEEP_GPU_PYTHON``."""

from __future__ import annotations

import hashlib
import importlib.util
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

import pytest
from packaging.requirements import Requirement

from tests.helpers import REPO, write_job

# what the machine has besides the standard library (and pip)
THERE = ("torch", "numpy", "scipy", "pandas", "pillow", "matplotlib", "jinja2", "tqdm",
         "joblib", "pyyaml", "filelock", "tabulate")
NOT_THERE = ("hydra", "omegaconf", "antlr4", "hydra_plugins", "gansweep", "pytest", "pluggy",
             "setuptools")  # the machine may lack setuptools: nothing here may need it
TINY = ("dataset.limit=512 trainer.max_batches_per_epoch=2 trainer.batch_size=32 "
        "trainer.threads=1 fid.num_samples=200 fid.ref_limit=1000")
# Inception FID as cheap as it gets on a CPU: the network and weights of fid=inception, its
# features cut to 32 dimensions (tests/inception_probe.py), 33 samples against 33 images
TINY_INCEPTION = ["fid=inception", "fid.extractor=tests.inception_probe.InceptionFirst32",
                  "fid.num_samples=33", "fid.ref_limit=33", "fid.metrics=[fid]"]
PROBE = "tests.inception_probe.InceptionFirst32"
SCRIPTS = ("scripts/gpu_prepare.sh", "scripts/gpu_check.sh", "scripts/gpu_study.sh",
           "scripts/gpu_study.py")
PRESETS = ["seed_coulomb_1", "seed_coulomb_2", "seed_coulomb_3", "seed_coulomb_4",
           "seed_coulomb_5", "seed_coulomb_6", "seed_standard"]


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_study", REPO / "scripts/gpu_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_study = _load_script()


def test_nothing_there_reaches_for_the_network():
    """The machine has no network: the scripts that run there name no URL or downloader, and
    every pip install is --no-index (gpu_prepare.sh and gpu_study.py's ``split``, which run
    here, may download)."""
    for name in SCRIPTS[1:]:
        text = (REPO / name).read_text()
        assert not re.search(r"https?://|urllib|urlopen|pip download|npm |curl |wget ", text), name
        for line in text.splitlines():
            if re.search(r"pip\W+install", line) and not line.lstrip().startswith("#"):
                assert "--no-index" in line, f"{name}: {line}"


def test_no_machine_constants_ship_in_the_package():
    """The study's logistics live in scripts/, not in the installed package."""
    assert not (REPO / "gansweep" / "gpu_study.py").exists()
    for path in (REPO / "gansweep").rglob("*.py"):
        assert "16 MiB" not in path.read_text() and ".gpu/" not in path.read_text(), path


def test_a_sweep_value_counts_its_runs():
    assert gpu_study.sweep_size("glob(seed_*)") == 7
    assert gpu_study.sweep_size("0,1,2") == 3 and gpu_study.sweep_size("seed_standard") == 1
    assert gpu_study.sweep_size("range(3,13)") == 10 and gpu_study.sweep_size("range(0, 6, 2)") == 3


def test_the_weights_travel_in_parts_and_are_joined_only_when_every_sha256_holds(tmp_path):
    """split_file cuts a file into equal parts with their SHA256SUMS; join_parts rebuilds it
    only from all parts, each as its SHA256SUMS says, into bytes of the expected sha256, and
    otherwise refuses in one line naming the piece and the fix, writing nothing."""
    source = tmp_path / "w.pt"
    source.write_bytes(bytes(range(256)) * 41 + b"tail")
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    carried = tmp_path / "carried"
    folders = gpu_study.split_file(source, carried, 3, "w.pt")
    assert [f.name for f in folders] == ["weights-1", "weights-2", "weights-3"]
    sizes = [(f / f"w.pt.{k}of3").stat().st_size for k, f in enumerate(folders, 1)]
    assert sum(sizes) == source.stat().st_size and max(sizes) - min(sizes) < 3
    # the first command also carries the wheels and MNIST: its part is that much smaller
    assert gpu_study.part_sizes(87_335_461, 2, 13_612_534) == [36_861_463, 50_473_998]
    assert gpu_study.part_sizes(10, 3, 100) == [1, 5, 4] and gpu_study.part_sizes(7, 1, 5) == [7]
    assert f"{expected}  w.pt" in (folders[0] / "SHA256SUMS").read_text()
    target = tmp_path / "cache" / "weights" / "w.pt"

    def refused(match: str, sha: str = expected) -> None:
        with pytest.raises(SystemExit, match=match) as why:
            gpu_study.join_parts(carried, target, sha, "w.pt")
        assert "\n" not in str(why.value) and "Fix: " in str(why.value)
        assert not target.exists() and not list(target.parent.glob(".w.pt.tmp*"))

    with pytest.raises(SystemExit, match=r"no parts are under .*Fix: run scripts/gpu_prepare"):
        gpu_study.join_parts(tmp_path / "nothing carried", target, expected, "w.pt")
    (folders[1] / "w.pt.2of3").rename(tmp_path / "aside")
    refused(r"part 2 of 3 of the Inception weights .*weights-2/w.pt.2of3\) is not here. "
            r"Fix: carry .gpu/weights-2 with this command")
    (tmp_path / "aside").rename(folders[1] / "w.pt.2of3")
    data = bytearray((folders[2] / "w.pt.3of3").read_bytes())
    data[0] ^= 1
    (folders[2] / "w.pt.3of3").write_bytes(bytes(data))
    refused(r"part 3 of 3 .* is corrupt: .*w.pt.3of3 has sha256")
    gpu_study.split_file(source, carried, 3, "w.pt")  # a fresh split mends it
    refused(r"joined from 3 parts .* have sha256 [0-9a-f]{64}, expected 0+\. Fix:", "0" * 64)
    assert gpu_study.join_parts(carried, target, expected, "w.pt").endswith(
        "joined from 3 parts (sha256 verified)")
    assert target.read_bytes() == source.read_bytes()
    assert "(sha256 verified)" in gpu_study.join_parts(carried, target, expected, "w.pt")
    gpu_study.split_file(source, carried, 2, "w.pt")  # a split into fewer parts replaces it
    assert sorted(p.name for p in carried.iterdir()) == ["weights-1", "weights-2"]
    (carried / "weights-3").mkdir()
    (carried / "weights-3" / "w.pt.3of3").write_bytes(b"x")
    target.unlink()
    refused(r"parts of splits into \[2, 3\] parts")


def test_the_check_reports_the_parts_carried_so_far(tmp_path, capsys):
    """``weights --check`` (the first command) verifies the parts that are there."""
    from gansweep.fid.inception import WEIGHTS_NAME

    source = tmp_path / WEIGHTS_NAME
    source.write_bytes(b"not the weights" * 100)
    carried = tmp_path / "carried"
    gpu_study.split_file(source, carried, 2, WEIGHTS_NAME)
    shutil.rmtree(carried / "weights-2")
    cache = ["--parts", str(carried), "--cache-dir", str(tmp_path / "cache")]
    assert gpu_study.main(["weights", "--check", *cache]) == 0
    assert capsys.readouterr().out.strip() == "weights: 1 of 2 parts here, sha256 verified"
    with pytest.raises(SystemExit, match=r"part 2 of 2 .* is not here"):
        gpu_study.main(["weights", *cache])
    (carried / "weights-1" / f"{WEIGHTS_NAME}.1of2").write_bytes(b"changed")
    with pytest.raises(SystemExit, match=r"1of2 has sha256 .* Fix: run scripts/gpu_prepare.sh"):
        gpu_study.main(["weights", "--check", *cache])


def _calibration(root: Path, per_batch: dict[str, float], evaluation: float = 0.0) -> Path:
    """Calibration job dirs: one epoch of 468 batches per run at ``per_batch`` seconds each
    after the first logged batch, and an end-of-epoch evaluation of ``evaluation`` seconds."""
    for job, seconds in per_batch.items():
        (root / "sweep" / job).mkdir(parents=True)
        rows = [{"epoch": 0, "batch": 0, "step": 0, "d_loss": 1.0, "seconds": 5.0}]  # autotune
        rows += [{"epoch": 0, "batch": b, "step": b, "d_loss": 1.0, "seconds": 5.0 + b * seconds}
                 for b in (100, 200, 300, 400, 467)]
        (root / "sweep" / job / "metrics.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows))
        (root / "sweep" / job / "summary.json").write_text(json.dumps({
            "status": "ok", "batches_done": 468, "batches_per_epoch": 468, "device": "cuda:0",
            "wall_seconds": rows[-1]["seconds"],
            "fid": {"seconds": {"samples_and_features": evaluation, "total": 60.0}}}))
    return root


def _plan(tmp_path: Path, *calibrations, seconds_left: float, **options) -> dict:
    out = tmp_path / "plan.json"
    args = ["plan", "--deadline", str(time.time() + seconds_left), "--out", str(out)]
    for precision, root, launch in calibrations:
        args += ["--calibration", precision, str(root), str(launch)]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    assert gpu_study.main(args) == 0
    return json.loads(out.read_text())


def test_plan_sizes_the_epochs_from_the_slowest_run_in_steady_state(tmp_path):
    """Seconds per batch after the first logged one (autotuning left out), of the slowest
    run; the launch overhead and the reserve come off the time left; at most --max-epochs."""
    cal = _calibration(tmp_path / "cal", {"0_seed_standard_x": 0.010, "1_seed_coulomb_1_x": 0.020})
    # 0.020 s x 468 x 1.3 = 12.168 s per epoch; 294 - (40 - 14.34) - 80 = 188.3 s: 15.5 epochs
    plan = _plan(tmp_path, ("float32", cal, 40), seconds_left=294, reserve=80)
    assert plan["options"]["float32"]["seconds_per_batch"] == pytest.approx(0.020)
    assert plan["epochs"] == 15 and plan["runs_side_by_side"] == 2
    assert plan["precision"] == "float32" and not plan["fits"] and plan["calibrate_tf32"]
    plan = _plan(tmp_path, ("float32", cal, 40), seconds_left=3000, max_epochs=5)
    assert plan["epochs"] == 5 and plan["fits"] and not plan["calibrate_tf32"]
    # an evaluation every 5 epochs adds a fifth of its seconds to each epoch
    cal = _calibration(tmp_path / "cal_eval", {"0_seed_standard_x": 0.020}, evaluation=6.0)
    plan = _plan(tmp_path, ("float32", cal, 40), seconds_left=294, reserve=80, every_epochs=5)
    assert plan["options"]["float32"]["seconds_per_epoch_with_margin"] == pytest.approx(13.368)


def test_the_plan_prefers_ieee_float32_and_takes_tf32_only_where_float32_does_not_fit(tmp_path):
    """IEEE float32 where its plan fits --max-epochs in --commands commands of
    --command-seconds; else TF32 where it trains more epochs; either way it says why, and
    how many commands each needs."""
    fp32 = _calibration(tmp_path / "fp32", {"0_seed_standard_x": 0.020})  # 12.168 s an epoch
    tf32 = _calibration(tmp_path / "tf32", {"0_seed_standard_x": 0.010})  # 6.084 s
    common = {"reserve": 60, "command_seconds": 540, "setup_seconds": 30, "max_epochs": 100}
    # this command: 540 - 60 = 480 s; a later one: 540 - 60 - 30 = 450 s
    plan = _plan(tmp_path, ("float32", fp32, 14.34), seconds_left=540, commands=3, **common)
    assert plan["precision"] == "float32" and plan["fits"] and plan["epochs"] == 100
    assert plan["commands_needed"] == 3 and not plan["tf32"]  # 1216.8 s: 480 + 450 + 450
    assert "IEEE float32: 100 epochs fit in 3 commands" in plan["why"]
    plan = _plan(tmp_path, ("float32", fp32, 14.34), seconds_left=540, commands=2, **common)
    assert plan["calibrate_tf32"] and plan["epochs"] == 76  # 930 s / 12.168
    both = [("float32", fp32, 14.34), ("tf32", tf32, 14.34)]
    plan = _plan(tmp_path, *both, seconds_left=540, commands=2, **common)
    assert plan["precision"] == "tf32" and plan["tf32"] and plan["fits"] and plan["epochs"] == 100
    assert plan["why"] == ("IEEE float32 fits 76 of 100 epochs in 2 commands (it needs 3 "
                           "commands); TF32 fits 100 (needs 2)")
    plan = _plan(tmp_path, *both, seconds_left=540, commands=2, precision="float32", **common)
    assert plan["precision"] == "float32" and plan["epochs"] == 76 and not plan["calibrate_tf32"]
    # the scoring at the end, once: 1380 - 200 s train 96 epochs in 3 commands, 100 in 4
    plan = _plan(tmp_path, ("float32", fp32, 14.34), seconds_left=540, commands=3,
                 evaluation_seconds=200, **common)
    assert plan["epochs"] == 96 and not plan["fits"] and plan["commands_needed"] == 4


def test_a_command_keeps_time_for_scoring_only_where_the_runs_finish_in_it(tmp_path, capsys):
    """``budget``: the sweeps get all of this command where the plan has the runs still
    training at its end, else all but the scoring's seconds."""
    fp32 = _calibration(tmp_path / "fp32", {"0_seed_standard_x": 0.020})  # 12.168 s an epoch
    plan = _plan(tmp_path, ("float32", fp32, 14.34), seconds_left=3000, reserve=60,
                 max_epochs=100, commands=3)
    capsys.readouterr()
    root = tmp_path / "study"
    args = ["budget", str(tmp_path / "plan.json"), str(root), "--seconds-left", "480",
            "--evaluation-seconds", "200"]
    assert gpu_study.main(args) == 0  # nothing started: 100 epochs to go
    assert capsys.readouterr().out == ("480 the runs need about 1217 s more: all of it trains, "
                                       "the next command scores\n")
    assert plan["runs_side_by_side"] == 1
    for status, done in (("interrupted", 468 * 85), ("ok", 468 * 100)):
        write_job(root / "sweep", "0_seed_standard_x", [], {}, {
            "status": status, "epochs": 100, "batches_done": done})
        assert gpu_study.main(args) == 0  # 15 epochs left (182.5 s), then none
        assert capsys.readouterr().out.startswith(
            f"280 the runs finish in about {183 if status != 'ok' else 0} s; 200 s kept")
        shutil.rmtree(root / "sweep")


def test_export_brings_back_records_within_the_file_limits(tmp_path):
    """Records only (no checkpoints, no grids drawn during training), a line per run, the
    table to look at; a file over --max-file-mib is named with the fix."""
    root = tmp_path / "study"
    job = write_job(root / "sweep", "0_seed_standard_x", [], {"name": "seed_standard"},
                    {"status": "ok", "epochs_done": 2, "epochs": 2, "batches_done": 4,
                     "device": "cpu", "precision": "float32", "fid_lenet": 12.5})
    (job / "checkpoints").mkdir()
    (job / "checkpoints" / "last.pt").write_bytes(b"G")
    (job / "samples" / "0001_000002.png").write_bytes(b"grid")
    (job / "evals").mkdir()
    (job / "evals" / "final_inception_abcd1234.json").write_text(
        json.dumps({"values": {"fid_inception": 200.25, "kid_inception": 0.1}}))
    (root / "sweep" / "table.md").write_text("| table |\n")
    (root / "plan.json").write_text("{}")
    out = tmp_path / "out"
    assert gpu_study.main(["export", str(root), str(out), "--extra", str(root / "plan.json")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["study.tar.gz", "study.txt", "table.md"]
    with tarfile.open(out / "study.tar.gz") as tar:
        names = tar.getnames()
    assert {"sweep/0_seed_standard_x/summary.json", "sweep/0_seed_standard_x/samples/final.png",
            "sweep/0_seed_standard_x/evals/final_inception_abcd1234.json",
            "extra/plan.json"} <= set(names)
    assert not [n for n in names if "checkpoints" in n or "/samples/0" in n]
    lines = (out / "study.txt").read_text().splitlines()
    assert lines[0] == ("sweep/0_seed_standard_x: ok, 2/2 epochs (4 batches) on cpu in float32, "
                        "fid_lenet 12.5000, fid_inception 200.2500")
    assert lines[-1] == "1 runs, 1 with Inception FID; returned: study.tar.gz, study.txt, table.md"
    limit = ((out / "study.txt").stat().st_size + 100) / 2**20  # the archive is larger
    assert (out / "study.tar.gz").stat().st_size > limit * 2**20
    with pytest.raises(SystemExit, match=r"error: study.tar.gz \(0.0 MiB\) over --max-file-mib "
                                         r"[0-9.e-]+\. Fix: "):
        gpu_study.main(["export", str(root), str(out), "--max-file-mib", str(limit)])


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
    """(tree, python, env): what the first command carries, the tree copied, a Python without
    Hydra with the carried wheels installed (the pip path of ``env``)."""
    root = tmp_path_factory.mktemp("gpu_rehearsal")
    prepare = subprocess.run(["bash", "scripts/gpu_prepare.sh"], cwd=REPO, capture_output=True,
                             text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    if prepare.returncode != 0 and not (REPO / ".gpu/wheels/.pins").exists():
        pytest.skip(f"the wheels could not be built (PyPI unreachable?): {prepare.stderr[-800:]}")
    assert prepare.returncode == 0, prepare.stdout + prepare.stderr
    assert re.search(r"carry, command 1: \.gpu/wheels \.gpu/mnist \.gpu/weights-1 .* = "
                     r"[0-9.]+ MiB \(limit 60 MiB\)", prepare.stdout), prepare.stdout
    assert "carry, command 2: .gpu/weights-2 " in prepare.stdout
    manifest = (REPO / ".gpu/MANIFEST").read_text()
    for part in ("hydra_core-", "omegaconf-", "antlr4_python3_runtime-4.9.3-py3-none-any.whl",
                 "hydra_joblib_launcher-", "pytest-", "mnist/train-images-idx3-ubyte.gz",
                 "weights-1/default_1.pt.1of2", "weights-2/default_1.pt.2of2"):
        assert part in manifest, part
    tree = root / "tree"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tree / name)
    # the first command's carry; the second brings .gpu/weights-2
    shutil.copytree(REPO / ".gpu", tree / ".gpu",
                    ignore=shutil.ignore_patterns("*.tmp", "weights-2"))
    python = Path(os.environ.get("GANSWEEP_GPU_PYTHON") or _bare_python(root / "venv"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GANSWEEP_"))}
    missing = subprocess.run([python, "-c", "import importlib.util as u, sys; "
                              "print([m for m in sys.argv[1:] if u.find_spec(m)])", *NOT_THERE],
                             cwd=root, capture_output=True, text=True, check=True, env=env).stdout
    assert missing.strip() == "[]", f"{python} has {missing}: not the offline machine"
    # TORCH_HOME: no pytorch-fid checkpoint in a hub cache may stand in for the carried weights
    env.update(PYTHON=str(python), DEVICE="cpu", GANSWEEP_CACHE=str(root / "cache"),
               GANSWEEP_GPU_SITE=str(root / "site"), TORCH_HOME=str(root / "torch"))
    installed = subprocess.run([python, "scripts/gpu_study.py", "env"], cwd=tree, env=env,
                               capture_output=True, text=True, timeout=300)
    (tree / "gansweep" / "conf").unlink(missing_ok=True)  # the scripts link it themselves
    assert installed.returncode == 0, installed.stderr
    assert "pip --no-index --target" in installed.stderr
    return tree, python, env


@pytest.mark.slow
def test_the_check_runs_without_hydra_and_returns_its_logs(rehearsal, tmp_path):
    """The first command: the checks, with the first part of the weights verified."""
    tree, python, env = rehearsal
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", "scripts/gpu_check.sh", str(tmp_path / "logs")], cwd=tree, capture_output=True,
        text=True, timeout=600,
        env={**env, "RETURN_DIR": str(out), "DEVICE_TESTS": "tests/test_trainer.py",
             "DEVICE_TESTS_K": "uniform_noise", "SEED_SECONDS": "25", "RESUME_SECONDS": "20",
             "BENCH_ARGS": "--steps 1 --warmup 1 --impls fast --gan-types standard "
                           "--limit 256 --peak-size 256 --no-fid",
             "SEED_OVERRIDES": "dataset.limit=1024 trainer.threads=1"})
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    summary = (out / "check.txt").read_text()
    assert "result: ok" in summary and "resumed: True" in summary, summary
    assert "weights: 1 of 2 parts here, sha256 verified" in summary
    assert "hydra 1.3" in log and "tests_gpu: exit 0" in summary
    assert "already in" in log  # the wheels the fixture installed
    with tarfile.open(out / "check.tar.gz") as tar:
        assert {"./bench.json", "./environment.txt", "./seed_standard/summary.json"} <= set(
            tar.getnames())


@pytest.mark.slow
def test_the_study_scores_inception_there_and_returns_only_records(rehearsal, tmp_path):
    tree, python, env = rehearsal
    settings = {**env, "STUDY_SECONDS": "900", "SEEDS": "0", "STUDY_EXTRA_SEEDS": "1",
                "N_JOBS": "2", "MAX_EPOCHS": "2", "LENET_EVERY": "1", "EXPORT_SECONDS": "30",
                "EVAL_SECONDS": "300", "STUDY_OVERRIDES": TINY,
                "EVAL_FID": " ".join([*TINY_INCEPTION, "fid.fetch=false"]), "EVAL_JOBS": "2"}
    # the second command without its part of the weights: one line, before any training
    early = tmp_path / "early"
    done = subprocess.run(["bash", "scripts/gpu_study.sh", str(early)], cwd=tree, env=settings,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stdout.splitlines() if "error" in line]
    assert len(errors) == 1 and re.search(
        r"\] error: part 2 of 2 of the Inception weights \(.*/\.gpu/weights-2/default_1\.pt"
        r"\.2of2\) is not here\. Fix: carry \.gpu/weights-2 with this command", errors[0]), errors
    assert not list((tree / "outputs/gpu_study").glob("calibration*"))
    assert [p.name for p in early.iterdir()] == ["study.log"]

    shutil.copytree(REPO / ".gpu/weights-2", tree / ".gpu/weights-2")  # the second carry
    out = tmp_path / "out"
    done = subprocess.run(["bash", "scripts/gpu_study.sh"], cwd=tree, capture_output=True,
                          text=True, timeout=1200, env={**settings, "RETURN_DIR": str(out)})
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "joined from 2 parts (sha256 verified)" in log and "calibration (float32): exit 0" in log
    assert "plan: IEEE float32, 2 epochs of each of 8 runs (IEEE float32: 2 epochs fit" in log
    assert "precision: IEEE float32 (trainer.tf32=false)" in log and "TF32 not" not in log
    assert re.search(r"study: 2 epochs per run, \d+ s before it is stopped \(the runs finish in "
                     r"about \d+ s; 300 s kept to score them\)", log), log[-3000:]
    assert not (tree / "gansweep" / "conf").exists(), "the link outlived the script"
    files = sorted(p.name for p in out.iterdir())
    assert files == ["montage.png", "study.tar.gz", "study.txt", "table.md"]
    assert all((out / f).stat().st_size < 16 * 2**20 for f in files)
    plan = json.loads((tree / "outputs/gpu_study/plan.json").read_text())
    assert plan["epochs"] == 2 and plan["runs_side_by_side"] == 8 and plan["precision"] == "float32"
    unpacked = tmp_path / "unpacked"
    with tarfile.open(out / "study.tar.gz") as tar:
        names = set(tar.getnames())
        tar.extractall(unpacked, filter="data")
    assert {"sweep/table.md", "sweep/table.html", "sweep/montage.png", "collapse/table.md",
            "extra/plan.json", "extra/sweep.log", "extra/collapse.log", "extra/eval.log",
            "extra/calibration-float32/sweep.log"} <= names
    assert not [n for n in names if "checkpoints" in n or "/samples/0" in n or n.endswith(".npz")]
    scoring = (unpacked / "extra/eval.log").read_text()
    assert "score: 8 finished runs in 2 processes" in scoring and "exit codes [0, 0]" in scoring
    jobs = {}
    for sweep in ("sweep", "collapse"):
        for job in sorted((unpacked / sweep).glob("*_seed_*")):
            summary = json.loads((job / "summary.json").read_text())
            jobs[(summary["name"], summary["seed"])] = job
            assert summary["status"] == "ok" and summary["epochs_done"] == 2
            assert summary["device"] == "cpu" and summary["precision"] == "float32"
            assert (job / "samples/final.png").is_file()
            curve = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()
                     if "fid_lenet" in line]  # every epoch but the last, whose are the summary's
            assert [row["epoch"] for row in curve] == [0] and "kid_lenet" in curve[0]
            [record] = (job / "evals").glob(f"final_{PROBE}_*.json")
            record = json.loads(record.read_text())
            assert record["device"] == "cpu" and record["settings"]["num_samples"] == 33
            assert record["values"]["fid_inception32"] > 0
    assert sorted(jobs) == [*[(name, 0) for name in PRESETS], ("seed_standard", 1)]
    assert "fid_inception32" in (out / "table.md").read_text()
    lines = (out / "study.txt").read_text().splitlines()
    assert lines[-1].startswith("8 runs, 8 with Inception FID; returned: study.tar.gz")

    # the returned record is what gansweep-eval computes here for the same G (the run left on
    # the machine, its checkpoints there), with its own cache: reference computed afresh
    from gansweep.fid.extractors import default_cache_dir
    from gansweep.fid.inception import weights_path

    job = jobs[("seed_standard", 0)]
    there = tree / "outputs/gpu_study/sweep" / job.name
    here = tmp_path / "here" / job.name
    shutil.copytree(there, here, ignore=shutil.ignore_patterns("evals"))
    cache = tmp_path / "cache_here"
    (cache / "weights").mkdir(parents=True)
    (cache / "weights" / "default_1.pt").symlink_to(weights_path(default_cache_dir()))
    scored = subprocess.run(
        [sys.executable, "-m", "gansweep.rescore", str(here), *TINY_INCEPTION, "--which",
         "final", "--data-root", str(tree / ".gpu/mnist"), "--no-table"], cwd=REPO,
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "GANSWEEP_CACHE": str(cache), "TORCH_HOME": str(tmp_path / "torch")})
    assert scored.returncode == 0, scored.stderr[-3000:]
    [mine] = (here / "evals").glob(f"final_{PROBE}_*.json")
    [returned] = (job / "evals").glob(f"final_{PROBE}_*.json")
    assert mine.name == returned.name  # the same settings hash
    mine, returned = json.loads(mine.read_text()), json.loads(returned.read_text())
    assert (mine["epoch"], mine["step"], mine["checkpoint"]) == (
        returned["epoch"], returned["step"], returned["checkpoint"])
    assert mine["values"].keys() == returned["values"].keys()
    for key, value in returned["values"].items():
        assert mine["values"][key] == pytest.approx(value, rel=1e-6), key


@pytest.mark.slow
def test_without_pip_the_wheels_are_unzipped(rehearsal, tmp_path):
    """A Python without pip (nothing but the standard library) still gets the wheels:
    ``env`` extracts them, and the source tree's gansweep.conf through the link."""
    tree, _, _ = rehearsal
    venv.EnvBuilder(with_pip=False, symlinks=True).create(tmp_path / "nopip")
    python = tmp_path / "nopip" / "bin" / "python"
    site = tmp_path / "site"
    try:
        done = subprocess.run([python, "scripts/gpu_study.py", "env", "--site", str(site)],
                              cwd=tree, capture_output=True, text=True, timeout=120,
                              env={"PATH": os.environ["PATH"]})
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
