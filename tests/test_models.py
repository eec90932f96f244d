"""The networks against Keras 2.1 semantics, each checked by a hand computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import compose_config
from gansweep.gan.models import (Discriminator, Generator, KerasBatchNorm, SameConv2d, moving_variance_factor,
                             build_models, count_parameters, tf_same_padding)


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_parameter_counts_equal_keras(impl):
    g, d = build_models(compose_config([f"model.impl={impl}"]).model)
    assert count_parameters(g) == (6_753_309, 14_620)  # trainable, BN moving statistics
    assert count_parameters(d) == (1_026_305, 0)


def test_output_shapes_and_ranges():
    g, d = build_models(compose_config().model)
    x = g(torch.rand(4, 100) * 2 - 1)
    assert x.shape == (4, 1, 28, 28) and x.abs().max() <= 1
    assert d(x).shape == (4, 1)


@pytest.mark.parametrize("size, kernel, stride, expected", [
    (28, 5, 2, (1, 2)),  # D's first conv: the odd pixel goes after
    (14, 5, 1, (2, 2)),
    (28, 5, 1, (2, 2)),
    (7, 3, 2, (1, 1)),
])
def test_tf_same_padding(size, kernel, stride, expected):
    assert tf_same_padding(size, kernel, stride) == expected


def test_stride2_same_conv_matches_a_hand_computed_output_pixel():
    torch.manual_seed(0)
    conv = SameConv2d(1, 1, 5, stride=2, in_size=28)
    x = torch.randn(1, 1, 28, 28)
    y = conv(x)
    assert y.shape == (1, 1, 14, 14)
    w, b = conv.weight[0, 0], conv.bias[0]
    # TF 'same': output (i, j) reads input rows 2i-1 .. 2i+3 (one pad row before, two after)
    for i, j in [(0, 0), (5, 7), (13, 13)]:
        acc = b.clone()
        for u in range(5):
            for v in range(5):
                r, c = 2 * i - 1 + u, 2 * j - 1 + v
                if 0 <= r < 28 and 0 <= c < 28:
                    acc += w[u, v] * x[0, 0, r, c]
        assert torch.allclose(y[0, 0, i, j], acc, atol=1e-5)
    # torch's symmetric padding=2 gives a different (shifted) result
    assert not torch.allclose(y, F.conv2d(x, conv.weight, conv.bias, stride=2, padding=2)[..., :14, :14])


def test_keras_batchnorm_axis_minus_one_normalises_image_columns():
    torch.manual_seed(0)
    bn = KerasBatchNorm(14, axis=-1, momentum=0.99, epsilon=1e-3)
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 2, 14))
        bn.bias.copy_(torch.linspace(-1, 1, 14))
    x = torch.randn(8, 64, 14, 14) * 3 + 1
    y = bn(x)
    # statistics over (N, C, H) for each of the 14 columns, biased variance
    mean = x.mean(dim=(0, 1, 2))
    var = ((x - mean) ** 2).mean(dim=(0, 1, 2))
    expected = (x - mean) / torch.sqrt(var + 1e-3) * bn.weight + bn.bias
    assert torch.allclose(y, expected, atol=1e-4)
    # plain EMA with Keras momentum 0.99 from moving mean 0, variance 1
    assert torch.allclose(bn.moving_mean, 0.01 * mean, atol=1e-6)
    assert torch.allclose(bn.moving_variance, 0.99 + 0.01 * var, atol=1e-5)


def test_keras_batchnorm_inference_uses_moving_statistics_and_does_not_update():
    bn = KerasBatchNorm(3, axis=1)
    with torch.no_grad():
        bn.moving_mean.copy_(torch.tensor([1.0, 2.0, 3.0]))
        bn.moving_variance.copy_(torch.tensor([4.0, 1.0, 0.25]))
    bn.eval()
    x = torch.randn(5, 3, 2, 2)
    y = bn(x)
    expected = (x - bn.moving_mean.view(1, 3, 1, 1)) / torch.sqrt(
        bn.moving_variance.view(1, 3, 1, 1) + 1e-3)
    assert torch.allclose(y, expected, atol=1e-6)
    assert torch.equal(bn.moving_mean, torch.tensor([1.0, 2.0, 3.0]))


def test_keras_batchnorm_variance_factor_plain_ema():
    x = torch.randn(10, 4)
    bn = KerasBatchNorm(4, axis=-1, moving_var="keras214")
    bn(x)
    var = x.var(0, unbiased=False)
    assert torch.allclose(bn.moving_variance, 0.99 + 0.01 * var * 10 / (10 - 1.001), atol=1e-6)


def _first_step_ratio(release: str, layer: str) -> float:
    """moving variance / biased batch variance after one training step of the named G layer,
    under the composed `keras=<release>` config (zero-debiased: the ratio is the factor)."""
    cfg = compose_config([f"keras={release}", "model.impl=reference"]).model
    g, _ = build_models(cfg)
    bn = getattr(g, layer)
    torch.manual_seed(0)
    x = torch.randn(128, 4) if layer != "bn3" else torch.randn(8, 64, 14, 14)
    probe = KerasBatchNorm(x.shape[-1], axis=-1, moving_var=bn.moving_var,
                           zero_debias=bn.zero_debias)
    probe(x)
    var = x.double().var(dim=list(range(x.ndim - 1)), unbiased=False)
    return (probe.moving_variance.double() / var).mean().item()


@pytest.mark.parametrize("release, dense, conv", [
    # hand-computed: n = 128 rows for the (128, 4) dense batch; n = 8*64*14 = 7168 values
    # per image column for the (8, 64, 14, 14) conv batch; BatchNorm epsilon 1e-3.
    ("2.1.3", 1.0, 7168 / 7167),  # 2-D biased; 4-D fused batch norm's n/(n-1)
    ("2.1.4", 128 / 126.999, 7168 / 7167 * 7168 / 7166.999),  # Keras PR 9028 on top
])
def test_keras_release_moving_variance_rule_by_hand(release, dense, conv):
    assert _first_step_ratio(release, "bn1") == pytest.approx(dense, abs=2e-6)
    assert _first_step_ratio(release, "bn2") == pytest.approx(dense, abs=2e-6)
    assert _first_step_ratio(release, "bn3") == pytest.approx(conv, abs=2e-6)


def test_keras_2_1_4_dense_factor_for_a_batch_of_128():
    """1.007882 in docs/fidelity.md's table of moving-variance factors."""
    assert 128 / (128 - 1.001) == pytest.approx(1.00788, abs=1e-5)
    assert moving_variance_factor("keras214", 128, 1e-3) == 128 / 126.999
    assert moving_variance_factor("biased", 128, 1e-3) == 1.0


def test_keras_2_1_2_plain_ema_and_biased_variance():
    cfg = compose_config(["keras=2.1.2"])
    g, _ = build_models(cfg.model)
    assert all(not bn.zero_debias and bn.moving_var == "biased" for bn in (g.bn1, g.bn2, g.bn3))
    assert cfg.optimizer.d.epsilon == cfg.optimizer.g.epsilon == 1e-8
    x = torch.randn(128, 4)
    bn = KerasBatchNorm(4, axis=-1, moving_var="biased", zero_debias=False)
    bn(x)  # plain EMA from the initial 0 / 1
    assert torch.allclose(bn.moving_variance, 0.99 + 0.01 * x.var(0, unbiased=False), atol=1e-7)
    assert torch.allclose(bn.moving_mean, 0.01 * x.mean(0), atol=1e-7)


def test_keras_release_sets_every_switch_and_single_switches_still_override():
    for release, debias, dense, conv, eps in (("2.1.2", False, "biased", "biased", 1e-8),
                                              ("2.1.3", True, "biased", "unbiased", 1e-7),
                                              ("2.1.4", True, "keras214", "unbiased_keras214", 1e-7)):
        cfg = compose_config([f"keras={release}", "+experiment=seed_coulomb_1"])
        assert cfg.keras.release == release
        assert (cfg.model.bn_zero_debias, str(cfg.model.bn_var_dense),
                str(cfg.model.bn_var_conv)) == (debias, dense, conv)
        assert cfg.optimizer.d.epsilon == cfg.optimizer.g.epsilon == eps
        assert cfg.optimizer.d.lr == 1e-3  # the preset's own values survive
    cfg = compose_config(["keras=2.1.4", "model.bn_var_conv=biased", "optimizer.g.epsilon=1e-3"])
    assert str(cfg.model.bn_var_conv) == "biased" and str(cfg.model.bn_var_dense) == "keras214"
    assert cfg.optimizer.g.epsilon == 1e-3 and cfg.optimizer.d.epsilon == 1e-7


def test_generator_bn_axis_switch():
    assert Generator(bn_axis="keras").bn3.weight.numel() == 14
    channel = Generator(bn_axis="channel").bn3
    assert channel.weight.numel() == 64 and channel.axis == 1


def test_keras_initialisation_glorot_uniform_and_zero_bias():
    torch.manual_seed(0)
    g, d = build_models(compose_config().model)
    for layer, fan_in, fan_out in [(g.fc2, 1024, 6272), (g.conv1, 128 * 25, 64 * 25),
                                   (d.conv1, 25, 64 * 25), (d.fc1, 3200, 256)]:
        limit = math.sqrt(6 / (fan_in + fan_out))
        w = layer.weight
        assert w.abs().max() <= limit and w.abs().max() > 0.95 * limit
        assert abs(w.var().item() - limit**2 / 3) < 0.1 * limit**2 / 3  # uniform variance
        assert torch.count_nonzero(layer.bias) == 0
    bn = g.bn2
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    assert torch.all(bn.moving_mean == 0) and torch.all(bn.moving_variance == 1)


def test_upsampling_is_nearest_neighbour_repeat():
    g = Generator()
    captured = {}
    g.conv1.register_forward_pre_hook(lambda m, args: captured.setdefault("x", args[0]))
    g.train()
    g(torch.rand(2, 100))
    x = captured["x"]
    assert x.shape == (2, 128, 14, 14)
    assert torch.equal(x[..., 0::2, 0::2], x[..., 1::2, 1::2])
    assert torch.equal(x[..., 0::2, :], x[..., 1::2, :])


def test_discriminator_dropout_is_inverted_and_only_in_training():
    torch.manual_seed(0)
    d = Discriminator()
    x = torch.randn(64, 1, 28, 28)
    d.eval()
    assert torch.equal(d(x), d(x))
    d.train()
    h = {}
    d.fc2.register_forward_pre_hook(lambda m, args: h.setdefault("x", args[0]))
    d(x)
    pre = F.leaky_relu(d.fc1(F.leaky_relu(d.conv2(F.leaky_relu(d.conv1(x), 0.2)), 0.2)
                             .flatten(1)), 0.2)
    kept = h["x"] != 0
    assert 0.4 < kept.float().mean() < 0.6
    assert torch.allclose(h["x"][kept], 2 * pre[kept], atol=1e-5)  # scaled by 1 / (1 - 0.5)


def test_leaky_relu_slope():
    d = Discriminator()
    assert d.leaky_slope == 0.2


class _Fixed(torch.nn.Module):
    """Stands in for D's second conv: returns ``out`` whatever its input."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_flatten_feeds_the_dense_layer_in_channels_first_order(impl):
    """Keras 2.1's Flatten reshapes the channels_first (N, 128, 5, 5) activations as stored,
    so Dense(256)'s input k is the value at channel k // 25, row k // 5 % 5, column k % 5
    (docs/fidelity.md, row 3). The conv output here holds 1 + its own (C, H, W) index
    (+ 3200 for the second sample), so the Dense input must be 1, 2, ..., 6400 in order; an
    (H, W, C) flatten would give 1, 26, 51, ... instead. The activations are stored
    channels_last (the fast D's layout), so flattening the memory order would show too."""
    _, d = build_models(compose_config([f"model.impl={impl}"]).model)
    d.eval()  # no dropout
    values = torch.arange(1, 2 * 3200 + 1, dtype=torch.float32)  # positive: LeakyReLU keeps them
    d.conv2 = _Fixed(values.view(2, 128, 5, 5).contiguous(memory_format=torch.channels_last))
    seen = []
    dense = type(d).dense

    def recording_dense(x, layer):
        seen.append((layer, x.detach().clone()))
        return dense(x, layer)

    d.dense = recording_dense
    assert d(torch.zeros(2, 1, 28, 28)).shape == (2, 1)
    (layer, dense_input), _ = seen  # fc1, then fc2
    assert layer is d.fc1 and dense_input.shape == (2, 3200)
    assert torch.equal(dense_input, values.view(2, 3200))
    c, y, x = 3, 1, 4  # one Dense unit that reads a single activation, end to end
    with torch.no_grad():
        d.fc1.weight.zero_()
        d.fc1.bias.zero_()
        d.fc1.weight[0, c * 25 + y * 5 + x] = 1.0
        d.fc2.weight.zero_()
        d.fc2.weight[0, 0] = 1.0
        d.fc2.bias.zero_()
    expected = values.view(2, 128, 5, 5)[:, c, y, x]
    assert torch.equal(d(torch.zeros(2, 1, 28, 28)).squeeze(1), expected)


def test_keras_batchnorm_zero_debiased_moving_averages():
    """Keras >= 2.1.3 (TF zero_debias): moving = EMA from zero / (1 - momentum^t)."""
    torch.manual_seed(0)
    bn = KerasBatchNorm(4, axis=-1, momentum=0.99, zero_debias=True)
    batches = [torch.randn(16, 4) * (i + 1) + i for i in range(3)]
    for x in batches:
        bn(x)
    weights = torch.tensor([0.99**2 * 0.01, 0.99 * 0.01, 0.01]) / (1 - 0.99**3)
    means = torch.stack([x.mean(0) for x in batches])
    variances = torch.stack([x.var(0, unbiased=False) for x in batches])
    assert torch.allclose(bn.moving_mean, (weights[:, None] * means).sum(0), atol=1e-5)
    assert torch.allclose(bn.moving_variance, (weights[:, None] * variances).sum(0), atol=1e-5)
    assert int(bn.debias_steps) == 3
    # after one step the moving statistics already equal the batch's (no pull toward 0 / 1)
    first = KerasBatchNorm(4, axis=-1, zero_debias=True)
    first(batches[2])
    assert torch.allclose(first.moving_mean, batches[2].mean(0), atol=1e-6)


def test_zero_debias_switch_reaches_every_generator_batchnorm():
    cfg = compose_config(["model.bn_zero_debias=true"]).model
    g, _ = build_models(cfg)
    assert all(bn.zero_debias for bn in (g.bn1, g.bn2, g.bn3))
