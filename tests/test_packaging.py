"""gansweep as a user installs it: a wheel built from this tree, installed (not editable) into
a clean virtual environment, runs its commands from another folder. The packages and config
groups in the wheel are found by setup.py, never listed: each folder must ship."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import CHEAP_FID, REPO


def _folders_with(root: Path, suffix: str) -> set[str]:
    return {str(p.parent.relative_to(root)) for p in root.rglob(f"*{suffix}")
            if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv holding only the wheel; its dependencies are this environment's (a .pth line
    names our site-packages, whose own .pth files, such as an editable gansweep's, are not
    read from there)."""
    tmp = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(tmp / "dist"), str(REPO)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp / "dist").glob("gansweep-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    ours = site.getsitepackages()[0]
    theirs = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    Path(theirs, "gansweep_test_deps.pth").write_text(ours + "\n")
    done = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv


@pytest.mark.slow
def test_the_wheel_ships_every_package_and_config_group(installed):
    wheel = next(installed.parent.glob("dist/gansweep-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {str(Path(n).parent) for n in names}
    code = {f"gansweep/{d}" if d != "." else "gansweep"
            for d in _folders_with(REPO / "gansweep", ".py")}
    conf = {f"gansweep/conf/{d}" if d != "." else "gansweep/conf"
            for d in _folders_with(REPO / "conf", ".yaml")}
    assert code <= shipped and conf <= shipped, sorted((code | conf) - shipped)
    assert "gansweep/fid/assets/lenet_mnist.pt" in names
    assert "gansweep/report/assets/report.html.j2" in names


@pytest.mark.slow
def test_the_installed_commands_run_from_another_folder(installed, mnist_root, tmp_path):
    bin_dir = installed / "bin"
    env = {**os.environ, "PYTHONPATH": ""}

    def run(*cmd, timeout=300):
        done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=timeout)
        assert done.returncode == 0, (cmd, done.stdout[-2000:], done.stderr[-3000:])
        return done.stdout

    where = run(bin_dir / "python", "-c", "import gansweep, gansweep.bench.keras_peer; "
                                          "print(gansweep.__file__)")
    assert where.strip().startswith(str(installed))  # the installed copy, not this tree
    assert "seed_coulomb_1" in run(bin_dir / "gansweep-train", "--help")
    assert "--peer" in run(bin_dir / "gansweep-bench", "--help")
    run(bin_dir / "gansweep-train", "+experiment=seed_standard", "trainer=smoke",
        f"dataset.root={mnist_root}", "dataset.limit=512", "trainer.batch_size=32",
        "trainer.progress=off", *CHEAP_FID, f"hydra.run.dir={tmp_path / 'run'}")
    assert (tmp_path / "run" / "summary.json").exists()
    assert (tmp_path / "run" / "samples" / "final.png").exists()
