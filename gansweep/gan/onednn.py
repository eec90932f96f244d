"""An exact float32 linear layer on oneDNN for the CPU fast path (docs/performance.md).

On x86 CPUs torch's ``F.linear`` / ``addmm`` call MKL's SGEMM. On this project's machine
(AMD EPYC, AVX-512) oneDNN's float32 matmul, which torch ships for its fused CPU kernels
(``torch.ops.mkldnn._linear_pointwise``), is faster on the fast G's big layer
(128 x 1024 -> 6272: about 200 vs 140 GFLOP/s forward, 190 vs 155 for the input gradient,
175 vs 165 for the weight gradient, 2 threads). Both are IEEE float32 with float32
accumulation; they only sum in another order, so results agree to rounding, not to the bit.

``linear(x, layer)`` is ``layer(x)`` computed that way when it can be (float32 2-D input on the
CPU, no autocast, the op present in this torch build) and plain ``F.linear`` otherwise, so
float64 tests, bf16 autocast and CUDA take torch's own path. The backward pass is oneDNN too:

    y = x W^T + b      dx = dy W      dW = dy^T x      db = sum over the batch of dy
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

_OP = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)


def available() -> bool:
    """Whether this torch build has oneDNN's fused linear (CPU builds with mkldnn do)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return _OP is not None and _OP.default is not None
    except (AttributeError, RuntimeError):
        return False


AVAILABLE = available()

if AVAILABLE:  # so that FlopCounterMode (gansweep-bench's GFLOP/step) counts these matmuls
    from torch.utils.flop_counter import register_flop_formula

    @register_flop_formula(_OP)
    def _flops(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
        return 2 * math.prod(x_shape[:-1]) * x_shape[-1] * w_shape[0]


def _matmul_t(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b^T on oneDNN (a: (M, K), b: (N, K), any strides)."""
    return _OP(a, b, None, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _OP(x, weight, bias, "none", [], "")

    @staticmethod
    @once_differentiable  # oneDNN's op has no autograd formula: a double backward must raise
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = _matmul_t(grad, weight.t())  # dy W: W^T viewed as (K, N), no copy
        if ctx.needs_input_grad[1]:
            dw = _matmul_t(grad.t(), x.t())  # dy^T x
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = grad.sum(0)
        return dx, dw, db


def usable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``linear`` takes the oneDNN path for this input (else ``F.linear``)."""
    return (AVAILABLE and torch.backends.mkldnn.enabled and x.device.type == "cpu"
            and x.dtype == torch.float32 and weight.dtype == torch.float32 and x.dim() == 2
            and x.shape[0] > 0 and x.shape[1] > 0 and not torch.is_autocast_enabled("cpu"))


def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """``layer(x)``: oneDNN's float32 matmul on the CPU, ``F.linear`` elsewhere."""
    return linear_of(x, layer.weight, layer.bias)


def linear_of(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``: oneDNN's float32 matmul on the CPU, ``F.linear``
    elsewhere (a packed layer passes one run's slice of its stacked weights)."""
    if usable(x, weight):
        return _OneDNNLinear.apply(x, weight, bias)
    return F.linear(x, weight, bias)
