"""Per-run GAN objectives of a pack: ``gansweep.gan.objectives``' losses on ``[N, B, 1]`` outputs,
each run's loss its own (``[N]``); the step sums them, so each run gets its own gradient.

A pack has one loss family: all runs ``standard`` (with one ``loss``: Keras' clipped BCE or
BCE-with-logits) or all ``coulomb``. A Coulomb pack keeps each run's kernel (eps0, its
half-life and the kernel dimension) as ``[N]`` float64 tensors, so eps_t is each run's own
at every step. Distances are IEEE float32 whatever the TF32 setting: the ``reference``
kernel takes them from explicit differences (``torch.cdist`` without matrix products, as
``gansweep.gan.kernels.squared_distances``), the ``fast`` one from a float64 matrix product (as
``squared_distances_mm``); neither touches a float32 matmul that TF32 could round.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gansweep.gan.objectives import KERAS_EPSILON, STANDARD_LOSSES, CoulombGAN, StandardGAN


def _per_run_keras_bce(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``keras_binary_crossentropy`` (its clipping included) of each run: ``[N]``."""
    p = output.clamp(KERAS_EPSILON, 1.0 - KERAS_EPSILON)
    logits = torch.log(p / (1.0 - p))
    per_item = logits.clamp(min=0) - logits * target + torch.log1p(torch.exp(-logits.abs()))
    return per_item.mean(dim=-1).mean(dim=1)


def _per_run_logits(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(output, target.expand_as(output),
                                              reduction="none").mean(dim=(1, 2))


PER_RUN_LOSSES = {"keras_bce": _per_run_keras_bce, "logits": _per_run_logits}


def _loss_of(objective: StandardGAN) -> str:
    """The ``gan_type.loss`` name a StandardGAN's loss function came from."""
    names = [name for name, fn in STANDARD_LOSSES.items() if fn is objective.loss]
    if not names or names[0] not in PER_RUN_LOSSES:
        raise ValueError(f"error: the standard loss {objective.loss!r} has no packed form. "
                         f"Fix: use one of {sorted(PER_RUN_LOSSES)}")
    return names[0]


class PackedStandard:
    """N ``StandardGAN``s of one ``loss``: targets 1 for reals, 0 for fakes, every run."""

    name = "standard"

    def __init__(self, objectives: list[StandardGAN]):
        losses = {_loss_of(objective) for objective in objectives}
        if len(losses) != 1:
            raise ValueError(f"error: the runs' standard losses differ ({sorted(losses)}); a "
                             "pack has one loss. Fix: pack runs of one gan_type.loss together")
        self.loss_name = losses.pop()
        self.loss = PER_RUN_LOSSES[self.loss_name]
        self.n = len(objectives)

    def d_targets(self, real: torch.Tensor, fake: torch.Tensor, step) -> torch.Tensor:
        n, b_real, b_fake = real.shape[0], real.shape[1], fake.shape[1]
        ones = torch.ones(b_real, 1, device=real.device, dtype=real.dtype)
        zeros = torch.zeros(b_fake, 1, device=fake.device, dtype=fake.dtype)
        return torch.cat([ones, zeros]).expand(n, -1, -1)

    def d_loss(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(output, targets)

    def g_loss(self, output_on_fakes: torch.Tensor) -> torch.Tensor:
        return self.loss(output_on_fakes, torch.ones_like(output_on_fakes))

    def eps(self, step) -> torch.Tensor:
        return torch.full((self.n,), math.nan, dtype=torch.float64)  # no kernel


class PackedCoulomb:
    """N ``CoulombGAN``s: each run regresses its own kernel's potential (eps0, half-life and
    dimension per run; ``ignore_self_potential`` and ``impl`` shared)."""

    name = "coulomb"

    def __init__(self, objectives: list[CoulombGAN]):
        kernels = [objective.kernel for objective in objectives]
        for attribute, key in (("ignore_self", "ignore_self_potential"), ("impl", "impl")):
            values = {getattr(k, attribute) for k in kernels}
            if len(values) != 1:
                raise ValueError(f"error: the runs' kernel.{key} differ ({sorted(values)}); a "
                                 f"pack shares it. Fix: pack runs with equal kernel.{key}")
        self.ignore_self, self.impl = kernels[0].ignore_self, kernels[0].impl
        self.eps0 = torch.tensor([float(k.eps0) for k in kernels], dtype=torch.float64)
        self.half_life = torch.tensor([float(k.half_life) for k in kernels], dtype=torch.float64)
        dims = [float(k.dim) for k in kernels]
        self.dim = torch.tensor(dims, dtype=torch.float64)
        # the kernel's exponent: a Python number where the runs share it (what the single
        # kernel's pow takes), a per-run tensor otherwise
        exponents = [-(d - 2) / 2.0 for d in dims]
        self.exponent = exponents[0] if len(set(exponents)) == 1 else torch.tensor(exponents)
        self.n = len(kernels)

    def to(self, device) -> "PackedCoulomb":
        """The per-run kernel tensors on ``device`` (where the step runs)."""
        self.eps0, self.half_life, self.dim = (t.to(device) for t in (self.eps0, self.half_life,
                                                                       self.dim))
        if isinstance(self.exponent, torch.Tensor):
            self.exponent = self.exponent.to(device)
        return self

    def eps(self, step) -> torch.Tensor:
        """eps_t of each run, ``[N]`` float64: eps0 * 2^(-step / half_life) (``step``: an
        int or a 0-d tensor on the device)."""
        if isinstance(step, torch.Tensor):
            step = step.to(torch.float64)
        return self.eps0 * torch.pow(2.0, -step / self.half_life)

    def _exponent(self, like: torch.Tensor):
        if isinstance(self.exponent, torch.Tensor):
            return self.exponent.to(like.dtype).view(-1, 1, 1)
        return self.exponent

    @torch.no_grad()
    def potential(self, real: torch.Tensor, fake: torch.Tensor, step) -> torch.Tensor:
        """Each run's ``plummer_potential`` (``_mm`` for impl=fast) at cat(real, fake):
        ``[N, n_real + n_fake]``."""
        n_real, n_fake = real.shape[1], fake.shape[1]
        points = torch.cat([real.flatten(2), fake.flatten(2)], dim=1)
        eps = self.eps(step)
        if self.impl == "fast":
            k = self._kernel_mm(points, eps)
        else:
            sq = torch.cdist(points, points, compute_mode="donot_use_mm_for_euclid_dist").square()
            # eps * eps in float64, then float32 where it meets the distances, as the single
            # kernel's Python float does
            k = (sq + (eps * eps).to(sq.dtype).view(-1, 1, 1)).pow(self._exponent(sq))
            if self.ignore_self:
                k = k - torch.diag_embed(torch.diagonal(k, dim1=1, dim2=2))
        sum_real, sum_fake = k[:, :, :n_real].sum(2), k[:, :, n_real:].sum(2)
        own = float(self.ignore_self)
        n_real_others = torch.full_like(sum_real[0], float(n_real))
        n_fake_others = torch.full_like(sum_fake[0], float(n_fake))
        n_real_others[:n_real] -= own
        n_fake_others[n_real:] -= own
        return (sum_fake / n_fake_others - sum_real / n_real_others).to(real.dtype)

    def _kernel_mm(self, points: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``squared_distances_mm`` and ``plummer`` per run, in float64."""
        x = points.to(torch.float64)
        x = x - x.mean(dim=1, keepdim=True)
        sq = x.square().sum(dim=2)
        d = torch.baddbmm(sq.unsqueeze(2) + sq.unsqueeze(1), x, x.transpose(1, 2),
                          alpha=-2.0).clamp_(min=0)
        d.diagonal(dim1=1, dim2=2).zero_()
        k = (d + (eps * eps).view(-1, 1, 1)).pow(self._exponent(d))
        if self.ignore_self:
            k.diagonal(dim1=1, dim2=2).zero_()
        return k

    def d_targets(self, real: torch.Tensor, fake: torch.Tensor, step) -> torch.Tensor:
        return self.potential(real, fake, step).unsqueeze(2)

    def d_loss(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (output - targets).square().mean(dim=-1).mean(dim=1)  # Keras 'mse', per run

    def g_loss(self, output_on_fakes: torch.Tensor) -> torch.Tensor:
        return output_on_fakes.mean(dim=(1, 2))  # mean(D(G(z))) per run


def packed_objective(objectives: list, device=None):
    """The packed objective of N runs' objectives (one family: refused otherwise)."""
    families = {type(objective).__name__ for objective in objectives}
    if len(families) != 1:
        raise ValueError(f"error: the runs' GAN types differ ({sorted(families)}); a pack has "
                         "one loss family. Fix: pack the standard runs and the Coulomb runs "
                         "apart")
    if isinstance(objectives[0], StandardGAN):
        return PackedStandard(objectives)
    if isinstance(objectives[0], CoulombGAN):
        return PackedCoulomb(objectives).to(device or "cpu")
    raise ValueError(f"error: the GAN type {type(objectives[0]).__name__} has no packed form. "
                     "Fix: use gan_type=standard or coulomb")
