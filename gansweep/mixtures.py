"""2-D mixture-of-Gaussians benchmarks: where Coulomb GAN should not drop modes.

``dataset=ring8``: 8 Gaussians evenly on a circle of radius 2, std 0.02 (Metz et al. 2017,
unrolled GANs; VEEGAN). ``dataset=grid25``: a 5x5 grid of Gaussians at {-4,-2,0,2,4}^2,
std 0.05 (VEEGAN; PacGAN). The training set is a fixed sample drawn with the run's seed,
so the training loop treats it exactly like MNIST.

Metrics (PacGAN's protocol): of ``num_samples`` generated points, a point is *high quality*
when it lies within 3 standard deviations of its nearest mode centre; a mode is *covered*
when at least ``min_per_mode`` high-quality points fall to it; ``kl_to_uniform`` is the KL
divergence between the histogram of high-quality points over modes and the uniform one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from gansweep.kernels import plummer, squared_distances


@dataclass
class Mixture:
    centres: torch.Tensor  # (K, 2)
    std: float

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        modes = torch.randint(len(self.centres), (n,), generator=generator)
        noise = torch.randn(n, 2, generator=generator) * self.std
        return self.centres[modes] + noise, modes


def ring(modes: int = 8, radius: float = 2.0, std: float = 0.02) -> Mixture:
    angles = torch.arange(modes, dtype=torch.float32) * (2 * math.pi / modes)
    return Mixture(torch.stack([radius * angles.cos(), radius * angles.sin()], 1), std)


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> Mixture:
    axis = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    xs, ys = torch.meshgrid(axis, axis, indexing="ij")
    return Mixture(torch.stack([xs.flatten(), ys.flatten()], 1), std)


def build_mixture(cfg) -> Mixture:
    if str(cfg.name) == "ring8":
        return ring(cfg.modes, cfg.radius, cfg.std)
    return grid(int(round(math.sqrt(cfg.modes))), cfg.spacing, cfg.std)


def load_mixture(cfg, seed: int):
    """The fixed training set of ``dataset.size`` points, drawn with the run's seed."""
    from gansweep.data import Dataset

    mixture = build_mixture(cfg)
    generator = torch.Generator().manual_seed(seed)
    x, modes = mixture.sample(cfg.size, generator)
    return Dataset(x, modes, f"{cfg.name}:seed={seed}:n={cfg.size}")


# ----------------------------------------------------------------------------- metrics
def mode_metrics(samples: torch.Tensor, mixture: Mixture, min_per_mode: int = 20) -> dict:
    """modes_covered, high_quality (fraction) and kl_to_uniform of generated points."""
    samples = samples.detach().double().cpu()
    centres = mixture.centres.double()
    dist = squared_distances(samples, centres).sqrt()
    nearest_dist, nearest = dist.min(dim=1)
    good = nearest_dist <= 3 * mixture.std
    counts = torch.bincount(nearest[good], minlength=len(centres)).double()
    k = len(centres)
    if counts.sum() > 0:
        p = counts / counts.sum()
        kl = float((p[p > 0] * (p[p > 0] * k).log()).sum())
    else:
        kl = math.inf
    return {
        "modes_covered": int((counts >= min_per_mode).sum()),
        "modes_total": k,
        "high_quality": float(good.double().mean()),
        "kl_to_uniform": kl,
        "mixture_samples": int(samples.shape[0]),
    }


# ----------------------------------------------------------------------------- pictures
def potential_field(query: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, eps: float,
                    dim: int) -> torch.Tensor:
    """The Coulomb potential at arbitrary points: mean k(., fakes) - mean k(., reals)."""
    k_fake = plummer(squared_distances(query, fake), eps, dim).mean(1)
    k_real = plummer(squared_distances(query, real), eps, dim).mean(1)
    return k_fake - k_real


def scatter(real: torch.Tensor, fake: torch.Tensor, path: Path, mixture: Mixture,
            kernel=None, step: int = 0, title: str = "") -> Path:
    """Real vs generated points; the kernel potential as background for a Coulomb GAN."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real, fake = real.detach().float().cpu(), fake.detach().float().cpu()
    extent = float(mixture.centres.abs().max()) * 1.5 + 0.5
    fig, ax = plt.subplots(figsize=(5, 5))
    if kernel is not None:
        axis = torch.linspace(-extent, extent, 120)
        xs, ys = torch.meshgrid(axis, axis, indexing="xy")
        field = potential_field(torch.stack([xs.flatten(), ys.flatten()], 1), real, fake,
                                kernel.eps(step), kernel.dim).reshape(120, 120)
        mesh = ax.contourf(xs.numpy(), ys.numpy(), field.numpy(), levels=30, cmap="coolwarm")
        fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.04, label="potential")
    ax.scatter(real[:, 0], real[:, 1], s=4, c="black", alpha=0.5, label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=4, c="gold", alpha=0.7, label="generated")
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
