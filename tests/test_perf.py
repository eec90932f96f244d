"""What the speed levers must not change (docs/performance.md).

No timing assertions (``gansweep-bench`` measures): the optimised Inception gives the plain
network's float32 features to rounding; ``trainer.precision=bf16`` autocasts only the forward
passes (float32 master weights, float32 losses, the Coulomb potential from float32 fakes in
float64); the Keras peer's potential is the one gansweep trains with; ``--peer keras`` says
how to install TensorFlow when it is missing.
"""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
import torch

from gansweep.gan import step
from gansweep.bench import cli as bench_cli, measure
from gansweep.fid import inception
from gansweep.device import full_precision, train_autocast
from gansweep.gan.kernels import plummer_potential
from gansweep.gan.models import KerasBatchNorm
from gansweep.bench import keras_peer
from gansweep.runs.trainer import Run

from tests.helpers import compose_config


# ----------------------------------------------------------------------------- Inception
@pytest.fixture(scope="module")
def random_inception():
    """The FID Inception with random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    model = inception.FIDInceptionV3().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.rand(2, 3, 139, 139, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return model, x  # 139x139: the smallest input the network takes, cheap on a CPU


def test_optimized_inception_equals_plain_float32(random_inception):
    model, x = random_inception
    fast = copy.deepcopy(model).optimize_()
    with torch.inference_mode():
        truth = copy.deepcopy(model).double()(x.double())
        plain = model(x).double()
        got = fast(x)
    assert got.dtype == torch.float32 and got.shape == (2, 2048)
    scale = truth.abs().max()
    plain_err = ((plain - truth).abs().max() / scale).item()
    fast_err = ((got.double() - truth).abs().max() / scale).item()
    assert fast_err < 1e-5 and fast_err < 10 * max(plain_err, 1e-7), (fast_err, plain_err)
    # the state_dict stays pytorch-fid's (folded tensors are non-persistent buffers)
    assert fast.state_dict().keys() == model.state_dict().keys()


def test_inception_bf16_option_and_bad_precision(random_inception):
    model, x = random_inception
    bf16 = copy.deepcopy(model).optimize_("bf16")
    with torch.inference_mode():
        got, ref = bf16(x), model(x)
    assert got.dtype == torch.float32  # features are float32 arrays either way
    rel = ((got - ref).abs().max() / ref.abs().max()).item()
    assert 0 < rel < 0.1  # bfloat16: close, but not float32
    with pytest.raises(ValueError, match="choose fp32 or bf16"):
        copy.deepcopy(model).optimize_("fp16")


# ----------------------------------------------------------------------------- bf16 training
def test_train_autocast_contexts():
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with train_autocast(torch.device("cpu"), "fp32"):
        assert layer(x).dtype == torch.float32
    with train_autocast(torch.device("cpu"), "bf16"):
        y = layer(x)
    assert y.dtype == torch.bfloat16 and full_precision(y).dtype == torch.float32
    assert full_precision(x.double()).dtype == torch.float64  # never a downcast
    with pytest.raises(ValueError, match="trainer.precision='fp16': choose one of fp32, bf16"):
        train_autocast(torch.device("cpu"), "fp16")


def test_keras_batchnorm_takes_statistics_in_float32():
    torch.manual_seed(0)
    x = torch.randn(32, 6) * 3 + 1
    a, b = KerasBatchNorm(6, zero_debias=True), KerasBatchNorm(6, zero_debias=True)
    out_bf16 = a(x.bfloat16())
    out_f32 = b(x.bfloat16().float())  # the same bfloat16 values, handed over as float32
    assert out_bf16.dtype == torch.float32
    torch.testing.assert_close(out_bf16, out_f32, rtol=0, atol=0)
    torch.testing.assert_close(a.moving_variance, b.moving_variance, rtol=0, atol=0)


def test_bf16_is_part_of_the_fingerprint_and_fp32_hashes_are_unchanged():
    from gansweep.identity import fingerprint, identity_hash

    fp32, bf16 = compose_config([]), compose_config(["trainer.precision=bf16"])
    assert "trainer.precision" not in fingerprint(fp32)  # float32 runs keep their hashes
    assert fingerprint(bf16)["trainer.precision"] == "bf16"
    assert identity_hash(fp32) != identity_hash(bf16)  # no shared job dir or resume


def test_precision_key_is_checked():
    from hydra.errors import ConfigCompositionException

    assert str(compose_config([]).trainer.precision) == "fp32"  # the default stays float32
    with pytest.raises(ConfigCompositionException) as refused:
        compose_config(["trainer.precision=bf17"])
    # the override is named, and the schema's error below it lists the choices
    assert "trainer.precision=bf17" in str(refused.value)
    assert "fp32, bf16" in str(refused.value.__cause__)


@pytest.mark.slow
@pytest.mark.parametrize("gan_type", ["coulomb", "standard"])
def test_bf16_steps_keep_float32_weights_and_float64_potential(tiny_overrides, tmp_path,
                                                                gan_type):
    cfg = compose_config([*tiny_overrides, f"gan_type={gan_type}", "trainer.precision=bf16",
                          "trainer.device=cpu", "trainer.batch_size=16"])
    run = Run(cfg, tmp_path / "bf16")
    real = run.data[:16]
    fakes = step.predict_fakes(run.state.parts, run.state.noise())
    assert fakes.dtype == torch.float32  # what the potential and the pictures see
    if gan_type == "coulomb":  # the targets: float64 arithmetic on float32 points, as in fp32
        targets = run.objective.d_targets(real, fakes, 0)
        expected = plummer_potential(real.double(), fakes.double(), cfg.kernel.eps, 3)
        torch.testing.assert_close(targets.squeeze(1).double(), expected, rtol=1e-5, atol=1e-6)
    before = {k: v.clone() for k, v in run.g.state_dict().items()}
    d_loss, g_loss = step.d_step(run.state.parts, real, fakes, 0), step.g_step(run.state.parts, run.state.noise())
    assert d_loss.dtype == g_loss.dtype == torch.float32
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    for net, opt in ((run.g, run.state.opt_g), (run.d, run.state.opt_d)):
        for p in net.parameters():  # float32 master weights and Adam state
            assert p.dtype == torch.float32 and opt.state[p]["m"].dtype == torch.float32
    changed = [k for k, v in run.g.state_dict().items() if not torch.equal(v, before[k])]
    assert "fc2.weight" in changed  # G trained through the bfloat16 forward


# ----------------------------------------------------------------------------- Keras peer
def test_peer_potential_is_gansweeps():
    g = np.random.default_rng(0)
    real = g.uniform(-1, 1, (12, 28, 28, 1)).astype(np.float32)
    fake = g.uniform(-1, 1, (9, 28, 28, 1)).astype(np.float32)
    for ignore_self in (True, False):
        got = keras_peer.plummer_potential(real, fake, 0.5, 3, ignore_self)
        expected = plummer_potential(torch.from_numpy(real).double(),
                                     torch.from_numpy(fake).double(), 0.5, 3, ignore_self)
        assert got.shape == (21, 1) and got.dtype == np.float32
        np.testing.assert_allclose(got[:, 0], expected.numpy(), rtol=1e-5, atol=1e-6)


def test_gemm_peaks_are_in_the_steps_arithmetic(monkeypatch):
    monkeypatch.setattr(measure, "tensorflow_importable", lambda: False)
    cpu = torch.device("cpu")
    assert set(measure.gemm_peaks(cpu, 64)) == {"torch"}
    peaks = measure.gemm_peaks(cpu, 64, "bf16")
    assert set(peaks) == {"torch bf16"} and peaks["torch bf16"] > 0


@pytest.mark.slow
def test_a_bf16_step_is_measured_against_the_bf16_peak(mnist_root, tmp_path, capsys):
    """A bf16 step's "% of peak" is against the bfloat16 GEMM of the same process (not the
    float32 one, which would read over 100%), and the printed table says so."""
    out = tmp_path / "bench.json"
    bench_cli.main(["--impls", "fast", "--gan-types", "standard", "--steps", "1", "--warmup",
                    "0", "--batch-size", "16", "--limit", "64", "--data-root", str(mnist_root),
                    "--device", "cpu", "--no-rss", "--no-fid", "--no-metrics",
                    "--peak-size", "128", "--json", str(out), "-o", "trainer.precision=bf16"])
    report = json.loads(out.read_text())
    assert report["precision"] == "bf16" and set(report["matmul_peaks_gflops"]) == {"torch bf16"}
    row = report["results"]["standard/fast"]
    assert row["fraction_of_peak"] == pytest.approx(row["gflops"] / report["matmul_peak_gflops"])
    printed = capsys.readouterr().out
    assert f"bfloat16 matmul peak (best GEMM in this process, the steps' arithmetic): " \
           f"{report['matmul_peak_gflops']:.1f} GFLOP/s" in printed
    assert f"{100 * row['fraction_of_peak']:.0f}%" in printed


def test_bench_peer_without_tensorflow_names_the_fix(monkeypatch, capsys):
    monkeypatch.setattr(measure, "tensorflow_importable", lambda: False)
    with pytest.raises(SystemExit):
        bench_cli.main(["--peer", "keras", "--no-rss"])
    assert "pip install 'gansweep[keras-peer]'" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_with_keras_peer(mnist_root, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    out = tmp_path / "bench.json"
    bench_cli.main(["--peer", "keras", "--impls", "fast", "--gan-types", "standard", "coulomb",
                "--steps", "2", "--warmup", "1", "--batch-size", "16", "--limit", "64",
                "--data-root", str(mnist_root), "--device", "cpu", "--no-rss", "--no-fid",
                "--no-metrics", "--peak-size", "128", "--json", str(out)])
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"standard/fast", "coulomb/fast", "standard/keras",
                                      "coulomb/keras"}
    assert set(report["matmul_peaks_gflops"]) == {"torch", "tensorflow"}
    assert report["matmul_peak_gflops"] == max(report["matmul_peaks_gflops"].values())
    for gan in ("standard", "coulomb"):
        ours, peer = report["results"][f"{gan}/fast"], report["results"][f"{gan}/keras"]
        assert peer["median_s"] > 0 and len(peer["times_s"]) == 2
        assert ours["speedup_vs_peer"] == pytest.approx(peer["median_s"] / ours["median_s"])
    printed = capsys.readouterr().out
    assert re.search(r"\| standard +\| keras \(Keras 3\.", printed) and "x the keras step's speed" in printed
