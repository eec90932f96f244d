"""The seed's generator and discriminator, with Keras 2.1 layer semantics (docs/fidelity.md).

Each Keras-specific behaviour is a small, separately testable piece:
``tf_same_padding`` (TensorFlow's asymmetric 'same'), ``KerasBatchNorm`` (momentum 0.99,
epsilon 1e-3, any axis, moving statistics per Keras release) and ``keras_init_`` (glorot_uniform
weights, zero biases). The networks are built from them by the ``GAN`` subclasses that
``model`` configs name.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from gansweep.gan import onednn
from gansweep.gan.rng import RunDropout, built_from, use_generator  # noqa: F401 - re-exported


# ----------------------------------------------------------------------------- layers
# The factor the biased batch variance (what the layer normalises with) carries into the
# moving variance, for n values per feature:
#   biased             1                                 tf.nn.moments (Keras 2.1.2; 2-D in 2.1.3)
#   unbiased           n / (n - 1)                       tf.nn.fused_batch_norm's returned
#                                                        variance (4-D inputs, Keras >= 2.1.3)
#   keras214           n / (n - (1 + epsilon))           BatchNormalization.call, Keras >= 2.1.4
#                                                        (keras PR 9028, issue 8982)
#   unbiased_keras214  n / (n - 1) * n / (n - (1 + eps)) both: 4-D inputs in Keras 2.1.4
MOVING_VAR_RULES = ("biased", "unbiased", "keras214", "unbiased_keras214")


def moving_variance_factor(rule: str, n: int, epsilon: float) -> float:
    """The factor of ``rule`` (see MOVING_VAR_RULES) for n values per feature."""
    factor = 1.0
    if rule in ("unbiased", "unbiased_keras214"):
        factor *= n / (n - 1)
    if rule in ("keras214", "unbiased_keras214"):
        factor *= n / (n - (1.0 + epsilon))
    return factor


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding TensorFlow's 'same' uses on one axis: the odd pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'same' padding for a fixed input size (may be asymmetric)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, in_size: int):
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=0)
        before, after = tf_same_padding(in_size, kernel, stride)
        self.pad = (before, after, before, after)  # F.pad order: W_left, W_right, H_top, H_bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))


class KerasBatchNorm(nn.Module):
    """Keras 2.1 BatchNormalization over one axis of the input.

    Statistics are taken over every axis except ``axis``; Keras' default ``axis=-1`` after a
    channels_first conv therefore normalises image columns, not channels (the seed's quirk).
    Moving statistics: with ``zero_debias`` (Keras >= 2.1.3, through TF's
    assign_moving_average) the EMA is kept from zero and divided by 1 - momentum^t, so the
    initial 0 / 1 are forgotten at once; without it (Keras <= 2.1.2) a plain EMA,
    moving = momentum * moving + (1 - momentum) * batch. ``moving_var`` names the factor the
    batch variance carries into the moving average (``moving_variance_factor``): it depends on
    the Keras release and on whether the layer's input went through TF's fused batch norm
    (docs/fidelity.md, "BatchNorm moving statistics by Keras release").
    """

    def __init__(self, num_features: int, axis: int = -1, momentum: float = 0.99,
                 epsilon: float = 1e-3, moving_var: str = "biased", zero_debias: bool = False):
        super().__init__()
        if moving_var not in MOVING_VAR_RULES:
            raise ValueError(f"moving_var={moving_var!r}: expected one of {sorted(MOVING_VAR_RULES)}")
        self.axis, self.momentum, self.epsilon = axis, momentum, epsilon
        self.moving_var, self.zero_debias = moving_var, zero_debias
        self.weight = nn.Parameter(torch.ones(num_features))  # gamma
        self.bias = nn.Parameter(torch.zeros(num_features))  # beta
        self.register_buffer("moving_mean", torch.zeros(num_features))
        self.register_buffer("moving_variance", torch.ones(num_features))
        if zero_debias:  # TensorFlow's hidden "biased" and "local_step" variables
            self.register_buffer("biased_mean", torch.zeros(num_features))
            self.register_buffer("biased_variance", torch.zeros(num_features))
            self.register_buffer("debias_steps", torch.zeros((), dtype=torch.long))

    def _broadcast(self, v: torch.Tensor, ndim: int) -> torch.Tensor:
        shape = [1] * ndim
        shape[self.axis] = -1
        return v.view(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in (torch.bfloat16, torch.float16):  # under autocast (trainer.precision):
            x = x.float()  # statistics, moving averages and the affine map in float32
        if self.training:
            dims = [d for d in range(x.ndim) if d != self.axis % x.ndim]
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, unbiased=False)
            self.update_moving(mean, var, x.numel() // x.shape[self.axis])
        else:
            mean, var = self.moving_mean, self.moving_variance
        scale = self.weight * torch.rsqrt(var + self.epsilon)
        shift = self.bias - mean * scale
        return x * self._broadcast(scale, x.ndim) + self._broadcast(shift, x.ndim)

    @torch.no_grad()
    def update_moving(self, mean: torch.Tensor, var: torch.Tensor, n: int) -> None:
        """The moving statistics after a batch of n values per feature with this mean and
        (biased) variance: zero-debiased or a plain EMA, the variance carried by the layer's
        ``moving_var`` rule. Shared with the packed layer (``gansweep.packed.layers``), whose
        statistics carry a leading run axis."""
        moving_var = var * moving_variance_factor(self.moving_var, n, self.epsilon)
        if self.zero_debias:
            self._zero_debiased_update(mean, moving_var)
        else:
            self.moving_mean.mul_(self.momentum).add_((1 - self.momentum) * mean)
            self.moving_variance.mul_(self.momentum).add_((1 - self.momentum) * moving_var)

    def _zero_debiased_update(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        """TF's assign_moving_average(zero_debias=True), which Keras >= 2.1.3 uses: an EMA
        from zero divided by 1 - momentum^t, so the initial 0 / 1 are forgotten at once.
        momentum^t is computed on the device in float64 (the value Python's float power gives)
        so that reading t needs no host synchronisation."""
        self.debias_steps += 1
        correction = 1.0 - torch.pow(self.momentum, self.debias_steps.to(torch.float64))
        for biased, moving, value in ((self.biased_mean, self.moving_mean, mean),
                                      (self.biased_variance, self.moving_variance, var)):
            biased.mul_(self.momentum).add_((1 - self.momentum) * value)
            moving.copy_(biased / correction)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, axis={self.axis}, momentum={self.momentum}, eps={self.epsilon}"


def keras_init_(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """glorot_uniform weights (conv fans = channels * kh * kw), zero biases, like Keras,
    drawn from ``generator`` (None: torch's global RNG)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(layer.weight, generator=generator)
            nn.init.zeros_(layer.bias)


# ----------------------------------------------------------------------------- networks
class Generator(nn.Module):
    """z (N, 100) -> image (N, 1, 28, 28) in [-1, 1]."""

    def __init__(self, latent_dim: int = 100, bn_axis: str = "keras", bn_momentum: float = 0.99,
                 bn_epsilon: float = 1e-3, bn_var_dense: str = "biased",
                 bn_var_conv: str = "unbiased", bn_zero_debias: bool = True):
        super().__init__()
        bn = dict(momentum=bn_momentum, epsilon=bn_epsilon, zero_debias=bn_zero_debias)
        # bn1, bn2 see 2-D inputs; bn3 a 4-D one, which Keras >= 2.1.3 sends through TF's
        # fused batch norm: hence a moving-variance rule per layer kind.
        self.fc1 = nn.Linear(latent_dim, 1024)
        self.bn1 = KerasBatchNorm(1024, axis=-1, moving_var=bn_var_dense, **bn)
        self.fc2 = nn.Linear(1024, 128 * 7 * 7)
        self.bn2 = KerasBatchNorm(128 * 7 * 7, axis=-1, moving_var=bn_var_dense, **bn)
        self.conv1 = SameConv2d(128, 64, 5, stride=1, in_size=14)
        # Keras' default axis=-1 on (N, 64, 14, 14) channels_first: 14 image-column features.
        self.bn3 = (KerasBatchNorm(14, axis=-1, moving_var=bn_var_conv, **bn) if bn_axis == "keras"
                    else KerasBatchNorm(64, axis=1, moving_var=bn_var_conv, **bn))
        self.conv2 = SameConv2d(64, 1, 5, stride=1, in_size=28)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.fc1(z)))
        h = F.relu(self.bn2(self.fc2(h))).view(-1, 128, 7, 7)
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = F.relu(self.bn3(self.conv1(h)))
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        return torch.tanh(self.conv2(h))


# ----------------------------------------------------------------------------- fast path
# Nearest-upsample x2 followed by a stride-1 5x5 conv with 'same' padding 2/2 is exactly a
# 3x3 conv (padding 1) on the low-resolution input with 4x the output channels, followed by
# pixel shuffle. Output pixel Y = 2p + a (parity a) with tap i (0..4) reads upsampled row
# Y + i - 2, i.e. low-res row p + floor((a + i - 2) / 2): for a = 0 the taps i = 0..4 land
# on low-res offsets (-1, -1, 0, 0, +1), for a = 1 on (-1, 0, 0, +1, +1). An upsampled row
# lies outside the image exactly when its low-res row does, so zero padding 1 on the
# low-res grid matches zero padding 2 on the upsampled grid. ``_FOLD[a, r, i]`` is 1 where
# tap i lands on offset r - 1 (rows and columns alike).
_FOLD = (((1, 1, 0, 0, 0), (0, 0, 1, 1, 0), (0, 0, 0, 0, 1)),
         ((1, 0, 0, 0, 0), (0, 1, 1, 0, 0), (0, 0, 0, 1, 1)))


def fold_upsample_conv_weight(weight: torch.Tensor, fold: torch.Tensor | None = None) -> torch.Tensor:
    """(O, I, 5, 5) kernel of upsample-x2 + 5x5 'same' conv -> (4 O, I, 3, 3) kernel.

    Output channel ``4 o + 2 a + b`` holds the sub-kernel for output parity (a, b) of channel
    o, the order ``F.pixel_shuffle(., 2)`` expects. Differentiable in ``weight``.
    """
    if fold is None:
        fold = torch.tensor(_FOLD, dtype=weight.dtype, device=weight.device)
    out_ch, in_ch = weight.shape[:2]
    # left to right, as torch contracts without opt_einsum: with opt_einsum installed (e.g.
    # pulled in by TensorFlow) torch would pick another contraction order, and the same seed
    # would give other float32 numbers depending on what else is installed
    # (torch's flags() cannot nest a second disable: only switch it off when it is on)
    if torch.backends.opt_einsum.enabled:
        with torch.backends.opt_einsum.flags(enabled=False):
            folded = torch.einsum("ari,bsj,ocij->oabcrs", fold, fold, weight)
    else:
        folded = torch.einsum("ari,bsj,ocij->oabcrs", fold, fold, weight)
    return folded.reshape(4 * out_ch, in_ch, 3, 3)


def upsample_conv(x: torch.Tensor, conv: SameConv2d, fold: torch.Tensor) -> torch.Tensor:
    """``conv(F.interpolate(x, scale_factor=2))`` for a stride-1 5x5 'same' ``conv``, in
    about 25/9 fewer multiply-adds and without the upsampled copy."""
    weight = fold_upsample_conv_weight(conv.weight, fold)
    bias = conv.bias.repeat_interleave(4) if conv.bias is not None else None
    return F.pixel_shuffle(F.conv2d(x, weight, bias, padding=1), 2)


class FastGenerator(Generator):
    """The same network and the same parameters as ``Generator`` (interchangeable
    state_dicts), computed faster: the two upsample + 5x5 conv pairs run as folded 3x3
    convs + pixel shuffle (kernels folded from the 5x5 weights on every forward, so the
    gradients reach the original parameters), on channels_last activations; on a CPU the
    dense layers run on oneDNN's float32 matmul (``gansweep.gan.onednn``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for conv in (self.conv1, self.conv2):
            assert conv.kernel_size == (5, 5) and conv.stride == (1, 1) and conv.pad == (2, 2, 2, 2)
        self.register_buffer("fold", torch.tensor(_FOLD, dtype=torch.float32), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # oneDNN's float32 matmul, faster than MKL's here on the 1024 -> 6272 layer
        h = F.relu(self.bn1(onednn.linear(z, self.fc1)))
        h = F.relu(self.bn2(onednn.linear(h, self.fc2))).view(-1, 128, 7, 7)
        h = h.contiguous(memory_format=torch.channels_last)  # faster oneDNN convolutions
        h = F.relu(self.bn3(upsample_conv(h, self.conv1, self.fold)))
        return torch.tanh(upsample_conv(h, self.conv2, self.fold))


class Discriminator(nn.Module):
    """image (N, 1, 28, 28) -> raw score (N, 1); no sigmoid for either GAN type."""

    def __init__(self, leaky_slope: float = 0.2, dropout: float = 0.5):
        super().__init__()
        self.leaky_slope = leaky_slope
        self.conv1 = SameConv2d(1, 64, 5, stride=2, in_size=28)  # pads 1 before, 2 after
        self.conv2 = nn.Conv2d(64, 128, 5, stride=2)  # 'valid': 14 -> 5
        self.fc1 = nn.Linear(128 * 5 * 5, 256)
        self.dropout = RunDropout(dropout)  # inverted dropout, as Keras, on the run's stream
        self.fc2 = nn.Linear(256, 1)

    @staticmethod
    def dense(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
        return layer(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv1(x), self.leaky_slope)
        h = F.leaky_relu(self.conv2(h), self.leaky_slope).flatten(1)  # (C, H, W) order
        h = self.dropout(F.leaky_relu(self.dense(h, self.fc1), self.leaky_slope))
        return self.dense(h, self.fc2)


class FastDiscriminator(Discriminator):
    """The same network and parameters as ``Discriminator``: conv weights stored channels_last
    (``DCGAN``) and, on a CPU, the dense layers on oneDNN's float32 matmul (``gansweep.gan.onednn``)."""

    dense = staticmethod(onednn.linear)


class MLP(nn.Sequential):
    """Fully connected net for low-dimensional data: ``layers`` hidden layers of ``hidden``."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, layers: int, activation):
        blocks, width = [], in_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), activation()]
            width = hidden
        super().__init__(*blocks, nn.Linear(width, out_dim))


class GAN(nn.Module):
    """A generator and its discriminator, built together by one ``model`` config.

    The ``model`` group's YAML names a subclass with ``_target_`` and passes its keys as
    keyword arguments (``hydra.utils.instantiate``); the trainer uses ``generator``,
    ``discriminator`` and ``latent_dim``. A user's own architecture is one subclass plus one
    YAML (README, "Extending").
    """

    # one sample's shape, what G makes and D takes (None: not said); a run refuses a dataset
    # of another shape in one line (gansweep.gan.state.RunState)
    sample_shape: tuple[int, ...] | None = None

    def __init__(self, generator: nn.Module, discriminator: nn.Module, latent_dim: int):
        super().__init__()
        self.generator, self.discriminator, self.latent_dim = generator, discriminator, latent_dim


class DCGAN(GAN):
    """``model=dcgan_mnist``: the seed's G and D with Keras 2.1 semantics. ``impl=fast`` is the
    same network computed faster (``FastGenerator``, ``FastDiscriminator``).

    ``generator``: the run's own stream for the initial weights (and afterwards, in the run,
    its Dropout masks); None draws from torch's global RNG. Seeded alike, both give the
    same weights."""

    sample_shape = (1, 28, 28)

    def __init__(self, latent_dim: int = 100, impl: str = "reference", bn_axis: str = "keras",
                 bn_momentum: float = 0.99, bn_epsilon: float = 1e-3,
                 bn_var_dense: str = "biased", bn_var_conv: str = "unbiased",
                 bn_zero_debias: bool = True, leaky_slope: float = 0.2, dropout: float = 0.5,
                 init: str = "keras", name: str = "dcgan_mnist",
                 generator: torch.Generator | None = None):
        fast = str(impl) == "fast"
        # construction order (G, D, then their initialisation) fixes what the stream gives
        # each weight: it is part of "same seed, same numbers"
        g, d = built_from(lambda: (
            (FastGenerator if fast else Generator)(latent_dim, str(bn_axis), bn_momentum,
                                                   bn_epsilon, str(bn_var_dense),
                                                   str(bn_var_conv), bn_zero_debias),
            (FastDiscriminator if fast else Discriminator)(leaky_slope, dropout)), generator)
        if str(init) == "keras":
            keras_init_(g, generator)
            keras_init_(d, generator)
        if fast:  # the same D, its conv weights stored channels_last (layout only)
            d = d.to(memory_format=torch.channels_last)
        super().__init__(g, d, latent_dim)


class MLPGAN(GAN):
    """``model=mlp``: G with ReLU, D with LeakyReLU and a raw output, for 2-D mixtures
    (``generator`` as in ``DCGAN``)."""

    def __init__(self, latent_dim: int = 16, data_dim: int = 2, hidden: int = 128,
                 layers: int = 3, leaky_slope: float = 0.2, init: str = "keras",
                 impl: str = "fast", name: str = "mlp",
                 generator: torch.Generator | None = None):
        g, d = built_from(lambda: (MLP(latent_dim, data_dim, hidden, layers, nn.ReLU),
                               MLP(data_dim, 1, hidden, layers,
                                   lambda: nn.LeakyReLU(leaky_slope))), generator)
        if str(init) == "keras":
            keras_init_(g, generator)
            keras_init_(d, generator)
        super().__init__(g, d, latent_dim)
        self.sample_shape = (data_dim,)


def build_models(cfg) -> tuple[nn.Module, nn.Module]:
    """(generator, discriminator) of a ``model`` config (any ``_target_``)."""
    gan = instantiate(cfg)
    return gan.generator, gan.discriminator


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable parameters, BatchNorm moving statistics): Keras' trainable and
    non-trainable weight counts. Helpers Keras keeps outside the layer's weights (TF's
    zero-debias accumulators, the fast G's fold table) are not counted."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    buffers = sum(b.numel() for name, b in module.named_buffers()
                  if name.endswith(("moving_mean", "moving_variance")))
    return trainable, buffers
