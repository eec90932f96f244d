"""``PackedKerasAdam``: ``gansweep.optim.KerasAdam`` over stacked parameters, each run with
its own hyperparameters and its own update count.

Every parameter is ``[N, ...]`` (run n at index n); lr, decay, beta_1, beta_2 and epsilon
are ``[N]`` float64 tensors, broadcast as ``[N, 1, ...]``; ``iterations`` is an ``[N]``
int64 tensor on the parameters' device (runs continued from different points keep their
own counts). Per update, as KerasAdam (gansweep/optim.py) does for each run:

    lr'  = lr / (1 + decay * iterations)
    t    = iterations + 1
    lr_t = lr' * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m = beta_1 m + (1 - beta_1) g;   v = beta_2 v + (1 - beta_2) g^2
    p = p - lr_t * m / (sqrt(v) + epsilon)

The scalars are computed in float64 on the device (KerasAdam computes them as Python
floats) and taken to the parameters' dtype where they meet them, as KerasAdam's Python
scalars are; the element-wise arithmetic is KerasAdam's, in its order (``addcmul``'s
``value * g * g`` and ``addcdiv``'s ``value * m / denom`` with the per-run value folded
into the first factor, which leaves every product as it was). The step reads nothing back
to the host and allocates nothing of a parameter's size (m, v and two scratch buffers exist
from the start): it can be captured in a CUDA graph.

``single_state_dict(n)`` / ``load_single_state_dicts`` convert to and from the N runs'
``KerasAdam.state_dict()``s (state m, v per parameter in parameter order, one param group,
``iterations`` an int), so a run's checkpoint keeps the single-run format.
"""

from __future__ import annotations

import torch

HYPERPARAMETERS = ("lr", "beta_1", "beta_2", "epsilon", "decay")


class PackedKerasAdam(torch.optim.Optimizer):
    """``params``: stacked ``[N, ...]`` parameters; each hyperparameter: N numbers (a
    sequence or an ``[N]`` tensor), run n's at index n."""

    def __init__(self, params, lr, beta_1, beta_2, epsilon, decay):
        super().__init__(params, {})
        self.params = [p for group in self.param_groups for p in group["params"]]
        first = self.params[0]
        self.n, device = first.shape[0], first.device
        for p in self.params:
            if p.shape[0] != self.n:
                raise ValueError(f"error: a packed parameter of shape {tuple(p.shape)} does not "
                                 f"lead with the pack's {self.n} runs. Fix: pass the packed "
                                 "model's parameters")
        values = dict(lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, decay=decay)
        for name, value in values.items():
            tensor = torch.as_tensor(value, dtype=torch.float64).to(device).reshape(-1)
            if tensor.shape != (self.n,):
                raise ValueError(f"error: {name} has {tensor.numel()} values for {self.n} runs. "
                                 "Fix: one value per run")
            setattr(self, name, tensor)
        self.iterations = torch.zeros(self.n, dtype=torch.int64, device=device)
        for p in self.params:
            self.state[p]["m"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
            self.state[p]["v"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
        # the step's temporaries, as large as the largest parameter (a new allocation of that
        # size every step costs page faults on a CPU and breaks graph capture on a GPU)
        largest = max(p.numel() for p in self.params)
        self._scratch = [torch.empty(largest, dtype=first.dtype, device=device) for _ in range(2)]

    @classmethod
    def from_single(cls, params, optimizers) -> "PackedKerasAdam":
        """The packed optimiser of N ``KerasAdam``s (their hyperparameters, state and counts)
        over the packed model's ``params``."""
        states = [opt.state_dict() for opt in optimizers]
        hyper = {name: [single_group(state)[name] for state in states] for name in HYPERPARAMETERS}
        packed = cls(params, **hyper)
        packed.load_single_state_dicts(states)
        return packed

    def _view(self, tensor: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return tensor.to(p.dtype).view(self.n, *[1] * (p.ndim - 1))

    def current_lr(self) -> torch.Tensor:
        """lr' of each run's next update, ``[N]`` float64 on the device (as logged)."""
        return self.lr / (1.0 + self.decay * self.iterations.to(torch.float64))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        iterations = self.iterations.to(torch.float64)
        t = iterations + 1.0
        lr = self.lr / (1.0 + self.decay * iterations)
        lr_t = lr * torch.sqrt(1.0 - torch.pow(self.beta_2, t)) / (1.0 - torch.pow(self.beta_1, t))
        for p in self.params:
            if p.grad is None:
                continue
            g, state = p.grad, self.state[p]
            m, v = state["m"], state["v"]
            first, second = (s[:p.numel()].view(p.shape) for s in self._scratch)
            m.lerp_(g, self._view(1.0 - self.beta_1, p))  # m = b1 m + (1 - b1) g
            torch.mul(self._view(1.0 - self.beta_2, p), g, out=first)
            v.mul_(self._view(self.beta_2, p)).addcmul_(g, first)  # v + g ((1 - b2) g)
            torch.sqrt(v, out=second).add_(self._view(self.epsilon, p))  # sqrt(v) + eps
            torch.mul(self._view(-lr_t, p), m, out=first)
            p.addcdiv_(first, second)  # p + (-lr_t m) / (sqrt(v) + eps)
        self.iterations += 1
        return loss

    # ------------------------------------------------------------------ single-run format
    def single_state_dict(self, index: int) -> dict:
        """Run ``index``'s state as its ``KerasAdam.state_dict()`` would be (a host read:
        for checkpoints, not for the step). A run that never stepped has no state, as a
        fresh KerasAdam."""
        iterations = int(self.iterations[index])
        state = {} if iterations == 0 else {
            k: {"m": self.state[p]["m"][index].clone(), "v": self.state[p]["v"][index].clone()}
            for k, p in enumerate(self.params)}
        group = {name: float(getattr(self, name)[index]) for name in HYPERPARAMETERS}
        group["params"] = list(range(len(self.params)))
        return {"state": state, "param_groups": [group], "iterations": iterations}

    @torch.no_grad()
    def load_single_state_dicts(self, states: list[dict]) -> None:
        """Take run n's hyperparameters, m, v and count from ``states[n]``, a
        ``KerasAdam.state_dict()`` of that run's network (parameters in the same order)."""
        if len(states) != self.n:
            raise ValueError(f"error: {len(states)} optimiser states for {self.n} runs. "
                             "Fix: one KerasAdam state_dict per run, in the pack's order")
        for index, state in enumerate(states):
            group = single_group(state)
            if len(group["params"]) != len(self.params):
                raise ValueError(f"error: run {index}'s optimiser has {len(group['params'])} "
                                 f"parameters, the pack {len(self.params)}. Fix: load the "
                                 "state of the same network")
            for name in HYPERPARAMETERS:
                getattr(self, name)[index] = float(group[name])
            self.iterations[index] = int(state["iterations"])
            for k, p in enumerate(self.params):
                single = state["state"].get(group["params"][k], {})
                for key in ("m", "v"):
                    target = self.state[p][key][index]
                    if key in single:
                        target.copy_(single[key])
                    else:
                        target.zero_()

    def state_dict(self):
        """The packed optimiser's own state (N runs at once); the single-run format is
        ``single_state_dict``."""
        state = super().state_dict()
        state["packed"] = {name: getattr(self, name).clone()
                           for name in (*HYPERPARAMETERS, "iterations")}
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        packed = state_dict.pop("packed")
        super().load_state_dict(state_dict)
        with torch.no_grad():
            for name, value in packed.items():
                getattr(self, name).copy_(value)


def single_group(state: dict) -> dict:
    """The one param group of a ``KerasAdam.state_dict()`` (a pack has one per network)."""
    groups = state["param_groups"]
    if len(groups) != 1:
        raise ValueError(f"error: a KerasAdam state with {len(groups)} param groups cannot be "
                         "packed. Fix: one param group per network, as the trainer builds")
    return groups[0]
