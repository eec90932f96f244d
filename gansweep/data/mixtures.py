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

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from gansweep.data.mnist import Dataset
from gansweep.gan.kernels import plummer, squared_distances
from gansweep.data.reference import Reference


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


class MixtureDataset:
    """``dataset=ring8|grid25``: a fixed training set of ``size`` points drawn with the run's
    seed, pictured by ``visualizer`` (a ``Scatter``) and scored by ``evaluator`` (a
    ``ModeMetrics``); both come as partials from the YAML and get the mixture here."""

    def __init__(self, name: str = "ring8", size: int = 51200, modes: int = 8,
                 radius: float = 2.0, spacing: float = 2.0, std: float = 0.02,
                 num_samples: int = 2500, min_per_mode: int = 20,
                 objective: str = "covered_quality", visualizer=None, evaluator=None):
        self.name, self.size = str(name), size
        self.mixture = (ring(modes, radius, std) if self.name == "ring8"
                        else grid(int(round(math.sqrt(modes))), spacing, std))
        self.visualizer = (visualizer or Scatter)(mixture=self.mixture, final_count=num_samples)
        self.evaluator = (evaluator or ModeMetrics)(mixture=self.mixture,
                                                    num_samples=num_samples,
                                                    min_per_mode=min_per_mode,
                                                    objective=objective)

    def load(self, seed: int):
        """The fixed training set of ``size`` points, drawn with the run's seed."""
        generator = torch.Generator().manual_seed(seed)
        x, modes = self.mixture.sample(self.size, generator)
        return Dataset(x, modes, f"{self.name}:seed={seed}:n={self.size}")

    def reference(self) -> "MixtureReference":
        """Points of the mixture itself for the FID-family metrics (``ModeMetrics`` scores
        these datasets by default): ``size`` points, the same for every run."""
        return MixtureReference(self.name, self.mixture, self.size)


class MixtureReference(Reference):
    """A mixture as an FID reference: ``size`` points drawn with seed 0 ("train") or 1
    ("test", for the floors), whatever the run's seed: the distribution, not a run's
    training draw. Samples are 2-D points, so only an extractor of points applies."""

    splits = ("train", "test")
    SEEDS = {"train": 0, "test": 1}

    def __init__(self, name: str, mixture: Mixture, size: int):
        self.name, self.mixture, self.size, self.shape = name, mixture, size, (2,)

    def points(self, split: str) -> Dataset:
        generator = torch.Generator().manual_seed(self.SEEDS[split])
        x, modes = self.mixture.sample(self.size, generator)
        return Dataset(x, modes, f"{self.name}:{split}:seed={self.SEEDS[split]}:n={self.size}")

    def key(self, split: str = "train") -> str:
        x = self.points(split).x.numpy()
        digest = hashlib.sha256(repr(x.shape).encode() + x.tobytes()).hexdigest()
        return f"{self.name}-{split}-{digest[:16]}"

    def load(self, split: str = "train", limit: int | None = None) -> Dataset:
        data = self.points(split)
        if limit is None:
            return data
        return Dataset(data.x[:limit], data.labels[:limit], f"{data.checksum}[:{limit}]")


class ModeMetrics:
    """The mixtures' evaluator: ``mode_metrics`` of ``num_samples`` generated points, once
    at the end of training (the same interface as the FID evaluator)."""

    best_key, lower_is_better, enabled = None, True, True
    seed_offset = 1  # scores the very points the final scatter shows (noise seed: seed + 1)
    sample_batch = None  # G's chunk: the run's batch size, as the final scatter's

    # what a sweeper minimises: a metric to minimise as it is, one to maximise negated
    OBJECTIVES = {"covered_quality": -1, "modes_covered": -1, "high_quality": -1,
                  "kl_to_uniform": 1}

    def __init__(self, mixture: Mixture, num_samples: int = 2500, min_per_mode: int = 20,
                 objective: str = "covered_quality"):
        if objective not in self.OBJECTIVES:
            raise ValueError(f"dataset.objective={objective!r}: choose one of "
                             f"{', '.join(self.OBJECTIVES)}")
        self.mixture, self.num_samples, self.min_per_mode = mixture, num_samples, min_per_mode
        self.objective_metric = objective

    def preflight(self) -> None:
        """Nothing to fetch or check before training."""

    def due(self, epochs_done: int, total_epochs: int | None = None) -> bool:
        return False  # mode metrics are cheap but were never per-epoch; the end only

    @staticmethod
    def row(result: dict) -> dict:
        return result

    def __call__(self, sample) -> dict:
        values = mode_metrics(sample(self.num_samples), self.mixture, self.min_per_mode)
        return {**values, "objective": self.objective(values),
                "objective_metric": self.objective_metric}

    def floors(self, compute: bool = False) -> dict:
        return {}

    def objective(self, values: dict) -> float:
        """``dataset.objective`` as a number to minimise (+inf when not finite)."""
        value = values[self.objective_metric] * self.OBJECTIVES[self.objective_metric]
        return float(value) if math.isfinite(value) else math.inf


# ----------------------------------------------------------------------------- metrics
def mode_metrics(samples: torch.Tensor, mixture: Mixture, min_per_mode: int = 20) -> dict:
    """modes_covered, high_quality (fraction), kl_to_uniform and their one-number summary
    covered_quality (modes_covered / modes_total x high_quality) of generated points."""
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
    covered, quality = int((counts >= min_per_mode).sum()), float(good.double().mean())
    return {
        "modes_covered": covered,
        "modes_total": k,
        "high_quality": quality,
        "kl_to_uniform": kl,
        # one number for searches: the share of modes covered times the share of good points
        "covered_quality": covered / k * quality,
        "mixture_samples": int(samples.shape[0]),
    }


# ----------------------------------------------------------------------------- pictures
def potential_field(query: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, eps: float,
                    dim: int) -> torch.Tensor:
    """The Coulomb potential at arbitrary points: mean k(., fakes) - mean k(., reals)."""
    k_fake = plummer(squared_distances(query, fake), eps, dim).mean(1)
    k_real = plummer(squared_distances(query, real), eps, dim).mean(1)
    return k_fake - k_real


class Scatter:
    """The mixtures' visualiser: real vs generated points over the Coulomb potential."""

    def __init__(self, mixture: Mixture, final_count: int = 2500):
        self.mixture = mixture
        self.final_count = final_count  # points in the final picture (those the metrics score)

    def __call__(self, samples: torch.Tensor, path: Path, *, real: torch.Tensor,
                 kernel=None, step: int = 0, title: str = "") -> Path:
        return scatter(real[:1000], samples, path, self.mixture, kernel, step, title)


def scatter(real: torch.Tensor, fake: torch.Tensor, path: Path, mixture: Mixture,
            kernel=None, step: int = 0, title: str = "") -> Path:
    """Real vs generated points; the kernel potential as background for a Coulomb GAN."""
    # matplotlib loads with the first picture (a run that draws none never pays for it),
    # with the Agg backend chosen before pyplot
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
