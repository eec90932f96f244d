"""What only a GPU can prove: these run where CUDA is available and are skipped elsewhere
(marker ``gpu``; ``scripts/gpu_check.sh`` runs them with the rest of the GPU checks)."""

from __future__ import annotations

import json

import pytest
import torch

from gansweep.gan import step
from gansweep.gan.models import FastDiscriminator, FastGenerator
from gansweep.runs.signals import Interrupted
from gansweep.gan.step import train_step
from gansweep.runs.trainer import Run
from tests.helpers import compose_config

pytestmark = pytest.mark.gpu

COULOMB = ["+experiment=seed_coulomb_1", "fid=none"]


def _on_cuda(overrides):
    return compose_config([*overrides, "trainer.device=cuda"])


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_a_cuda_step_never_synchronises(tiny_overrides, tmp_path, impl):
    """torch's sync debug mode raises on any device->host synchronisation in the step, for
    either implementation of G and D. The potential is the matrix-product one in both cases
    (``kernel.impl`` would follow ``model.impl``): the reference potential's boolean-mask
    indexing synchronises by design (``gansweep.gan.kernels.plummer_potential``)."""
    r = Run(_on_cuda([*tiny_overrides, *COULOMB, f"model.impl={impl}", "kernel.impl=fast"]),
            tmp_path)
    assert isinstance(r.g, FastGenerator) == (impl == "fast")
    assert isinstance(r.d, FastDiscriminator) == (impl == "fast")
    assert r.objective.kernel.impl == "fast"
    real = r.data[:32]
    train_step(r.state.parts, real, r.state.noise, 0)  # warm-up: lazy initialisation may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(2):
            train_step(r.state.parts, real, r.state.noise, 1)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_cuda_interrupt_and_resume_equals_an_uninterrupted_run(tiny_overrides, tmp_path,
                                                               monkeypatch):
    """The checkpoint (RNG states included) round-trips through CPU and back on CUDA."""
    overrides = [*tiny_overrides, *COULOMB, "trainer.epochs=2", "trainer.max_batches_per_epoch=4",
                 "trainer.deterministic=true"]
    straight = Run(_on_cuda(overrides), tmp_path / "straight")
    straight.train()

    broken = Run(_on_cuda(overrides), tmp_path / "resumed")
    real_g_step = step.g_step

    def g_step(parts, z):
        if broken.counters.step == 5:
            broken.stop_signal = 15
        return real_g_step(parts, z)

    monkeypatch.setattr(step, "g_step", g_step)
    with pytest.raises(Interrupted):
        broken.train()
    resumed = Run(_on_cuda(overrides), tmp_path / "resumed")
    summary = resumed.train()
    assert summary["status"] == "ok" and summary["device"].startswith("cuda")

    def rows(path):
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (path / "metrics.jsonl").read_text().splitlines()]

    assert rows(tmp_path / "resumed") == rows(tmp_path / "straight")
    for a, b in ((straight.g, resumed.g), (straight.d, resumed.d)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name


def test_cuda_matches_cpu_in_float32(tiny_overrides, tmp_path):
    """TF32 off (the default): G and D on CUDA agree with CPU to float32 rounding."""
    cpu = Run(compose_config([*tiny_overrides, *COULOMB, "model.impl=fast"]), tmp_path / "c")
    gpu = Run(_on_cuda([*tiny_overrides, *COULOMB, "model.impl=fast"]), tmp_path / "g")
    gpu.g.load_state_dict(cpu.g.state_dict())
    gpu.d.load_state_dict(cpu.d.state_dict())
    z = torch.rand(64, 100) * 2 - 1
    cpu.g.eval(), gpu.g.eval(), cpu.d.eval(), gpu.d.eval()
    with torch.no_grad():
        x_cpu, x_gpu = cpu.g(z), gpu.g(z.cuda())
        torch.testing.assert_close(x_gpu.cpu(), x_cpu, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(gpu.d(x_gpu).cpu(), cpu.d(x_cpu), rtol=1e-4, atol=1e-5)
    assert gpu.precision == "float32" and not torch.backends.cudnn.allow_tf32


def test_cuda_index_and_fid_on_the_same_gpu(tiny_overrides, tmp_path):
    index = torch.cuda.device_count() - 1
    summary = Run(compose_config([*tiny_overrides, f"trainer.device=cuda:{index}"]),
                  tmp_path).train()
    assert summary["status"] == "ok" and summary["device"] == f"cuda:{index}"
    assert summary["fid"]["arithmetic"] == "cuda-float32"
    assert summary["max_memory_allocated_mb"] > 0
