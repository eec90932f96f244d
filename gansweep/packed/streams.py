"""Each packed run's random streams, drawn from its own generators exactly as the run alone
draws them, then stacked on the run axis.

A single run (``gansweep.trainer``) draws from two generators:

- its noise generator: at each epoch's start the data order
  (``torch.randperm(len(data), generator=...)``), then per step z for the fakes and z for
  the G step, in that order (``Noise``);
- its model generator (``DCGAN(generator=...)``): the initial weights, then the Dropout
  masks (``RunDropout.mask``), per step the D step's (D on cat(real, fakes)) and then the
  G step's (D on G(z)).

``PackedStreams`` makes those same calls on each run's generators, in each run's order (the
runs' generators are independent, so drawing run by run changes nothing), and stacks the
results: the pack's data order, z and masks are, bit for bit, those of its runs alone.
"""

from __future__ import annotations

import torch

from gansweep.models import RunDropout
from gansweep.noise import Noise


class PackedStreams:
    """``noise_generators[n]`` / ``model_generators[n]``: run n's generators, in the states
    the run alone has at this point (a fresh run: the noise generator seeded, the model
    generator after the initial weights were drawn). ``dropout``: the D's Dropout p (None or
    0: no masks); ``features``: the width of the layer it drops (256 in the DCGAN's D)."""

    def __init__(self, noise_generators: list[torch.Generator],
                 model_generators: list[torch.Generator] | None, noise: Noise, latent_dim: int,
                 batch_size: int, device: torch.device | str = "cpu",
                 dropout: float | None = None, features: int = 256):
        self.noise_generators, self.noise = list(noise_generators), noise
        self.latent_dim, self.batch_size = latent_dim, batch_size
        self.device, self.features = torch.device(device), features
        self.dropouts = []
        if dropout is not None and 0.0 < dropout < 1.0:  # RunDropout draws nothing otherwise
            if model_generators is None or len(model_generators) != len(self.noise_generators):
                raise ValueError("error: Dropout masks need each run's model generator. Fix: "
                                 "pass model_generators, one per run")
            for generator in model_generators:
                layer = RunDropout(dropout)
                layer.generator = generator
                self.dropouts.append(layer)

    @property
    def n(self) -> int:
        return len(self.noise_generators)

    def permutations(self, length: int) -> torch.Tensor:
        """Each run's data order of a new epoch: ``[N, length]``."""
        return torch.stack([torch.randperm(length, generator=g, device=self.device)
                            for g in self.noise_generators])

    def z(self) -> torch.Tensor:
        """One batch of z per run: ``[N, B, latent_dim]``."""
        return torch.stack([self.noise(self.batch_size, self.latent_dim, g, self.device)
                            for g in self.noise_generators])

    def masks(self, dtype: torch.dtype = torch.float32):
        """One step's Dropout masks per run, (D step ``[N, 2B, F]``, G step ``[N, B, F]``),
        or None where the D has no Dropout draw."""
        if not self.dropouts:
            return None
        b, f = self.batch_size, self.features
        like_d = torch.empty(2 * b, f, dtype=dtype, device=self.device)
        like_g = torch.empty(b, f, dtype=dtype, device=self.device)
        pairs = [(layer.mask(like_d), layer.mask(like_g)) for layer in self.dropouts]
        return (torch.stack([d for d, _ in pairs]), torch.stack([g for _, g in pairs]))

    def step_draws(self):
        """A step's draws in the runs' order: (z for the fakes, z for the G step, masks)."""
        z_fake = self.z()
        z_g = self.z()
        return z_fake, z_g, self.masks()


def batch_of(data, permutations: torch.Tensor, batch: int, batch_size: int) -> torch.Tensor:
    """Run n's batch number ``batch`` in its epoch order ``permutations[n]``, stacked:
    ``[N, B, ...]``. ``data``: one tensor all runs share (``[len, ...]``), or a list of N
    tensors, one per run (datasets drawn per seed, as the 2-D mixtures are)."""
    index = permutations[:, batch * batch_size:(batch + 1) * batch_size]
    if isinstance(data, torch.Tensor):
        return data[index]
    return torch.stack([d[i] for d, i in zip(data, index, strict=True)])
