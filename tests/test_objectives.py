"""Keras binary cross-entropy, the Plummer potential and the eps schedule, by hand."""

from __future__ import annotations

import math

import pytest
import torch

from gansweep.gan.kernels import PlummerKernel, eps_at, plummer_potential
from gansweep.gan.objectives import CoulombGAN, StandardGAN, keras_binary_crossentropy


def _hand_bce(p: float, z: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return -(z * math.log(p) + (1 - z) * math.log(1 - p))


@pytest.mark.parametrize("p", [0.3, 0.9, 1e-9, -2.0, 1.5, 0.5])
@pytest.mark.parametrize("z", [0.0, 1.0])
def test_keras_bce_values(p, z):
    out = keras_binary_crossentropy(torch.tensor([[p]], dtype=torch.float64),
                                    torch.tensor([[z]], dtype=torch.float64))
    assert out.item() == pytest.approx(_hand_bce(p, z), rel=1e-6)


def test_keras_bce_has_zero_gradient_outside_the_clip_interval():
    raw = torch.tensor([[-0.5], [1.7], [0.4], [0.8]], requires_grad=True)
    target = torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    keras_binary_crossentropy(raw, target).backward()
    assert raw.grad[0] == 0 and raw.grad[1] == 0
    # inside: d/dp of mean BCE = (p - z) / (p (1 - p)) / n
    for i in (2, 3):
        p, z = raw[i].item(), target[i].item()
        assert raw.grad[i].item() == pytest.approx((p - z) / (p * (1 - p)) / 4, rel=1e-4)


def test_keras_bce_is_not_bce_with_logits():
    raw, target = torch.tensor([[-0.5], [2.0]]), torch.tensor([[1.0], [0.0]])
    keras = keras_binary_crossentropy(raw, target)
    logits = StandardGAN("logits").d_loss(raw, target)
    assert not torch.isclose(keras, logits)


def test_standard_targets_and_g_loss():
    obj = StandardGAN()
    real, fake = torch.zeros(3, 1, 28, 28), torch.zeros(2, 1, 28, 28)
    assert obj.d_targets(real, fake, 0).flatten().tolist() == [1, 1, 1, 0, 0]
    out = torch.tensor([[0.25], [0.5]])
    assert obj.g_loss(out).item() == pytest.approx((_hand_bce(0.25, 1) + _hand_bce(0.5, 1)) / 2)


def _hand_potential(real, fake, eps, dim, ignore_self):
    points = [(p, "real") for p in real] + [(p, "fake") for p in fake]
    result = []
    for i, (x, _) in enumerate(points):
        sums = {"real": [], "fake": []}
        for j, (y, kind) in enumerate(points):
            if ignore_self and i == j:
                continue
            r2 = float(((x - y) ** 2).sum())
            sums[kind].append(1.0 / (r2 + eps * eps) ** ((dim - 2) / 2))
        result.append(sum(sums["fake"]) / len(sums["fake"]) - sum(sums["real"]) / len(sums["real"]))
    return torch.tensor(result, dtype=torch.float64)


@pytest.mark.parametrize("ignore_self", [True, False])
@pytest.mark.parametrize("eps, dim", [(1.0, 3), (0.1, 3), (10.0, 5)])
def test_potential_matches_hand_computation(ignore_self, eps, dim):
    torch.manual_seed(0)
    real, fake = torch.randn(4, 1, 3, 3, dtype=torch.float64), torch.randn(3, 1, 3, 3, dtype=torch.float64)
    got = plummer_potential(real, fake, eps, dim, ignore_self)
    assert torch.allclose(got, _hand_potential(real, fake, eps, dim, ignore_self), rtol=1e-10)


def test_potential_sign_pulls_fakes_toward_reals():
    # a fake sitting on the real cluster has a lower potential than one far from it
    real = torch.zeros(8, 2, dtype=torch.float64) + torch.linspace(-0.1, 0.1, 8)[:, None]
    fake = torch.tensor([[0.05, 0.0], [5.0, 5.0], [5.1, 5.0]], dtype=torch.float64)
    phi = plummer_potential(real, fake, eps=1.0)
    assert phi[8] < phi[9]
    assert (phi[:8] < 0).all()  # reals sit in a well
    # minimising the potential moves a fake toward the reals: gradient points away from them
    moving = fake.clone().requires_grad_(True)
    plummer_potential(real, moving, eps=1.0)[9].backward()
    assert (moving.grad[1] > 0).all()


def test_self_potential_is_excluded():
    # with one real and one fake at the same spot, the self term would dominate if kept
    real, fake = torch.zeros(2, 1, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64)
    real[1] = 3.0
    kept = plummer_potential(real, fake, eps=1.0, ignore_self=False)
    dropped = plummer_potential(real, fake, eps=1.0, ignore_self=True)
    # fake 0 (at 0): others = fake 1 at 0 -> k = 1; reals: at 0 -> 1, at 3 -> 1/sqrt(10)
    assert dropped[2].item() == pytest.approx(1.0 - (1 + 1 / math.sqrt(10)) / 2)
    assert kept[2].item() == pytest.approx((1 + 1) / 2 - (1 + 1 / math.sqrt(10)) / 2)


def test_eps_schedule_halves_every_half_life():
    assert eps_at(1.0, 5000, 0) == 1.0
    assert eps_at(1.0, 5000, 5000) == pytest.approx(0.5)
    assert eps_at(10.0, 5000, 15000) == pytest.approx(1.25)
    kernel = PlummerKernel(eps=0.1, eps_half_life=5000)
    assert kernel.eps(46800) == pytest.approx(0.1 * 2 ** (-46800 / 5000))


def test_coulomb_targets_are_detached_potential_and_losses():
    obj = CoulombGAN(PlummerKernel(eps=1.0))
    real = torch.randn(4, 1, 2, 2)
    fake = torch.randn(4, 1, 2, 2, requires_grad=True)
    targets = obj.d_targets(real, fake, step=5000)
    assert targets.shape == (8, 1) and not targets.requires_grad
    assert torch.allclose(targets[:, 0], plummer_potential(real, fake.detach(), eps=0.5), atol=1e-6)
    out = torch.tensor([[1.0], [3.0]])
    assert obj.d_loss(out, torch.tensor([[0.0], [1.0]])).item() == pytest.approx((1 + 4) / 2)
    assert obj.g_loss(out).item() == pytest.approx(2.0)
