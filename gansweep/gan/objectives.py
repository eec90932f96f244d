"""GAN objectives: what D regresses on real+fake, and what G minimises through a frozen D.

``standard``: D is trained on targets [1]*n_real + [0]*n_fake, G against label 1, both with
Keras' binary_crossentropy applied to D's *raw* output (the seed has no sigmoid), which
clips the output to [1e-7, 1 - 1e-7] first; ``loss=logits`` is the modern BCE-with-logits.
``coulomb``: D regresses the kernel potential of every point with MSE; G minimises mean D.
Sources and switches of these Keras semantics: docs/fidelity.md, items 11, 12 and 17.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gansweep.gan.kernels import PlummerKernel

KERAS_EPSILON = 1e-7


def keras_binary_crossentropy(output: torch.Tensor, target: torch.Tensor,
                              epsilon: float = KERAS_EPSILON) -> torch.Tensor:
    """Keras 2.1 (TensorFlow) binary_crossentropy with from_logits=False, mean-reduced.

    The output is clipped to [eps, 1 - eps] and turned back into logits, so the gradient is
    exactly zero wherever the raw output lies outside that interval.
    """
    p = output.clamp(epsilon, 1.0 - epsilon)
    logits = torch.log(p / (1.0 - p))
    # tf.nn.sigmoid_cross_entropy_with_logits: max(x, 0) - x * z + log(1 + exp(-|x|))
    per_item = logits.clamp(min=0) - logits * target + torch.log1p(torch.exp(-logits.abs()))
    return per_item.mean(dim=-1).mean()


def bce_with_logits(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(output, target)


STANDARD_LOSSES = {"keras_bce": keras_binary_crossentropy, "logits": bce_with_logits}


class StandardGAN:
    """``gan_type=standard``. A GAN type is any class with ``d_targets``, ``d_loss``,
    ``g_loss`` and ``eps`` that a ``gan_type`` YAML names with ``_target_``."""

    def __init__(self, loss: str = "keras_bce", name: str = "standard"):
        self.name = name
        self.loss = STANDARD_LOSSES[str(loss)]

    def d_targets(self, real: torch.Tensor, fake: torch.Tensor, step: int) -> torch.Tensor:
        ones = torch.ones(real.shape[0], 1, device=real.device, dtype=real.dtype)
        zeros = torch.zeros(fake.shape[0], 1, device=fake.device, dtype=fake.dtype)
        return torch.cat([ones, zeros])

    def d_loss(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(output, targets)

    def g_loss(self, output_on_fakes: torch.Tensor) -> torch.Tensor:
        return self.loss(output_on_fakes, torch.ones_like(output_on_fakes))

    def eps(self, step: int) -> float:
        return math.nan  # no kernel: logged as null


class CoulombGAN:
    """``gan_type=coulomb``: its YAML passes the ``kernel`` group (``kernel: ${kernel}``),
    which ``instantiate`` builds first."""

    def __init__(self, kernel: PlummerKernel, name: str = "coulomb"):
        self.name = name
        self.kernel = kernel

    @torch.no_grad()
    def d_targets(self, real: torch.Tensor, fake: torch.Tensor, step: int) -> torch.Tensor:
        return self.kernel.potential(real, fake, step).unsqueeze(1)

    def d_loss(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (output - targets).square().mean(dim=-1).mean()  # Keras 'mse'

    def g_loss(self, output_on_fakes: torch.Tensor) -> torch.Tensor:
        return output_on_fakes.mean()  # the seed's loss: mean(D(G(z))), targets ignored

    def eps(self, step: int) -> float:
        return self.kernel.eps(step)

