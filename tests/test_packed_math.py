"""Packed runs (gansweep.packed) compute what their runs compute alone.

N runs of mixed seed presets (their learning rates, decays and eps0 from
conf/experiment/seed_*.yaml), mixed seeds and kernel half-lives are trained alone with
``gansweep.gan.step.train_step`` and packed with ``packed_train_step``; parameters, gradients,
BatchNorm buffers and Adam state are compared after 1 and after 10 steps (an epoch boundary,
hence a new data order, falls inside the ten). Harness: tests/packed_harness.py.

Tolerances. The pack sums in other orders than a run alone (grouped convolutions or batched
matrix products for convolutions and matmuls, reductions over other axes): the two agree to
rounding, not to the bit. Errors are taken per kind of quantity (each network's parameters,
BatchNorm buffers, gradients, Adam m, Adam v) relative to the largest value of that kind:
a tensor whose exact value is 0 (the gradient of a bias that a BatchNorm follows) holds
only rounding noise and is judged on its network's scale.

- float64, elementwise, RTOL64 = 1e-10. Unit roundoff 1.1e-16; the longest sums (a
  convolution's weight gradient: batch x 28 x 28 terms) reorder to a few 1e-15 after one
  step, and ten steps of GAN training amplify that by up to ~1e3 (measured: <= 4e-13 after
  ten steps). 1e-10 leaves a margin of over 100x, and a slip between runs is far above it:
  one run's learning rate routed to another moves that run's parameters by ~1e-3 of their
  scale in one step (test below).
- float32 (the dtype runs train in): see the float32 section. There the models' own
  sensitivity to rounding, not the packing, decides what can be asked element by element.

Streams (data order, z, Dropout masks) are compared bit for bit.
"""

from __future__ import annotations

import json

import pytest
import torch

from gansweep.bench import cli as bench_cli
from gansweep.gan.kernels import PlummerKernel
from gansweep.gan.models import DCGAN, MLPGAN, RunDropout
from gansweep.gan.objectives import CoulombGAN, StandardGAN
from gansweep.gan.optim import KerasAdam
from gansweep.packed.models import (PackedDCGAN, PackedMLPGAN, auto_conv_impl,
                                    check_one_architecture)
from gansweep.packed.objectives import packed_objective
from gansweep.packed.optim import PackedKerasAdam
from gansweep.packed.step import packed_train_step

from tests.packed_harness import (Packed, Single, elementwise_errors, exact_parts, fake_images,
                                  fake_points, lockstep, median_errors, specs)

RTOL64 = 1e-10
STEPS = 10
DCGAN_DATA = 24  # images: 6 batches of 4, so the ten steps cross an epoch boundary


def assert_agree(alone: dict, packed: dict, rtol: float, label: str) -> float:
    """A run's every kind of quantity within ``rtol`` (elementwise, on the kind's scale),
    and its integer state (BatchNorm step counts, Adam counts, hyperparameters) equal. The
    message names the kind and tensor; returns the worst error."""
    assert exact_parts(packed) == exact_parts(alone), label
    worst = 0.0
    for kind, (error, name) in elementwise_errors(alone, packed).items():
        if not error <= rtol:  # NaN fails too
            raise AssertionError(f"{label}, {kind} ({name}): relative error {error:.3g} > "
                                 f"{rtol:g}")
        worst = max(worst, error)
    return worst


def check(model: str, family: str, n: int, dtype=torch.float64, batch: int = 4,
          rtol: float = RTOL64, steps: int = STEPS, loss: str = "keras_bce", **options):
    """N runs alone and packed, every run compared after 1 step and after ``steps``."""
    runs = specs(n, family, loss)
    data = fake_images(DCGAN_DATA, dtype) if model.startswith("dcgan") else fake_points(64, dtype)
    worst = 0.0
    for done, singles, packed, _, _ in lockstep(runs, model, dtype, batch, data, steps, **options):
        if done in (1, steps):
            for index, single in enumerate(singles):
                label = f"{model} {family} N={n}, run {index} after {done} steps"
                worst = max(worst, assert_agree(single.snapshot(), packed.snapshot(index), rtol,
                                                label))
    print(f"{model} {family} N={n}: worst {worst:.2g}")


# ----------------------------------------------------------------------------- float64
# The DCGAN in float64 costs about 0.4 s a step here: the cheap cases run always, the
# rest are marked slow. A DCGAN run's state (parameters, gradients, Adam m and v) is 250 MB
# in float64, and a comparison holds each run twice (alone and packed): the float64 packs
# stop at N = 7, one run of every preset (about 4 GB); N = 21 runs in float32 (7 GB, below).
@pytest.mark.parametrize("family", ["coulomb", "standard"])
def test_a_packed_dcgan_of_one_run_trains_it_as_it_trains_alone(family):
    check("dcgan", family, 1)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["coulomb", "standard"])
def test_packed_dcgan_runs_train_as_they_train_alone(family):
    # N = 7, one run of every preset; a float64 pack of 3 would prove nothing more (its runs
    # are these runs' first three: ``specs`` is a prefix), N = 3 is packed in float32 below
    check("dcgan", family, 7)


@pytest.mark.parametrize("family", ["coulomb", "standard"])
@pytest.mark.parametrize("n", [1, 3, pytest.param(21, marks=pytest.mark.slow)])
def test_a_packed_mlp_gan_trains_each_run_as_it_trains_alone(family, n):
    check("mlp", family, n, batch=16)


@pytest.mark.parametrize("conv_impl", ["bmm", "loop"])
def test_other_packed_convolutions_train_the_same_runs(conv_impl):
    check("dcgan", "coulomb", 2, conv_impl=conv_impl, steps=2)


@pytest.mark.parametrize("conv_impl", ["grouped", "loop"])
def test_the_fast_dcgan_packs_with_its_folded_upsampling_convolutions(conv_impl):
    check("dcgan_fast", "standard", 2, steps=2, conv_impl=conv_impl)


@pytest.mark.slow
def test_bce_with_logits_packs():
    check("dcgan", "standard", 3, loss="logits", steps=3)


@pytest.mark.slow
@pytest.mark.parametrize("arch,fake_mode", [
    # Keras 2.1.2: plain EMA moving statistics; per-channel BatchNorm after the conv
    (dict(bn_zero_debias=False, bn_var_conv="biased", bn_axis="channel"), "eval"),
    # Keras 2.1.4's factors; fakes predicted with batch statistics (moving ones updated)
    (dict(bn_var_dense="keras214", bn_var_conv="unbiased_keras214"), "train"),
])
def test_other_batchnorm_settings_and_fake_modes_pack(arch, fake_mode):
    check("dcgan", "coulomb", 2, steps=3, arch=arch, fake_mode=fake_mode)


def test_a_slip_between_runs_is_far_above_the_tolerance():
    """Route run 0's G learning rate to run 1 (a packing bug of the kind the tolerance must
    catch): run 1's G parameters move away from its run alone by ~1e-4 of their scale
    after one step, 1e6 times RTOL64."""
    runs = specs(3, "coulomb")[::2]  # seed_coulomb_1 and _3: G lr 1e-3 and 1e-4
    assert runs[0].preset["g"]["lr"] != runs[1].preset["g"]["lr"]
    data = fake_images(DCGAN_DATA, torch.float64)
    alone = Single(runs[1], "dcgan", torch.float64, 4)
    alone.step(data, 0)
    packed = Packed(runs, "dcgan", torch.float64, 4)
    packed.opt_g.lr[1] = packed.opt_g.lr[0]
    packed.step(data, 0)
    errors = elementwise_errors(alone.snapshot(), packed.snapshot(1))
    assert errors["generator parameters"][0] > 1e6 * RTOL64, errors
    assert errors["discriminator parameters"][0] <= RTOL64, errors  # D's lr was not touched


# ----------------------------------------------------------------------------- float32
# In float32 a run is sensitive to rounding in a few places, whoever sums: an input of a
# ReLU or LeakyReLU within rounding of 0 takes the other branch of the gradient, a D output
# just above 0 meets Keras' clipped BCE, whose gradient is -1/p there, and Adam turns a
# changed gradient into a full step of size lr. One step of a run packed and the same run
# alone can therefore differ in a few elements by up to ~2e-3 of their scale, and a branch
# taken otherwise in D during the G step changes all of G's gradients a little. After ten
# steps the differences have spread: a float32 run alone departs from its own float64 twin
# as much (seed_coulomb_2: 13% of its gradients' scale after ten steps at batch 8). Hence,
# measured over 21 runs of each family at batch 4:
# - forward values of the first step (fakes, D's loss: the same weights, the same inputs,
#   only the summation order differs) elementwise within RTOL32_FORWARD = 1e-5 (float32
#   roundoff 6e-8 grown over sums of up to 3,200 x 25 terms; measured <= 3e-7);
# - after one step, the MEDIAN element of each kind, relative to the kind's scale (immune
#   to the few elements a branch or the clip moves): parameters and BatchNorm buffers within
#   MEDIAN32 = 1e-6 (measured <= 3e-9; Adam's steps of size lr hardly see a gradient's
#   rounding), gradients and Adam m and v within MEDIAN32_GRADIENTS = 1e-4 (measured <=
#   9e-6). A slip moves every parameter: run 0's lr on run 1 moves the median by 9e-4,
#   900x MEDIAN32 (test below);
# - after ten steps, parameters and BatchNorm buffers with their median within
#   MEDIAN32_TRAJECTORY = 1e-2 (measured <= 1e-3): the pack stays on its runs' trajectory.
#   A weak check (a slip reaches 2e-3 to 1e-2 by then); ten steps are proven in float64.
RTOL32_FORWARD = 1e-5
MEDIAN32 = 1e-6
MEDIAN32_GRADIENTS = 1e-4
MEDIAN32_TRAJECTORY = 1e-2


def check_float32(model: str, family: str, n: int, batch: int = 4, loss: str = "keras_bce"):
    runs = specs(n, family, loss)
    data = fake_images(DCGAN_DATA, torch.float32) if model.startswith("dcgan") else fake_points(
        64, torch.float32)
    for done, singles, packed, apart, together in lockstep(runs, model, torch.float32, batch,
                                                             data, STEPS):
        if done == 1:  # the first step's forward values: same weights, same inputs
            d_loss, _, fakes = together
            for index, (alone_d, _, alone_fakes) in enumerate(apart):
                torch.testing.assert_close(fakes[index], alone_fakes, rtol=RTOL32_FORWARD,
                                           atol=RTOL32_FORWARD)
                torch.testing.assert_close(d_loss[index], alone_d, rtol=RTOL32_FORWARD, atol=0.0)
        if done not in (1, STEPS):
            continue
        for index, single in enumerate(singles):
            alone, packed_run = single.snapshot(), packed.snapshot(index)
            assert exact_parts(packed_run) == exact_parts(alone), (done, index)
            for kind, error in median_errors(alone, packed_run).items():
                state = "parameters" in kind or "BatchNorm" in kind
                if done == 1:
                    assert error <= (MEDIAN32 if state else MEDIAN32_GRADIENTS), \
                        (done, index, kind, error)
                elif state:
                    assert error <= MEDIAN32_TRAJECTORY, (done, index, kind, error)


@pytest.mark.parametrize("family", ["coulomb", "standard"])
@pytest.mark.parametrize("n", [pytest.param(1, marks=pytest.mark.slow), 3,
                               pytest.param(21, marks=pytest.mark.slow)])
def test_float32_packs_agree_with_their_runs_to_rounding(family, n):
    check_float32("dcgan", family, n)


def test_a_float32_slip_between_runs_is_far_above_the_float32_tolerance():
    runs = specs(3, "coulomb")[::2]  # G lr 1e-3 and 1e-4
    data = fake_images(DCGAN_DATA, torch.float32)
    alone = Single(runs[1], "dcgan", torch.float32, 4)
    alone.step(data, 0)
    packed = Packed(runs, "dcgan", torch.float32, 4)
    packed.opt_g.lr[1] = packed.opt_g.lr[0]
    packed.step(data, 0)
    errors = median_errors(alone.snapshot(), packed.snapshot(1))
    assert errors["generator parameters"] > 100 * MEDIAN32, errors
    assert errors["discriminator parameters"] <= MEDIAN32, errors


# ----------------------------------------------------------------------------- streams
def test_each_runs_data_order_noise_and_dropout_masks_are_bit_identical_to_the_run_alone(
        monkeypatch):
    """What the pack draws for run n (the data order at every epoch start, both z per step,
    both Dropout masks per step) equals what run n draws alone, bit for bit, over steps
    that cross an epoch boundary."""
    runs = specs(2, "coulomb")
    data = fake_images(DCGAN_DATA, torch.float32)
    drawn = []  # the masks a run alone draws inside its D forwards, in order
    original = RunDropout.mask
    monkeypatch.setattr(RunDropout, "mask", lambda self, like: drawn.append(
        original(self, like)) or drawn[-1])
    alone = []
    for spec in runs:
        single, rows = Single(spec, "dcgan", torch.float32, 4), []
        z_draws = []
        single_z = single.z
        single.z = lambda single_z=single_z: z_draws.append(single_z()) or z_draws[-1]
        for step in range(STEPS):
            drawn.clear()
            single.step(data, step)
            rows.append((single.perm.clone(), list(z_draws), list(drawn)))
            z_draws.clear()
        alone.append(rows)
    monkeypatch.setattr(RunDropout, "mask", original)
    packed = Packed(runs, "dcgan", torch.float32, 4)
    for step in range(STEPS):
        real, z_fake, z_g, (mask_d, mask_g) = packed.draws(data, step)
        for n in range(len(runs)):
            perm, (z1, z2), (m1, m2) = alone[n][step]
            assert torch.equal(packed.perms[n], perm), (step, n)
            b = step % (DCGAN_DATA // 4)
            assert torch.equal(real[n], data[perm[4 * b:4 * b + 4]]), (step, n)
            assert torch.equal(z_fake[n], z1) and torch.equal(z_g[n], z2), (step, n)
            assert torch.equal(mask_d[n], m1) and torch.equal(mask_g[n], m2), (step, n)
        packed_train_step(packed.pack, real, z_fake, z_g, (mask_d, mask_g), step)


# ----------------------------------------------------------------------------- no host reads
HOST_READS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


@pytest.mark.parametrize("model,family,conv_impl", [
    ("dcgan", "coulomb", "grouped"), ("dcgan", "standard", "grouped"), ("mlp", "coulomb", None),
    ("dcgan_fast", "coulomb", "loop"), ("dcgan", "standard", "bmm")])
def test_a_packed_step_reads_nothing_back_to_the_host(monkeypatch, model, family, conv_impl):
    """Every way a tensor's value reaches Python raises during the step (a read-back would
    make a GPU wait every step and break CUDA graph capture); the step is a 0-d tensor, as
    a captured step takes it."""
    dcgan = model.startswith("dcgan")
    data = fake_images(8, torch.float32) if dcgan else fake_points(32, torch.float32)
    packed = Packed(specs(2, family), model, torch.float32, 4,
                    **({"conv_impl": conv_impl} if conv_impl else {}))
    inputs = packed.draws(data, 0)
    step = torch.tensor(3)

    def refuse(self, *args, **kwargs):
        raise AssertionError("a host read in the packed step")

    with monkeypatch.context() as patch:
        for name in HOST_READS:
            patch.setattr(torch.Tensor, name, refuse)
        with pytest.raises(AssertionError, match="host read"):
            float(torch.ones(()))  # the trap is set
        for _ in range(2):  # the second step runs with Adam state and BatchNorm counts set
            d_loss, g_loss, fakes = packed_train_step(packed.pack, *inputs, step)
    assert d_loss.shape == g_loss.shape == (2,) and fakes.shape[:2] == (2, 4)
    assert bool(torch.isfinite(d_loss).all()) and bool(torch.isfinite(g_loss).all())


# ----------------------------------------------------------------------------- the way back
def test_unstack_and_load_from_round_trip_the_single_runs_state_dicts():
    """The pack written back into its runs gives each run's state_dict (single-run format,
    bit for bit), and loading those into another pack gives the same pack; the optimiser
    state converts both ways too."""
    data = fake_images(DCGAN_DATA, torch.float32)
    first = Packed(specs(3, "coulomb"), "dcgan", torch.float32, 4)
    for step in range(2):
        first.step(data, step)
    gans = [s.gan for s in first.singles]
    first.model.unstack(gans)
    for index, gan in enumerate(gans):
        for net in ("generator", "discriminator"):
            single = getattr(gan, net).state_dict()
            packed = getattr(first.model, net).state_dict()
            assert list(single) == list(packed)
            for key in single:
                assert torch.equal(single[key], packed[key][index]), (index, net, key)
    other = Packed(specs(3, "standard")[::-1], "dcgan", torch.float32, 4)  # other weights
    other.model.load_from(gans)
    for key, value in first.model.state_dict().items():
        assert torch.equal(other.model.state_dict()[key], value), key
    # the optimiser: packed -> N KerasAdam state_dicts -> KerasAdam -> packed again
    singles = []
    for index, gan in enumerate(gans):
        opt = KerasAdam(gan.generator.parameters())
        opt.load_state_dict(first.opt_g.single_state_dict(index))
        assert opt.iterations == 2 and opt.param_groups[0]["lr"] == specs(3, "coulomb")[
            index].preset["g"]["lr"]
        singles.append(opt)
    again = PackedKerasAdam.from_single(list(other.model.generator.parameters()), singles)
    for index in range(3):
        a, b = first.opt_g.single_state_dict(index), again.single_state_dict(index)
        assert a["param_groups"] == b["param_groups"] and a["iterations"] == b["iterations"]
        for k in a["state"]:
            assert torch.equal(a["state"][k]["m"], b["state"][k]["m"])
            assert torch.equal(a["state"][k]["v"], b["state"][k]["v"])


def test_a_run_continues_packed_and_alone_either_way():
    """Run 0 trained 2 steps alone, then 2 packed beside a run that starts fresh (each with
    its own Adam count, BatchNorm count and eps step), equals run 0 trained 4 steps alone;
    and a run trained 2 steps packed, unstacked and continued alone, equals 4 packed steps
    (float64, RTOL64)."""
    runs = specs(2, "coulomb")
    data = fake_images(DCGAN_DATA, torch.float64)
    reference = Single(runs[0], "dcgan", torch.float64, 4)
    for step in range(4):
        reference.step(data, step)
    started = Single(runs[0], "dcgan", torch.float64, 4)
    for step in range(2):
        started.step(data, step)
    fresh = Single(runs[1], "dcgan", torch.float64, 4)
    continued = Packed(runs, "dcgan", torch.float64, 4, singles=[started, fresh])
    assert continued.opt_d.iterations.tolist() == [2, 0]
    continued.perms = torch.stack([started.perm, torch.randperm(
        DCGAN_DATA, generator=fresh.noise_generator)])  # the fresh run's first epoch
    for step in (2, 3):
        continued.step(data, step, run_steps=torch.tensor([step, step - 2]))
    assert_agree(reference.snapshot(), continued.snapshot(0), RTOL64, "alone then packed")
    # one training-mode G forward a step: each run its own BatchNorm count
    assert continued.model.generator.bn1.debias_steps.tolist() == [4, 2]

    together = Packed(runs, "dcgan", torch.float64, 4)
    for step in range(4):
        together.step(data, step)
    split = Packed(runs, "dcgan", torch.float64, 4)
    for step in range(2):
        split.step(data, step)
    alone = split.singles[0]
    split.model.unstack([s.gan for s in split.singles])
    alone.opt_d.load_state_dict(split.opt_d.single_state_dict(0))
    alone.opt_g.load_state_dict(split.opt_g.single_state_dict(0))
    alone.perm = split.perms[0]
    for step in (2, 3):
        alone.step(data, step)
    assert_agree(together.snapshot(0), alone.snapshot(), RTOL64, "packed then alone")


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("setting,value,named", [
    ("latent_dim", 64, "latent_dim"),
    ("dropout", 0.3, "discriminator.dropout.p"),
    ("leaky_slope", 0.1, "discriminator.leaky_slope"),
    ("bn_axis", "channel", "generator.bn3.axis"),
    ("bn_momentum", 0.9, "generator.bn1.momentum"),
    ("bn_zero_debias", False, "generator.bn1"),
    ("bn_var_dense", "unbiased", "generator.bn1.moving_var"),
    ("impl", "fast", "(type)"),
])
def test_runs_of_different_architectures_cannot_share_a_pack(setting, value, named):
    g = torch.Generator().manual_seed(0)
    gans = [DCGAN(generator=g), DCGAN(generator=g, **{setting: value})]
    with pytest.raises(ValueError, match="differs from run 0") as error:
        PackedDCGAN(gans)
    assert named in str(error.value)
    check_one_architecture([DCGAN(generator=g), DCGAN(generator=g)])  # equal ones pack


def test_a_pack_refuses_mixed_loss_families_and_mixed_kernel_settings():
    with pytest.raises(ValueError, match="one loss family"):
        packed_objective([StandardGAN(), CoulombGAN(PlummerKernel())])
    with pytest.raises(ValueError, match="one loss"):
        packed_objective([StandardGAN(loss="keras_bce"), StandardGAN(loss="logits")])
    with pytest.raises(ValueError, match="ignore_self_potential"):
        packed_objective([CoulombGAN(PlummerKernel()),
                          CoulombGAN(PlummerKernel(ignore_self_potential=False))])
    with pytest.raises(ValueError, match="PackedMLPGAN packs MLPGANs"):
        PackedMLPGAN([DCGAN(generator=torch.Generator())])
    with pytest.raises(ValueError, match="differs from run 0"):
        PackedMLPGAN([MLPGAN(generator=torch.Generator()),
                      MLPGAN(hidden=64, generator=torch.Generator())])


# ----------------------------------------------------------------------------- the optimiser
def test_packed_keras_adam_is_keras_adam_for_every_run_with_its_own_count():
    """Per-run lr, decay, beta_1, beta_2 and epsilon, and update counts that differ (run 1
    continues from 5 updates): each run's parameters, m and v after three updates equal
    KerasAdam's on the same gradients to float64 rounding."""
    gen = torch.Generator().manual_seed(0)
    hyper = dict(lr=[1e-3, 1e-4, 2e-2], beta_1=[0.5, 0.9, 0.5], beta_2=[0.999, 0.99, 0.9],
                 epsilon=[1e-7, 1e-8, 1e-3], decay=[1e-3, 0.0, 1e-2])
    shapes = [(4, 3), (5,), (2, 1, 3, 3)]
    singles = []
    for n in range(3):
        ps = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64))
              for s in shapes]
        opt = KerasAdam(ps, **{k: v[n] for k, v in hyper.items()})
        if n == 1:  # a run with history
            for _ in range(5):
                for p in ps:
                    p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
                opt.step()
        singles.append((ps, opt))
    stacked = [torch.nn.Parameter(torch.stack([singles[n][0][k].detach() for n in range(3)]))
               for k in range(len(shapes))]
    packed = PackedKerasAdam.from_single(stacked, [opt for _, opt in singles])
    assert packed.iterations.tolist() == [0, 5, 0]
    for _ in range(3):
        grads = [torch.randn((3, *s), generator=gen, dtype=torch.float64) for s in shapes]
        for k, p in enumerate(stacked):
            p.grad = grads[k].clone()
        packed.step()
        for n, (ps, opt) in enumerate(singles):
            for k, p in enumerate(ps):
                p.grad = grads[k][n].clone()
            opt.step()
    for n, (ps, opt) in enumerate(singles):
        packed_state, state = packed.single_state_dict(n), opt.state_dict()
        assert packed_state["iterations"] == state["iterations"]
        assert packed_state["param_groups"] == state["param_groups"]
        for k, p in enumerate(ps):
            torch.testing.assert_close(stacked[k][n], p.detach(), rtol=1e-14, atol=1e-15)
            for moment in ("m", "v"):
                torch.testing.assert_close(packed_state["state"][k][moment],
                                           state["state"][k][moment], rtol=1e-14, atol=1e-18)
    lr = packed.current_lr()
    assert lr.tolist() == pytest.approx([opt.current_lr() for _, opt in singles], rel=1e-15)
    # the packed optimiser's own state_dict (all runs at once) round-trips too
    copies = [torch.nn.Parameter(p.detach().clone()) for p in stacked]
    again = PackedKerasAdam(copies, **{k: [0.0] * 3 for k in hyper})
    again.load_state_dict(packed.state_dict())
    for n in range(3):
        a, b = packed.single_state_dict(n), again.single_state_dict(n)
        assert a["iterations"] == b["iterations"] and a["param_groups"] == b["param_groups"]
        assert all(torch.equal(a["state"][k][m], b["state"][k][m])
                   for k in a["state"] for m in ("m", "v"))


def test_packed_keras_adam_refuses_a_hyperparameter_count_that_is_not_one_per_run():
    p = torch.nn.Parameter(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="lr has 2 values for 3 runs"):
        PackedKerasAdam([p], lr=[1e-3, 1e-3], beta_1=[0.5] * 3, beta_2=[0.999] * 3,
                        epsilon=[1e-7] * 3, decay=[0.0] * 3)


def test_auto_takes_the_layout_the_bench_measured_fastest_for_the_device_and_the_g():
    """conv_impl=auto: run by run for the fast G on a CPU (its channels_last path beats the
    grouped convolutions there), grouped for the reference G and on a GPU."""
    fast, reference = (DCGAN(impl=impl, generator=torch.Generator().manual_seed(0))
                       for impl in ("fast", "reference"))
    assert auto_conv_impl(fast, torch.device("cpu")) == "loop"
    assert auto_conv_impl(reference, torch.device("cpu")) == "grouped"
    assert auto_conv_impl(fast, torch.device("cuda")) == "grouped"


# ----------------------------------------------------------------------------- the bench
@pytest.mark.slow
def test_the_pack_bench_times_packed_separate_and_alone_runs(mnist_root, tmp_path, capsys):
    out = tmp_path / "pack.json"
    bench_cli.main(["--pack", "2", "--steps", "2", "--warmup", "1", "--batch-size", "8",
                    "--limit", "64", "--gan-types", "coulomb", "--impls", "reference",
                    "--data-root", str(mnist_root), "--device", "cpu", "--threads", "1",
                    "--peak-size", "256", "--json", str(out)])
    report = json.loads(out.read_text())
    rows = report["results"]["coulomb/reference"]["rows"]
    assert set(rows) == {"alone", "separate", "processes", "packed/grouped", "packed/bmm",
                         "packed/loop"}
    assert rows["alone"]["runs"] == 1 and rows["packed/grouped"]["runs"] == 2
    # the 2 separate processes: 1 thread each (of this process's 1), each timed, and the
    # slower one sets the pace
    processes = rows["processes"]
    assert processes["runs"] == 2 and processes["threads_each"] == 1
    assert len(processes["times_s"]) == 2 and processes["median_s"] == max(processes["times_s"])
    assert rows["packed/loop"]["vs_processes"] == pytest.approx(
        rows["packed/loop"]["run_steps_per_s"] / processes["run_steps_per_s"])
    # the pack's work is its runs' work: twice one run's
    assert rows["packed/bmm"]["gflop_per_step"] == rows["separate"]["gflop_per_step"]
    assert rows["separate"]["gflop_per_step"] == pytest.approx(
        2 * rows["alone"]["gflop_per_step"], rel=1e-6)
    for row in rows.values():
        assert row["run_steps_per_s"] == pytest.approx(row["runs"] / row["median_s"])
        assert 0 < row["fraction_of_peak"] == pytest.approx(
            row["gflops"] / report["matmul_peak_gflops"])
    assert report["results"]["coulomb/reference"]["fastest_conv"] in ("grouped", "bmm", "loop")
    printed = capsys.readouterr().out
    assert "run-steps/s" in printed and "2 processes" in printed and "vs processes" in printed


def test_a_separate_process_that_fails_is_named_not_waited_for(mnist_root, tmp_path):
    """Data that is not there ends every separate process before the barrier: the bench
    says why instead of waiting for the others."""
    from gansweep.bench import pack as bench_pack

    args = bench_cli.parser().parse_args(
        ["--pack", "2", "--steps", "1", "--warmup", "0", "--batch-size", "8", "--limit", "64",
         "--data-root", str(tmp_path / "no-mnist-here"), "--device", "cpu", "--threads", "1",
         "-o", "dataset.fetch=false"])
    with pytest.raises(RuntimeError, match="a separate process failed: .*no-mnist-here"):
        bench_pack.processes(args, "coulomb", "reference", steps=1, warmup=0)
