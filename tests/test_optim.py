"""Keras 2.1 Adam, with decay and Keras' epsilon placement, against a NumPy hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gansweep.gan.optim import KerasAdam


def keras_adam_reference(p, grads, lr, b1, b2, eps, decay):
    """Keras 2.1 optimizers.Adam.get_updates, transcribed in NumPy float64."""
    m, v = np.zeros_like(p), np.zeros_like(p)
    for iterations, g in enumerate(grads):
        lr_now = lr * (1.0 / (1.0 + decay * iterations))
        t = iterations + 1
        lr_t = lr_now * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        m = b1 * m + (1.0 - b1) * g
        v = b2 * v + (1.0 - b2) * g * g
        p = p - lr_t * m / (np.sqrt(v) + eps)
    return p


@pytest.mark.parametrize("decay", [0.0, 1e-2, 1.0])
@pytest.mark.parametrize("eps", [1e-8, 1e-3])
def test_keras_adam_matches_hand_computation(decay, eps):
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(5, 3))
    grads = [rng.normal(size=(5, 3)) * 10 ** rng.uniform(-4, 0) for _ in range(6)]
    param = torch.nn.Parameter(torch.tensor(p0))
    opt = KerasAdam([param], lr=1e-2, beta_1=0.5, beta_2=0.999, epsilon=eps, decay=decay)
    for g in grads:
        param.grad = torch.tensor(g)
        opt.step()
    expected = keras_adam_reference(p0, grads, 1e-2, 0.5, 0.999, eps, decay)
    assert np.allclose(param.detach().numpy(), expected, rtol=1e-12, atol=1e-14)
    assert opt.iterations == 6
    assert opt.current_lr() == pytest.approx(1e-2 / (1 + decay * 6))


def test_keras_epsilon_placement_differs_from_torch_adam():
    # with tiny gradients epsilon matters: Keras adds it to sqrt(v), torch to sqrt(v_hat)
    p1 = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    p2 = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    keras = KerasAdam([p1], lr=1e-3, beta_1=0.5, epsilon=1e-3)
    torch_adam = torch.optim.Adam([p2], lr=1e-3, betas=(0.5, 0.999), eps=1e-3)
    for opt, p in ((keras, p1), (torch_adam, p2)):
        p.grad = torch.full((3,), 1e-3, dtype=torch.float64)
        opt.step()
    assert not torch.allclose(p1, p2)


def test_state_dict_round_trip_keeps_the_iteration_counter():
    param = torch.nn.Parameter(torch.ones(2))
    opt = KerasAdam([param], lr=0.1, decay=0.5)
    for _ in range(3):
        param.grad = torch.ones(2)
        opt.step()
    clone = KerasAdam([torch.nn.Parameter(param.detach().clone())], lr=0.1, decay=0.5)
    clone.load_state_dict(opt.state_dict())
    assert clone.iterations == 3 and clone.current_lr() == opt.current_lr()
