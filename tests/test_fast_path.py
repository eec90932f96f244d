"""model.impl=fast is the same computation as model.impl=reference (docs/performance.md).

Float64 comparisons check the algebra tightly (differences ~1e-12); float32 comparisons
check agreement to float32 rounding. No timing assertions here: `gansweep-bench` measures.
"""

from __future__ import annotations

import json
import platform
import re

import pytest
import torch
import torch.nn.functional as F

from gansweep.gan import onednn
from gansweep.bench import cli as bench_cli
from gansweep.data import load_mnist
from gansweep.gan.kernels import (PlummerKernel, plummer_potential, plummer_potential_mm,
                              squared_distances, squared_distances_mm)
from gansweep.gan.models import (_FOLD, Discriminator, FastDiscriminator, FastGenerator, Generator,
                             SameConv2d, build_models, fold_upsample_conv_weight, keras_init_,
                             upsample_conv)
from gansweep.gan.step import train_step
from gansweep.runs.trainer import Run

from tests.helpers import compose_config


def pair(bn_axis: str, dtype=torch.float32, seed: int = 0):
    torch.manual_seed(seed)
    ref = Generator(bn_axis=bn_axis)
    keras_init_(ref)
    # Non-trivial BN parameters and moving statistics, so every term is exercised.
    with torch.no_grad():
        for bn in (ref.bn1, ref.bn2, ref.bn3):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
            bn.moving_mean.uniform_(-0.1, 0.1)
            bn.moving_variance.uniform_(0.5, 2.0)
        for conv in (ref.conv1, ref.conv2):
            conv.bias.uniform_(-0.1, 0.1)
    fast = FastGenerator(bn_axis=bn_axis)
    fast.load_state_dict(ref.state_dict())
    return ref.to(dtype), fast.to(dtype)


def noise(n: int = 16, dtype=torch.float32, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 100, generator=g) * 2 - 1).to(dtype)


# ----------------------------------------------------------------------------- the fold
@pytest.mark.parametrize("in_ch,out_ch,size", [(8, 5, 7), (3, 1, 14), (2, 3, 1), (4, 2, 2)])
def test_upsample_conv_equals_nearest_upsample_then_same_conv(in_ch, out_ch, size):
    torch.manual_seed(0)
    conv = SameConv2d(in_ch, out_ch, 5, stride=1, in_size=2 * size).double()
    x = torch.randn(3, in_ch, size, size, dtype=torch.float64)
    expected = conv(F.interpolate(x, scale_factor=2, mode="nearest"))
    fold = torch.tensor(_FOLD, dtype=torch.float64)
    got = upsample_conv(x, conv, fold)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_folded_kernel_taps_sum_to_the_5x5_kernel():
    w = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    folded = fold_upsample_conv_weight(w).view(4, 2, 2, 3, 3, 3)
    for a in range(2):
        for b in range(2):  # each parity sub-kernel uses every 5x5 tap exactly once
            torch.testing.assert_close(folded[:, a, b].sum((-2, -1)), w.sum((-2, -1)))


# ----------------------------------------------------------------------------- generator
def test_same_parameters_and_state_dict():
    ref, fast = pair("keras")
    assert [(k, v.shape) for k, v in ref.state_dict().items()] == \
           [(k, v.shape) for k, v in fast.state_dict().items()]
    Generator(bn_axis="keras").load_state_dict(fast.state_dict())  # interchangeable checkpoints


@pytest.mark.slow
@pytest.mark.parametrize("bn_axis", ["keras", "channel"])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_forward_and_moving_statistics_equal(bn_axis, train, dtype, atol):
    ref, fast = pair(bn_axis, dtype)
    ref.train(train)
    fast.train(train)
    z = noise(16, dtype)
    torch.testing.assert_close(fast(z), ref(z), rtol=0, atol=atol)
    fast_state = fast.state_dict()
    for name, value in ref.state_dict().items():  # parameters and moving statistics
        torch.testing.assert_close(fast_state[name], value, rtol=0, atol=atol, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("bn_axis", ["keras", "channel"])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradients_equal(bn_axis, train, dtype):
    ref, fast = pair(bn_axis, dtype)
    ref.train(train)
    fast.train(train)
    z = noise(16, dtype)
    target = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(2), dtype=dtype)
    grads = []
    for g in (ref, fast):
        loss = (g(z) - target).square().mean()
        grads.append(dict(zip([n for n, _ in g.named_parameters()],
                              torch.autograd.grad(loss, list(g.parameters())))))
    # Biases right before a training-mode BatchNorm have a true gradient of (nearly) zero;
    # compare against the largest gradient of the whole network, plus a relative term.
    scale = max(g.abs().max().item() for g in grads[0].values())
    rel = 1e-10 if dtype == torch.float64 else 1e-5
    for name, a in grads[0].items():
        torch.testing.assert_close(grads[1][name], a, rtol=100 * rel, atol=rel * scale, msg=name)


def test_build_models_switch_and_same_discriminator_values():
    outputs = {}
    for impl in ("reference", "fast"):
        cfg = compose_config([f"model.impl={impl}"]).model
        torch.manual_seed(0)
        g, d = build_models(cfg)
        assert type(g) is (FastGenerator if impl == "fast" else Generator)
        assert type(d) is (FastDiscriminator if impl == "fast" else Discriminator)
        d.eval()
        x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
        outputs[impl] = (d(x), g.state_dict())
    # Same values and parameters; the fast D stores its conv weights channels_last and runs
    # its dense layers on oneDNN.
    torch.testing.assert_close(outputs["fast"][0], outputs["reference"][0], rtol=1e-5, atol=1e-6)
    for key, value in outputs["reference"][1].items():
        torch.testing.assert_close(outputs["fast"][1][key], value, rtol=0, atol=0)


def test_default_is_fast_and_kernel_follows_model_impl():
    cfg = compose_config(["gan_type=coulomb"])
    assert str(cfg.model.impl) == "fast" and str(cfg.kernel.impl) == "fast"
    cfg = compose_config(["gan_type=coulomb", "model.impl=reference"])
    assert str(cfg.kernel.impl) == "reference"


# ----------------------------------------------------------------------------- potential
@pytest.fixture(scope="module")
def points(mnist_root):
    x = load_mnist(mnist_root, "train", 1024, fetch_missing=False).x
    g = torch.Generator().manual_seed(0)
    spread = torch.tanh(torch.randn(96, 1, 28, 28, generator=g))
    # Fakes collapsed near one digit: the worst case for |a|^2 + |b|^2 - 2ab cancellation.
    collapsed = (x[500:501] + 0.01 * torch.randn(96, 1, 28, 28, generator=g)).clamp(-1, 1)
    return x[:128], {"spread": spread, "collapsed": collapsed}


@pytest.mark.parametrize("ignore_self", [True, False])
@pytest.mark.parametrize("eps", [0.01, 0.1, 1.0, 10.0])
@pytest.mark.parametrize("fakes", ["spread", "collapsed"])
def test_fast_potential_equals_reference(points, ignore_self, eps, fakes):
    real, fake = points[0], points[1][fakes]
    ref = plummer_potential(real, fake, eps, 3, ignore_self)
    got = plummer_potential_mm(real, fake, eps, 3, ignore_self)
    assert got.dtype == real.dtype and got.shape == ref.shape == (224,)
    torch.testing.assert_close(got, ref, rtol=2e-6, atol=2e-6 * ref.abs().max().item())
    truth = plummer_potential(real.double(), fake.double(), eps, 3, ignore_self)  # exact
    fast64 = plummer_potential_mm(real.double(), fake.double(), eps, 3, ignore_self)
    torch.testing.assert_close(fast64, truth, rtol=1e-9, atol=1e-9 * truth.abs().max().item())


def test_fast_squared_distances(points):
    p = torch.cat([points[0], points[1]["collapsed"]]).flatten(1).double()
    exact = squared_distances(p, p)
    got = squared_distances_mm(p)
    assert (got.diagonal() == 0).all() and (got >= 0).all()
    torch.testing.assert_close(got, exact, rtol=1e-9, atol=1e-9)


def test_kernel_impl_switch(points):
    real, fake = points[0], points[1]["spread"]
    a = PlummerKernel(eps=1.0, impl="reference").potential(real, fake, 100)
    b = PlummerKernel(eps=1.0, impl="fast").potential(real, fake, 100)
    torch.testing.assert_close(b, a, rtol=2e-6, atol=1e-6)


# ----------------------------------------------------------------------------- training
STEPS = 3


def trajectory(overrides: list[str], tmp_path, impl: str, dtype: torch.dtype):
    """A few trainer steps (the loop body of ``Run.train``) with models and data in dtype."""
    cfg = compose_config([*overrides, f"model.impl={impl}"])
    run = Run(cfg, tmp_path / f"{impl}_{dtype}")
    run.g.to(dtype)  # in place: the optimisers keep the same Parameter objects
    run.d.to(dtype)
    run.state.data = run.data.to(dtype)
    batch = cfg.trainer.batch_size
    losses = []
    for step in range(STEPS):
        real = run.data[step * batch:(step + 1) * batch]
        d_loss, g_loss, _ = train_step(run.state.parts, real, lambda: run.state.noise().to(dtype),
                                       run.counters.step)
        run.counters.step += 1
        losses.append((d_loss.item(), g_loss.item()))
    return run, torch.tensor(losses, dtype=torch.float64)


def assert_same_trajectory(overrides, tmp_path, dtype, rtol, atol):
    ref, ref_losses = trajectory(overrides, tmp_path, "reference", dtype)
    fast, fast_losses = trajectory(overrides, tmp_path, "fast", dtype)
    assert str(fast.cfg.kernel.impl) == "fast" and str(ref.cfg.kernel.impl) == "reference"
    assert type(fast.g) is FastGenerator and type(ref.g) is Generator
    torch.testing.assert_close(fast_losses, ref_losses, rtol=rtol, atol=atol)
    for net in ("g", "d"):
        ref_state, fast_state = getattr(ref, net).state_dict(), getattr(fast, net).state_dict()
        assert list(ref_state) == list(fast_state)
        for key, value in ref_state.items():
            torch.testing.assert_close(fast_state[key], value, rtol=rtol, atol=atol,
                                       msg=f"{net}.{key}")


GAN_OVERRIDES = {"coulomb": ["gan_type=coulomb", "kernel.eps=0.1"],
                 "standard": ["gan_type=standard"]}


@pytest.mark.slow
@pytest.mark.parametrize("gan_type", ["coulomb", "standard"])
def test_training_trajectory_equal_float64(tiny_overrides, tmp_path, gan_type):
    """In float64 rounding is ~1e-16, so any difference in the algebra would show."""
    overrides = [*tiny_overrides, *GAN_OVERRIDES[gan_type], "trainer.device=cpu",
                 "trainer.batch_size=16"]  # float64 convolutions are slow on CPU
    assert_same_trajectory(overrides, tmp_path, torch.float64, rtol=1e-9, atol=1e-10)


@pytest.mark.slow
def test_training_trajectory_close_float32(tiny_overrides, tmp_path):
    """In float32 the impls differ by rounding; Adam turns the rounding noise of gradients
    that are exactly zero in exact arithmetic (the biases right before a training-mode
    BatchNorm) into updates of up to about lr per step, so weights agree to ~lr * steps."""
    overrides = [*tiny_overrides, *GAN_OVERRIDES["coulomb"], "trainer.device=cpu"]
    assert_same_trajectory(overrides, tmp_path, torch.float32, rtol=1e-4,
                           atol=2 * STEPS * 1e-3)


# ----------------------------------------------------------------------------- bench
@pytest.mark.slow
def test_bench_end_to_end(mnist_root, tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench_cli.main(["--steps", "2", "--warmup", "1", "--batch-size", "16", "--limit", "64",
                "--gan-types", "coulomb",
                "--data-root", str(mnist_root), "--device", "cpu", "--no-rss", "--peak-size", "256",
                "--metric-samples", "200", "--profile", "1", "--profile-top", "5",
                "--json", str(out)])
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"coulomb/reference", "coulomb/fast"}
    for row in report["results"].values():
        assert row["median_s"] > 0 and row["gflop_per_step"] > 0 and len(row["times_s"]) == 2
        costs = row["loop_costs"]  # the loop's logging and checkpoint costs, timed apart
        assert costs["log_s"] > 0 and costs["checkpoint_s"] > 0 and costs["checkpoint_mb"] > 50
        assert row["loop_s_per_step"] > row["median_s"]
    assert report["matmul_peak_gflops"] > 0 and report["bench_process_peak_rss_mb"] > 0
    assert "fid_features" in report
    fast, ref = report["results"]["coulomb/fast"], report["results"]["coulomb/reference"]
    assert fast["gflop_per_step"] < ref["gflop_per_step"]  # the fold does fewer flops
    cost = report["metric_cost"]  # evaluation cost per metric
    assert set(cost["per_metric"]) == {"fid", "kid", "precision", "recall", "density",
                                       "coverage", "all"}
    assert cost["samples"] == 200 and all(r["cpu_s"] > 0 for r in cost["per_metric"].values())
    printed = capsys.readouterr().out
    assert re.search(r"\| coulomb +\| fast +\|", printed) and "loop s/step = median + logging" in printed
    assert re.search(r"\| kid +\|", printed)
    assert "max_memory_allocated_mb" not in report  # CUDA only
    profile = fast["profile"]  # --profile: where the step's time goes, op by op
    assert profile["steps"] == 1 and len(profile["ops"]) == 5 and profile["ms_per_step"] > 0
    shares = [op["share"] for op in profile["ops"]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1
    assert any("convolution" in op["op"] for op in profile["ops"])
    assert "Per-op profile, coulomb/fast" in printed and re.search(r"\| op +\| input shapes +\|", printed)


def test_the_fold_does_not_depend_on_opt_einsum_being_installed():
    """torch.einsum picks another contraction order when opt_einsum is importable (TensorFlow
    installs it), which changed a seeded run's second G loss by 1e-7: the fold pins the order."""
    pytest.importorskip("opt_einsum")
    weight = torch.randn(64, 128, 5, 5, generator=torch.Generator().manual_seed(0))
    with torch.backends.opt_einsum.flags(enabled=False):  # torch's own left-to-right order
        plain = fold_upsample_conv_weight(weight)
    with torch.backends.opt_einsum.flags(enabled=True):  # as with opt_einsum installed
        assert torch.equal(fold_upsample_conv_weight(weight), plain)
        assert torch.backends.opt_einsum.enabled  # the user's setting is left as it was


# ----------------------------------------------------------------------------- oneDNN linear
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 CPU builds")
def test_onednn_linear_is_in_this_torch_build():
    # the fast path's speed on a CPU relies on it; a torch without it falls back to F.linear
    assert onednn.AVAILABLE


@pytest.mark.skipif(not onednn.AVAILABLE, reason="torch build without oneDNN's fused linear")
@pytest.mark.parametrize("bias", [True, False])
def test_onednn_linear_values_and_gradients_are_float32_exact(bias):
    # Same maths as F.linear in another summation order: against float64 truth its error is
    # of the size of MKL's (a few float32 ulps of the largest value), never more.
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 384, bias=bias)
    truth = torch.nn.Linear(256, 384, bias=bias).double()
    truth.load_state_dict({k: v.double() for k, v in layer.state_dict().items()})
    x = torch.randn(96, 256, requires_grad=True)
    x64 = x.detach().double().requires_grad_()
    assert onednn.usable(x, layer.weight)
    y = onednn.linear(x, layer)
    y64 = truth(x64)
    grad = torch.randn_like(y)
    y.backward(grad)
    y64.backward(grad.double())
    pairs = [(y, y64), (x.grad, x64.grad), (layer.weight.grad, truth.weight.grad)]
    if bias:
        pairs.append((layer.bias.grad, truth.bias.grad))
    for ours, exact in pairs:
        assert ours.dtype == torch.float32
        ulp = torch.finfo(torch.float32).eps * exact.abs().max().item()
        assert (ours.double() - exact).abs().max().item() < 16 * ulp
    again = onednn.linear(x.detach(), layer)
    assert torch.equal(again, y.detach())  # deterministic


@pytest.mark.skipif(not onednn.AVAILABLE, reason="torch build without oneDNN's fused linear")
def test_onednn_linear_flops_are_counted_and_a_double_backward_raises():
    from torch.utils.flop_counter import FlopCounterMode

    layer, x = torch.nn.Linear(64, 32), torch.randn(8, 64, requires_grad=True)
    counts = []
    for forward in (lambda: onednn.linear(x, layer), lambda: F.linear(x, layer.weight, layer.bias)):
        counter = FlopCounterMode(display=False)
        with counter:
            forward().sum().backward()
        counts.append(counter.get_total_flops())
    assert counts[0] == counts[1] == 3 * 2 * 8 * 64 * 32  # gansweep-bench's GFLOP/step
    (grad,) = torch.autograd.grad(onednn.linear(x, layer).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):  # no second-order formula: refuse, never a wrong number
        grad.sum().backward()


def test_onednn_linear_falls_back_where_it_does_not_apply():
    layer = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)
    assert not onednn.usable(x.double(), layer.weight.double())  # float64: F.linear
    assert not onednn.usable(x.view(1, 3, 8), layer.weight)  # not 2-D
    assert not onednn.usable(x[:0], layer.weight)  # an empty batch: oneDNN has no primitive
    assert onednn.linear(x[:0], layer).shape == (0, 4)
    with torch.backends.mkldnn.flags(enabled=False):  # the user switched oneDNN off
        assert not onednn.usable(x, layer.weight)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not onednn.usable(x, layer.weight)  # bf16 autocast: torch's own cast rules
        assert onednn.linear(x, layer).dtype == torch.bfloat16
    torch.testing.assert_close(onednn.linear(x, layer), F.linear(x, layer.weight, layer.bias))
