"""Coulomb-GAN kernels and the potential they induce on a batch of real and fake points.

The Plummer kernel in dimension d: k(a, b) = 1 / (|a - b|^2 + eps^2)^((d - 2) / 2),
distances over the flattened points. The potential at a point x is

    Phi(x) = mean_j k(x, fake_j) - mean_j k(x, real_j),

high near fakes and low near reals, so a generator that minimises mean D(G(z)) ~ Phi moves
its samples toward the data and away from each other. With the self-potential ignored a
point's own term is dropped and its mean runs over the other points of its kind: the seed
only says the self-potential is ignored, so this reading is an assumption
(docs/fidelity.md, "Assumptions"; ``kernel.ignore_self_potential=false`` keeps the term).
"""

from __future__ import annotations

import torch


def eps_at(eps0: float, half_life: float, step: int) -> float:
    """eps_t = eps0 * 2^(-t / half_life): the seed halves eps every ``half_life`` batches."""
    return eps0 * 2.0 ** (-step / half_life)


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact pairwise |a_i - b_j|^2 from explicit differences (no |a|^2 + |b|^2 - 2ab)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").square()


def plummer(sq_dist: torch.Tensor, eps: float, dim: int) -> torch.Tensor:
    return (sq_dist + eps * eps).pow(-(dim - 2) / 2.0)


def plummer_potential(real: torch.Tensor, fake: torch.Tensor, eps: float, dim: int = 3,
                      ignore_self: bool = True) -> torch.Tensor:
    """Potential at every point of cat(real, fake), shape (n_real + n_fake,).

    ``real`` and ``fake`` may have any shape (N, ...); they are flattened per point.
    """
    points = torch.cat([real, fake]).flatten(1)
    n_real = real.shape[0]
    k = plummer(squared_distances(points, points), eps, dim)
    is_fake = torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
    is_fake[n_real:] = True
    if ignore_self:
        k = k - torch.diag_embed(torch.diagonal(k))  # drop each point's own term
    sum_fake, sum_real = k[:, is_fake].sum(1), k[:, ~is_fake].sum(1)
    n_fake_others = (is_fake.sum() - is_fake.long() * ignore_self).to(k.dtype)
    n_real_others = ((~is_fake).sum() - (~is_fake).long() * ignore_self).to(k.dtype)
    return sum_fake / n_fake_others - sum_real / n_real_others


def squared_distances_mm(points: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Pairwise |x_i - x_j|^2 of one point set from a single matrix product.

    |a|^2 + |b|^2 - 2 a.b cancels badly when the points are far from the origin (MNIST:
    |x|^2 up to 784) and close to each other, so the points are centred first (distances do
    not change) and the product runs in ``dtype`` (float64 by default: the relative error is
    then ~1e-16 of |x|^2 instead of ~1e-7). The result is clamped at 0 and the diagonal set
    to exactly 0, as the explicit-difference version gives.
    """
    x = points.to(dtype)
    x = x - x.mean(dim=0, keepdim=True)
    sq = x.square().sum(dim=1)
    d = torch.addmm(sq.unsqueeze(1) + sq.unsqueeze(0), x, x.T, alpha=-2.0).clamp_(min=0)
    return d.fill_diagonal_(0)


def plummer_potential_mm(real: torch.Tensor, fake: torch.Tensor, eps: float, dim: int = 3,
                         ignore_self: bool = True,
                         dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``plummer_potential`` from one matrix product and contiguous slices (no cdist, no
    boolean-mask indexing, hence no host synchronisation on a GPU); computed in ``dtype``
    and returned in the inputs' dtype. Agrees with the reference to float32 rounding."""
    n_real, n_fake = real.shape[0], fake.shape[0]
    points = torch.cat([real.flatten(1), fake.flatten(1)])
    k = plummer(squared_distances_mm(points, dtype), eps, dim)
    if ignore_self:
        k.fill_diagonal_(0)
    sum_real, sum_fake = k[:, :n_real].sum(1), k[:, n_real:].sum(1)
    own = float(ignore_self)
    n_real_others = torch.full_like(sum_real, float(n_real))
    n_fake_others = torch.full_like(sum_fake, float(n_fake))
    n_real_others[:n_real] -= own
    n_fake_others[n_real:] -= own
    return (sum_fake / n_fake_others - sum_real / n_real_others).to(real.dtype)


POTENTIALS = {"reference": plummer_potential, "fast": plummer_potential_mm}


class PlummerKernel:
    """The ``kernel=plummer`` config group as an object with an eps schedule."""

    def __init__(self, dim: int = 3, eps: float = 1.0, eps_half_life: float = 5000.0,
                 ignore_self_potential: bool = True, impl: str = "reference",
                 name: str = "plummer"):
        self.dim, self.eps0, self.half_life = dim, eps, eps_half_life
        self.ignore_self = ignore_self_potential
        self.impl = str(impl)
        self._potential = POTENTIALS[self.impl]

    def eps(self, step: int) -> float:
        return eps_at(self.eps0, self.half_life, step)

    def potential(self, real: torch.Tensor, fake: torch.Tensor, step: int) -> torch.Tensor:
        return self._potential(real, fake, self.eps(step), self.dim, self.ignore_self)
