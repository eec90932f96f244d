"""One training step of the seed (docs/study.md, "Training loop"), the only one there is: the
training loop, the benchmark and the tests all call ``train_step``.

1. fakes = G(z) in inference mode (Keras ``G.predict``; ``fake_mode=train``: batch statistics).
2. D step: one update on cat(real, fakes) against the objective's targets.
3. G step: new z, one update of G through D with D's weights frozen but its Dropout active
   (Keras ``train_on_batch`` of the combined model runs in the training phase).

Losses come back as 0-d tensors, not floats: reading them would make a GPU wait every step.
``trainer.precision=bf16`` runs the three forward passes under ``parts.autocast`` (bfloat16
autocast); their outputs reach the losses in float32 (``full_precision``), the master weights
and the Coulomb potential keep their float32/float64.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, ContextManager

import torch

from gansweep.device import full_precision


@dataclass
class Parts:
    """What a step touches: the two networks, their optimisers and the objective."""

    g: torch.nn.Module
    d: torch.nn.Module
    opt_d: torch.optim.Optimizer
    opt_g: torch.optim.Optimizer
    objective: object  # d_targets, d_loss, g_loss, eps (gansweep.gan.objectives)
    fake_mode: str = "eval"
    autocast: Callable[[], ContextManager] = field(default=contextlib.nullcontext)


@torch.no_grad()
def predict_fakes(parts: Parts, z: torch.Tensor) -> torch.Tensor:
    parts.g.train(parts.fake_mode == "train")
    with parts.autocast():
        return full_precision(parts.g(z))


def d_step(parts: Parts, real: torch.Tensor, fakes: torch.Tensor, step: int) -> torch.Tensor:
    parts.d.train()
    targets = parts.objective.d_targets(real, fakes, step)
    with parts.autocast():
        output = full_precision(parts.d(torch.cat([real, fakes])))
    loss = parts.objective.d_loss(output, targets)
    parts.opt_d.zero_grad(set_to_none=True)
    loss.backward()
    parts.opt_d.step()
    return loss.detach()


def g_step(parts: Parts, z: torch.Tensor) -> torch.Tensor:
    parts.g.train()
    parts.d.train()  # frozen weights, but Dropout stays active as in Keras
    parts.d.requires_grad_(False)
    try:
        with parts.autocast():
            output = full_precision(parts.d(parts.g(z)))
        loss = parts.objective.g_loss(output)
        parts.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        parts.opt_g.step()
    finally:
        parts.d.requires_grad_(True)
    return loss.detach()


def train_step(parts: Parts, real: torch.Tensor, noise: Callable[[], torch.Tensor],
               step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch: (d_loss, g_loss, fakes). ``noise()`` draws a batch of z; it is called twice,
    for the fakes and then for the G step, in the seed's order (the RNG stream depends on it).
    ``step`` is batches trained so far (the kernel's eps schedule)."""
    fakes = predict_fakes(parts, noise())
    d_loss = d_step(parts, real, fakes, step)
    g_loss = g_step(parts, noise())
    return d_loss, g_loss, fakes
