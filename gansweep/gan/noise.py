"""The ``noise`` config group: G's input z, drawn from a generator the run seeds."""

from __future__ import annotations

import torch


class Noise:
    """z ~ U(low, high) (the seed: U(-1, 1)) or N(0, std^2), one row per sample."""

    def __init__(self, dist: str = "uniform", low: float = -1.0, high: float = 1.0,
                 std: float = 1.0):
        self.dist, self.low, self.high, self.std = str(dist), low, high, std

    def __call__(self, n: int, dim: int, generator: torch.Generator,
                 device: torch.device) -> torch.Tensor:
        if self.dist == "uniform":
            u = torch.rand(n, dim, generator=generator, device=device)
            return u * (self.high - self.low) + self.low
        return torch.randn(n, dim, generator=generator, device=device) * self.std


@torch.no_grad()
def sample_generator(g: torch.nn.Module, noise: Noise, latent_dim: int, n: int, seed: int,
                     device: torch.device, batch_size: int) -> torch.Tensor:
    """n samples of G in inference mode on noise fixed by ``seed``, in chunks of batch_size;
    G's train/eval mode is restored afterwards."""
    was_training = g.training
    g.eval()
    generator = torch.Generator(device).manual_seed(seed)
    chunks = []
    for start in range(0, n, batch_size):
        chunks.append(g(noise(min(batch_size, n - start), latent_dim, generator, device)))
    g.train(was_training)
    return torch.cat(chunks)
