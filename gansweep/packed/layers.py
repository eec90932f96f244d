"""Fused layers over N runs: each holds the N runs' parameters stacked on a leading run axis
and computes what the N single-run layers of ``gansweep.gan.models`` compute, in one call.

Activations are run-major, ``[N, B, ...]`` (run n's batch of B at index n), except inside
the convolution stacks, whose layout is the convolution implementation's own:

- ``grouped`` (``F.conv2d`` with ``groups=N``): batch-major ``[B, N, C, H, W]``, a view of
  the ``[B, N * C, H, W]`` a grouped convolution takes, stored channels_last (oneDNN's
  grouped convolutions are several times faster so on a CPU, cuDNN's are NHWC-native);
- ``bmm`` (``F.unfold`` + ``torch.baddbmm``): run-major ``[N, B, C, H, W]``;
- ``loop`` (one ``F.conv2d`` per run, the runs' weights unbound from the stack): run-major.
  N calls instead of one (a GPU pays N launches), but each is the single run's own
  convolution, which a CPU's oneDNN runs faster than the grouped one at batch 128. A
  network packed with ``loop`` runs every layer this way (``runs``: a list of the runs'
  activations in, a list out, each run's tensor in the layout its single run has), so no
  activation is stacked or split between layers; only its BatchNorm statistics and
  moving averages are stacked, and its optimiser, losses and streams are the pack's.

Which is fastest depends on the device and the sizes (``gansweep-bench --pack``); all give
each run the numbers of its single-run layer up to float32 summation order. A network moves
its activations into a convolution stack's layout with ``to_layout`` and back with
``from_layout``; ``PackedBatchNorm`` takes the position of the run axis (``run_dim``).

Every layer is built from the N single-run layers, their parameters and
buffers stacked, so a pack starts where its N runs start.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gansweep.gan import onednn
from gansweep.gan.models import _FOLD, KerasBatchNorm, SameConv2d, fold_upsample_conv_weight

CONV_IMPLS = ("grouped", "bmm", "loop")


def _stacked(tensors) -> nn.Parameter:
    return nn.Parameter(torch.stack([t.detach() for t in tensors]).contiguous())


def _same(layers, attribute: str):
    """The value of ``attribute`` all ``layers`` share (a pack has one architecture)."""
    values = {repr(getattr(layer, attribute)) for layer in layers}
    if len(values) != 1:
        raise ValueError(f"error: the runs' {type(layers[0]).__name__}.{attribute} differ "
                         f"({sorted(values)}); runs of one pack share one architecture. "
                         "Fix: pack runs with equal model settings together")
    return getattr(layers[0], attribute)


class PackedLinear(nn.Module):
    """N ``nn.Linear`` layers: ``[N, B, in] -> [N, B, out]`` as one ``baddbmm``. ``weight``
    is ``[N, out, in]`` and ``bias`` ``[N, out]`` (run n's ``nn.Linear`` state at index n)."""

    def __init__(self, layers: list[nn.Linear]):
        super().__init__()
        for layer in layers:
            if layer.bias is None:
                raise ValueError("error: a Linear without bias cannot be packed. "
                                 "Fix: use bias=True, as every gansweep model does")
        _same(layers, "in_features")
        _same(layers, "out_features")
        self.weight = _stacked(layer.weight for layer in layers)
        self.bias = _stacked(layer.bias for layer in layers)

    def runs(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each run's ``[B, in]`` through its own layer: on the CPU oneDNN's float32 matmul,
        as the fast single run's dense layers (``gansweep.gan.onednn``)."""
        return [onednn.linear_of(x, w, b) for x, w, b in
                zip(xs, self.weight.unbind(0), self.bias.unbind(0))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (W x^T)^T rather than x W^T: the weight's gradient, dy^T x, then comes out in the
        # weight's own layout (no transposing copy of the largest tensors per step)
        return torch.baddbmm(self.bias.unsqueeze(2), self.weight, x.transpose(1, 2)).transpose(1, 2)

    def extra_repr(self) -> str:
        n, out_f, in_f = self.weight.shape
        return f"runs={n}, in_features={in_f}, out_features={out_f}"


class PackedConv2d(nn.Module):
    """N ``nn.Conv2d`` / ``SameConv2d`` layers (TensorFlow 'same' zero padding, possibly
    asymmetric: ``F.pad`` first as ``SameConv2d`` does where it is, the convolution's own
    padding where it is symmetric, the same zeros). ``weight`` is
    ``[N, out, in, k, k]``, ``bias`` ``[N, out]``; ``impl`` is one of ``CONV_IMPLS`` and
    fixes the layout of the activations it takes and gives (module docstring)."""

    def __init__(self, layers: list[nn.Conv2d], impl: str = "grouped"):
        super().__init__()
        if impl not in CONV_IMPLS:
            raise ValueError(f"error: conv_impl={impl!r} is not one of {list(CONV_IMPLS)}. "
                             "Fix: choose one of those")
        for attribute in ("in_channels", "out_channels", "kernel_size", "stride", "padding",
                          "dilation", "groups", "padding_mode"):
            _same(layers, attribute)
        first = layers[0]
        if first.groups != 1 or first.dilation != (1, 1) or first.padding_mode != "zeros" \
                or first.bias is None or first.kernel_size[0] != first.kernel_size[1]:
            raise ValueError(f"error: {first} cannot be packed (only square, undilated, "
                             "ungrouped convolutions with a bias). Fix: pack gansweep's models")
        if isinstance(first, SameConv2d):
            self.pad = _same(layers, "pad")
        elif isinstance(first.padding, str):
            raise ValueError(f"error: padding={first.padding!r} cannot be packed. "
                             "Fix: use SameConv2d or numeric padding")
        else:  # nn.Conv2d's symmetric padding, in F.pad's order (W left/right, H top/bottom)
            ph, pw = first.padding
            self.pad = (pw, pw, ph, ph)
        self.impl = impl
        self.kernel, self.stride = first.kernel_size[0], first.stride
        self.weight = _stacked(layer.weight for layer in layers)
        self.bias = _stacked(layer.bias for layer in layers)
        self.register_buffer("fold", torch.tensor(_FOLD, dtype=torch.float32), persistent=False)

    # ------------------------------------------------------------------ layouts
    @property
    def run_dim(self) -> int:
        """Where the run axis sits in this stack's activations."""
        return 1 if self.impl == "grouped" else 0

    def to_layout(self, x: torch.Tensor) -> torch.Tensor:
        """Run-major ``[N, B, C, H, W]`` into this implementation's layout."""
        if self.impl != "grouped":
            return x
        n, b, c, h, w = x.shape
        x = x.transpose(0, 1).reshape(b, n * c, h, w)
        return x.contiguous(memory_format=torch.channels_last).view(b, n, c, h, w)

    def from_layout(self, x: torch.Tensor) -> torch.Tensor:
        """This implementation's layout back to run-major ``[N, B, ...]`` (a view)."""
        return x.transpose(0, 1) if self.impl == "grouped" else x

    # ------------------------------------------------------------------ compute
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv(x, self.weight, self.bias, self.stride, self.pad, self.kernel)

    def runs(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each run's ``[B, C, H, W]`` through its own convolution (any memory format: oneDNN
        keeps channels_last)."""
        return self._conv_runs(xs, self.weight, self.bias, self.stride, self.pad)

    def upsample_conv_runs(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """``upsample_conv`` run by run: each run's folded 3x3 convolution and pixel shuffle,
        as ``gansweep.gan.models.upsample_conv``; the N kernels folded in one call."""
        weight, bias = self._folded()
        return [F.pixel_shuffle(y, 2) for y in
                self._conv_runs(xs, weight, bias, (1, 1), (1, 1, 1, 1))]

    def _folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The N runs' folded 3x3 kernels ``[N, 4 out, in, 3, 3]`` and biases ``[N, 4 out]``."""
        n, out_ch, in_ch = self.weight.shape[:3]
        assert self.kernel == 5 and self.stride == (1, 1) and self.pad == (2, 2, 2, 2)
        weight = fold_upsample_conv_weight(self.weight.reshape(n * out_ch, in_ch, 5, 5),
                                           self.fold.to(self.weight.dtype))
        # run n's 4 * out channels in order
        return weight.view(n, 4 * out_ch, in_ch, 3, 3), self.bias.repeat_interleave(4, dim=1)

    def upsample_conv(self, x: torch.Tensor) -> torch.Tensor:
        """``self(upsample2(x))`` for a stride-1 5x5 'same' convolution, computed as
        ``gansweep.gan.models.upsample_conv`` does (``impl=fast``): a 3x3 convolution with the
        folded kernel, then pixel shuffle."""
        out_ch = self.weight.shape[1]
        weight, bias = self._folded()
        y = self._conv(x, weight, bias, (1, 1), (1, 1, 1, 1), 3)
        # axes 1 and 2 (runs and channels, or batch and channels) merge without a copy in
        # both layouts; pixel shuffle takes each 4 consecutive channels, one run's at a time
        lead = y.shape[1], out_ch
        return F.pixel_shuffle(y.flatten(1, 2), 2).unflatten(1, lead)

    @staticmethod
    def _conv2d(x, weight, bias, stride, pad, groups=1) -> torch.Tensor:
        """A convolution with TF-'same' zero padding: the convolution's own where it is
        symmetric (no padded copy), F.pad first where 'same' pads one pixel more after."""
        if pad[0] == pad[1] and pad[2] == pad[3]:
            return F.conv2d(x, weight, bias, stride=stride, padding=(pad[2], pad[0]),
                            groups=groups)
        return F.conv2d(F.pad(x, pad), weight, bias, stride=stride, groups=groups)

    def _conv_runs(self, xs, weight, bias, stride, pad) -> list[torch.Tensor]:
        # unbind: one gradient op for the stacked weights, not N copies
        return [self._conv2d(x, w, b, stride, pad) for x, w, b in
                zip(xs, weight.unbind(0), bias.unbind(0))]

    def _conv(self, x, weight, bias, stride, pad, kernel) -> torch.Tensor:
        n, out_ch = weight.shape[:2]
        if self.impl == "grouped":  # x: [B, N, C, H, W]
            b = x.shape[0]
            y = self._conv2d(x.reshape(b, -1, *x.shape[-2:]), weight.flatten(0, 1),
                             bias.flatten(), stride, pad, groups=n)
            return y.view(b, n, out_ch, *y.shape[-2:])
        if self.impl == "loop":  # x: [N, B, C, H, W]
            return torch.stack(self._conv_runs(list(x.unbind(0)), weight, bias, stride, pad))
        # bmm, x: [N, B, C, H, W]: every run's patches as rows, one matrix product per run
        b, (h, w) = x.shape[1], x.shape[-2:]
        flat = x.flatten(0, 1)
        flat = F.pad(flat, pad) if any(pad) else flat
        cols = F.unfold(flat, kernel, stride=stride)  # [N B, C k k, L]
        out_h = (h + pad[2] + pad[3] - kernel) // stride[0] + 1
        out_w = (w + pad[0] + pad[1] - kernel) // stride[1] + 1
        cols = cols.view(n, b, cols.shape[1], -1).transpose(2, 3).reshape(n, -1, cols.shape[1])
        y = torch.baddbmm(bias.unsqueeze(1), cols, weight.flatten(2).transpose(1, 2))
        return y.view(n, b, out_h, out_w, out_ch).permute(0, 1, 4, 2, 3)

    def extra_repr(self) -> str:
        n, out_ch, in_ch, k, _ = self.weight.shape
        return (f"runs={n}, {in_ch}, {out_ch}, kernel_size={k}, stride={self.stride}, "
                f"pad={self.pad}, impl={self.impl}")


def upsample2(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour upsampling x2 of the last two axes of ``[A, B, C, H, W]`` (either
    layout: axes 1 and 2 merge without a copy in both, channels_last kept)."""
    lead = x.shape[1:3]
    return F.interpolate(x.flatten(1, 2), scale_factor=2, mode="nearest").unflatten(1, lead)


class PackedBatchNorm(nn.Module):
    """N ``KerasBatchNorm`` layers (``gansweep.gan.models``): each run normalises with its own
    batch statistics in training and its own moving statistics in inference, and updates its
    own moving statistics by the same rules (plain EMA, or TF's zero-debiased one with a
    per-run step count). ``weight``, ``bias`` and the moving statistics are ``[N, F]``,
    ``debias_steps`` is ``[N]``.

    The single layer's ``axis`` counts the axes of one run's input; ``forward`` takes the
    position of the run axis in the packed input (``run_dim``: 0 run-major, 1 batch-major)."""

    def __init__(self, layers: list[KerasBatchNorm]):
        super().__init__()
        for attribute in ("axis", "momentum", "epsilon", "moving_var", "zero_debias"):
            _same(layers, attribute)
        first = layers[0]
        self.axis, self.momentum, self.epsilon = first.axis, first.momentum, first.epsilon
        self.moving_var, self.zero_debias = first.moving_var, first.zero_debias
        self.weight = _stacked(layer.weight for layer in layers)
        self.bias = _stacked(layer.bias for layer in layers)
        names = ["moving_mean", "moving_variance"]
        if self.zero_debias:
            names += ["biased_mean", "biased_variance", "debias_steps"]
        for name in names:
            self.register_buffer(name, torch.stack([getattr(layer, name) for layer in layers]))

    def _feature_dim(self, ndim: int, run_dim: int) -> int:
        single = self.axis % (ndim - 1)  # the axis in one run's input
        return single + 1 if single >= run_dim else single

    def forward(self, x: torch.Tensor, run_dim: int = 0) -> torch.Tensor:
        if x.dtype in (torch.bfloat16, torch.float16):  # under autocast, as KerasBatchNorm
            x = x.float()
        feature = self._feature_dim(x.ndim, run_dim)
        if self.training:
            dims = [d for d in range(x.ndim) if d not in (run_dim, feature)]
            mean = x.mean(dim=dims)  # [N, F]: run_dim < feature always
            var = x.var(dim=dims, unbiased=False)
            KerasBatchNorm.update_moving(self, mean, var, x.numel() // mean.numel())
        else:
            mean, var = self.moving_mean, self.moving_variance
        scale = self.weight * torch.rsqrt(var + self.epsilon)
        shift = self.bias - mean * scale
        shape = [1] * x.ndim
        shape[run_dim], shape[feature] = scale.shape
        return x * scale.view(shape) + shift.view(shape)

    def runs(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each run's input (its single run's shape) normalised as ``KerasBatchNorm`` does,
        with its own statistics; the moving statistics of all runs updated in one go."""
        if xs[0].dtype in (torch.bfloat16, torch.float16):  # under autocast
            xs = [x.float() for x in xs]
        ndim = xs[0].ndim
        feature = self.axis % ndim
        if self.training:
            dims = [d for d in range(ndim) if d != feature]
            mean = torch.stack([x.mean(dim=dims) for x in xs])
            var = torch.stack([x.var(dim=dims, unbiased=False) for x in xs])
            KerasBatchNorm.update_moving(self, mean, var, xs[0].numel() // mean.shape[1])
        else:
            mean, var = self.moving_mean, self.moving_variance
        scale = self.weight * torch.rsqrt(var + self.epsilon)
        shift = self.bias - mean * scale
        shape = [1] * ndim
        shape[feature] = -1
        return [x * a.view(shape) + c.view(shape) for x, a, c in
                zip(xs, scale.unbind(0), shift.unbind(0))]

    def _zero_debiased_update(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        """``KerasBatchNorm._zero_debiased_update`` per run: each run's own step count.
        The correction is taken to float32 before dividing, as the single layer's 0-d
        float64 correction is (a 0-d tensor does not promote a float32 one)."""
        self.debias_steps += 1
        correction = 1.0 - torch.pow(self.momentum, self.debias_steps.to(torch.float64))
        correction = correction.to(mean.dtype).unsqueeze(1)
        for biased, moving, value in ((self.biased_mean, self.moving_mean, mean),
                                      (self.biased_variance, self.moving_variance, var)):
            biased.mul_(self.momentum).add_((1 - self.momentum) * value)
            moving.copy_(biased / correction)

    def extra_repr(self) -> str:
        n, f = self.weight.shape
        return f"runs={n}, {f}, axis={self.axis}, momentum={self.momentum}, eps={self.epsilon}"


class PackedDropout(nn.Module):
    """N ``RunDropout`` layers of one p, on masks drawn outside (``gansweep.packed.streams``:
    each run's masks from its own generator, as the run alone draws them). In training,
    ``forward(x, mask)`` is ``x * mask`` with ``mask`` shaped like ``x``, scaled by
    1 / (1 - p) as ``RunDropout.mask`` gives it; in inference, or with p = 0, ``x``."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:  # as RunDropout: everything dropped, no draw
            return x * torch.zeros((), dtype=x.dtype, device=x.device)
        if mask is None:
            raise ValueError("error: a packed Dropout in training got no mask. Fix: pass the "
                             "masks of PackedStreams.masks() to the step")
        return x * mask

    def runs(self, xs: list[torch.Tensor], mask: torch.Tensor | None) -> list[torch.Tensor]:
        """``forward`` for each run's ``[B, F]``, on its slice of the ``[N, B, F]`` masks."""
        if not self.training or self.p == 0.0 or self.p == 1.0:
            return [self(x, None) for x in xs]
        if mask is None:
            self(xs[0], None)  # the error
        return [x * m for x, m in zip(xs, mask.unbind(0))]

    def extra_repr(self) -> str:
        return f"p={self.p}"
