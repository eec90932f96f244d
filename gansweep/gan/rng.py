"""A run's own random streams in its networks: initial weights and Dropout masks drawn from
a ``torch.Generator`` the run owns (``gansweep.gan.state.Streams``), never from torch's global
RNG, giving the numbers the global RNG gave after ``torch.manual_seed`` (bit for bit on a
CPU; tests/test_run_state.py)."""

from __future__ import annotations

import math

import torch
from torch import nn


def torch_default_init_(module: nn.Module, generator: torch.Generator) -> None:
    """What ``nn.Linear`` / ``nn.Conv2d`` draw in their constructors (``reset_parameters``:
    kaiming_uniform(a=sqrt(5)) weights, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) biases), layer by
    layer in construction order, from ``generator``.

    A network built under ``torch.random.fork_rng`` and then passed through this draws the
    same numbers from its run's generator as the same network built after
    ``torch.manual_seed`` draws from the global RNG: the layers' ``reset_parameters`` use
    exactly these calls, which take no generator."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            if layer.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(layer.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


class RunDropout(nn.Module):
    """Inverted dropout (as Keras) whose masks come from the run's own generator.

    ``rng`` is set by the run that owns the network (``use_generator``); None draws
    from torch's global RNG. On a CPU this is ATen's own dropout step for step
    (``empty_like(x).bernoulli_(1 - p)``, divided by 1 - p, times x), so a generator in the
    state the global RNG had gives the masks ``nn.Dropout`` gave. On CUDA, ``nn.Dropout``
    uses a fused kernel that takes no generator and draws another stream: a CUDA run's masks
    are this module's (gansweep.runs.checkpoint refuses CUDA checkpoints made before)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.rng: torch.Generator | None = None

    def mask(self, like: torch.Tensor) -> torch.Tensor:
        """The next mask for an input like ``like``, scaled by 1 / (1 - p)."""
        noise = torch.empty_like(like).bernoulli_(1.0 - self.p, generator=self.rng)
        return noise.div_(1.0 - self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:  # ATen: everything dropped, no draw
            return x * torch.zeros((), dtype=x.dtype, device=x.device)
        return x * self.mask(x)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_generator(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Make every Dropout of ``module`` draw its masks from ``generator``: ``RunDropout``s
    get it, a plain ``nn.Dropout`` (a user's network) is replaced by a ``RunDropout`` of the
    same p (the same masks on a CPU). Dropout called as a function inside ``forward``
    (``F.dropout``) cannot be reached and keeps drawing from the global RNG."""
    for name, child in list(module.named_children()):
        if type(child) is nn.Dropout:
            replacement = RunDropout(child.p)
            replacement.train(child.training)
            setattr(module, name, replacement)
        use_generator(getattr(module, name), generator)
    if isinstance(module, RunDropout):
        module.rng = generator
    return module


def built_from(build, generator: torch.Generator | None):
    """``build()``'s networks, their torch-default initial weights drawn from ``generator``:
    built under ``fork_rng`` (what the layers' constructors draw from the global RNG is
    discarded, the global RNG is left as it was), then initialised again from ``generator``
    in construction order (``torch_default_init_``). None: built as torch builds them, from
    the global RNG."""
    if generator is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        nets = build()
    for net in nets:
        torch_default_init_(net, generator)
    return nets
