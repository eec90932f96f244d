"""One training step of N packed runs: ``gansweep.step.train_step`` for every run at once.

1. fakes = G(z_fake) in inference mode (``fake_mode=train``: batch statistics), per run.
2. D step: one update of each run's D on cat(real, fakes) (along the batch axis of each run)
   against its own objective's targets, on the D-step Dropout masks.
3. G step: one update of each run's G through its D, D's weights frozen but its Dropout
   active (on the G-step masks).

Each loss is ``[N]``; the step back-propagates their sum, so run n's gradient is that of
its own loss (no term couples two runs). Everything random comes in from outside
(``gansweep.packed.streams``): z, the Dropout masks and the real batches, each run's drawn
from its own generators. Nothing is read back to the host: the losses come back as ``[N]``
device tensors, and with a tensor ``step`` (the Coulomb kernel's eps schedule) the step's
work is the same every call, as CUDA graph capture needs. ``autocast`` is the
``trainer.precision`` context, as in ``gansweep.step.Parts``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, ContextManager

import torch

from gansweep.device import full_precision


@dataclass
class Pack:
    """What a packed step touches: the packed networks, their ``PackedKerasAdam``s and the
    packed objective (``gansweep.packed.objectives``)."""

    g: torch.nn.Module
    d: torch.nn.Module
    opt_d: torch.optim.Optimizer
    opt_g: torch.optim.Optimizer
    objective: object
    fake_mode: str = "eval"
    autocast: Callable[[], ContextManager] = field(default=contextlib.nullcontext)


@torch.no_grad()
def predict_fakes(pack: Pack, z: torch.Tensor) -> torch.Tensor:
    pack.g.train(pack.fake_mode == "train")
    with pack.autocast():
        return full_precision(pack.g(z))


def d_step(pack: Pack, real: torch.Tensor, fakes: torch.Tensor, mask, step) -> torch.Tensor:
    pack.d.train()
    targets = pack.objective.d_targets(real, fakes, step)
    with pack.autocast():
        output = full_precision(pack.d(torch.cat([real, fakes], dim=1), mask))
    loss = pack.objective.d_loss(output, targets)
    pack.opt_d.zero_grad(set_to_none=True)
    loss.sum().backward()
    pack.opt_d.step()
    return loss.detach()


def g_step(pack: Pack, z: torch.Tensor, mask) -> torch.Tensor:
    pack.g.train()
    pack.d.train()  # frozen weights, but Dropout stays active as in Keras
    pack.d.requires_grad_(False)
    try:
        with pack.autocast():
            output = full_precision(pack.d(pack.g(z), mask))
        loss = pack.objective.g_loss(output)
        pack.opt_g.zero_grad(set_to_none=True)
        loss.sum().backward()
        pack.opt_g.step()
    finally:
        pack.d.requires_grad_(True)
    return loss.detach()


def packed_train_step(pack: Pack, real: torch.Tensor, z_fake: torch.Tensor, z_g: torch.Tensor,
                      masks, step) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch of every run: (d_loss ``[N]``, g_loss ``[N]``, fakes ``[N, B, ...]``).

    ``real`` ``[N, B, ...]``; ``z_fake``, ``z_g`` ``[N, B, latent]`` (each run's two draws,
    in its order); ``masks``: (D-step ``[N, 2B, F]``, G-step ``[N, B, F]``) Dropout masks,
    or None for a D without Dropout; ``step``: batches trained so far (an int, or a 0-d
    tensor on the device)."""
    mask_d, mask_g = masks if masks is not None else (None, None)
    fakes = predict_fakes(pack, z_fake)
    d_loss = d_step(pack, real, fakes, mask_d, step)
    g_loss = g_step(pack, z_g, mask_g)
    return d_loss, g_loss, fakes
