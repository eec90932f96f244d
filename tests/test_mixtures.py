"""2-D mixture benchmarks: geometry, the mode metrics by hand, and a run per GAN type."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tests.helpers import compose_config
from gansweep.gan.kernels import plummer
from gansweep.data.mixtures import grid, mode_metrics, potential_field, ring
from gansweep.runs.trainer import run


def test_ring8_and_grid25_geometry():
    r = ring()
    assert r.centres.shape == (8, 2) and r.std == 0.02
    assert torch.allclose(r.centres.norm(dim=1), torch.full((8,), 2.0))
    g = grid()
    assert g.centres.shape == (25, 2) and g.std == 0.05
    assert sorted(set(g.centres[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    x, modes = g.sample(20000, torch.Generator().manual_seed(0))
    offsets = x - g.centres[modes]
    assert offsets.std().item() == pytest.approx(0.05, rel=0.05)


def test_mode_metrics_by_hand():
    mixture = ring()
    perfect = mixture.centres.repeat_interleave(30, dim=0)
    m = mode_metrics(perfect, mixture, min_per_mode=20)
    assert (m["modes_covered"], m["modes_total"], m["high_quality"]) == (8, 8, 1.0)
    assert m["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)
    collapsed = mixture.centres[:1].repeat(100, 1) + 0.01
    m = mode_metrics(collapsed, mixture)
    assert m["modes_covered"] == 1 and m["kl_to_uniform"] == pytest.approx(math.log(8))
    # 3 std is the quality threshold: 0.059 counts, 0.061 does not
    pts = torch.tensor([[2.059, 0.0], [2.061, 0.0]])
    assert mode_metrics(pts, mixture, min_per_mode=1)["high_quality"] == 0.5
    # a mode with fewer than min_per_mode good points is not covered
    few = torch.cat([perfect[:240], mixture.centres[7:8].repeat(5, 1)])
    assert mode_metrics(few, mixture, min_per_mode=20)["modes_covered"] == 8
    assert mode_metrics(perfect[:210], mixture, min_per_mode=20)["modes_covered"] == 7


def test_potential_field_formula():
    real, fake = torch.randn(5, 2), torch.randn(4, 2)
    query = torch.tensor([[0.3, -0.2]])
    expected = (plummer(((query - fake) ** 2).sum(1), 0.5, 4).mean()
                - plummer(((query - real) ** 2).sum(1), 0.5, 4).mean())
    assert potential_field(query, real, fake, 0.5, 4).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["mixture_standard", "mixture_coulomb"])
def test_small_end_to_end_mixture_run(preset, tmp_path):
    cfg = compose_config([f"+experiment={preset}", "trainer.epochs=1",
                          "trainer.max_batches_per_epoch=30", "trainer.sample_every=15",
                          "dataset.size=16384", "dataset.num_samples=500", "trainer.progress=off"])
    summary = run(cfg, tmp_path)
    assert summary["status"] == "ok" and summary["batches_done"] == 30
    for key in ("modes_covered", "high_quality", "kl_to_uniform"):
        assert key in summary
    assert 0 <= summary["modes_covered"] <= 8 and 0 <= summary["high_quality"] <= 1
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["modes_total"] == 8 and saved["mixture_samples"] == 500
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names == ["0000_0000.png", "0000_0015.png", "final.png"]


def test_mixture_presets_compose_for_both_datasets():
    for preset in ("mixture_standard", "mixture_coulomb", "mixture_eps_dim_sweep"):
        cfg = compose_config([f"+experiment={preset}", "dataset=grid25"])
        assert cfg.model.name == "mlp" and cfg.dataset.modes == 25
        assert cfg.name.endswith("grid25")
