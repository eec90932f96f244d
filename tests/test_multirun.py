"""`gansweep-train -m` over two seed presets on a 512-image slice writes every artifact."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import sweep as run_sweep


@pytest.mark.slow
def test_tiny_multirun_of_two_presets_writes_every_artifact(mnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_sweep(mnist_root, sweep, "+experiment=seed_standard,seed_coulomb_1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    # <num>_<name>_<8 hex digits of the job's config hash>
    assert [p.name[:-9] for p in jobs] == ["0_seed_standard", "1_seed_coulomb_1"]
    assert all(re.fullmatch(r"_[0-9a-f]{8}", p.name[-9:]) for p in jobs)
    for job in jobs:
        summary = json.loads((job / "summary.json").read_text())
        assert summary["status"] == "ok" and summary["batches_done"] == 2
        assert (job / "checkpoints/last.pt").stat().st_size > 1_000_000
        assert (job / "samples/0000_0000.png").exists() and (job / "samples/final.png").exists()
        rows = (job / "metrics.jsonl").read_text().splitlines()
        assert len(rows) == 2
        assert (job / ".hydra/overrides.yaml").exists()
    assert not (tmp_path / "outputs").exists()  # nothing written outside the sweep dir
