"""A user's own model and GAN type, defined outside the gansweep package (README, "Extending").

    PYTHONPATH=examples/extending gansweep-train --config-dir examples/extending/conf \
        +experiment=mixture_standard model=spectral_mlp gan_type=lsgan

Each is one class here plus one YAML under conf/ that names it with ``_target_``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gansweep.gan.models import GAN, MLP, keras_init_


class SpectralMLPGAN(GAN):
    """The mixtures' MLP G and D, with spectral normalisation on every layer of D
    (Miyato et al. 2018): D's Lipschitz constant stays near 1, a common fix for mode collapse."""

    def __init__(self, latent_dim: int = 16, data_dim: int = 2, hidden: int = 128,
                 layers: int = 3, leaky_slope: float = 0.2):
        g = MLP(latent_dim, data_dim, hidden, layers, nn.ReLU)
        d = MLP(data_dim, 1, hidden, layers, lambda: nn.LeakyReLU(leaky_slope))
        keras_init_(g)
        keras_init_(d)
        for layer in d:
            if isinstance(layer, nn.Linear):
                nn.utils.parametrizations.spectral_norm(layer)
        super().__init__(g, d, latent_dim)


class LeastSquaresGAN:
    """LSGAN (Mao et al. 2017): D regresses 1 on real and 0 on fake points with the mean
    squared error; G minimises (D(G(z)) - 1)^2. The four methods are what the loop calls."""

    def __init__(self, name: str = "lsgan"):
        self.name = name

    def d_targets(self, real: torch.Tensor, fake: torch.Tensor, step: int) -> torch.Tensor:
        return torch.cat([torch.ones(len(real), 1, device=real.device),
                          torch.zeros(len(fake), 1, device=fake.device)])

    def d_loss(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (output - targets).square().mean()

    def g_loss(self, output_on_fakes: torch.Tensor) -> torch.Tensor:
        return (output_on_fakes - 1).square().mean()

    def eps(self, step: int) -> float:
        return math.nan  # no kernel (logged as null)
