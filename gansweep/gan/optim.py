"""Keras 2.1's Adam, with its ``decay`` and its placement of epsilon (docs/fidelity.md, items 9-10).

Per update, with ``iterations`` counting this optimiser's previous updates from 0:

    lr'  = lr / (1 + decay * iterations)
    t    = iterations + 1
    lr_t = lr' * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m = beta_1 m + (1 - beta_1) g;   v = beta_2 v + (1 - beta_2) g^2
    p = p - lr_t * m / (sqrt(v) + epsilon)

torch.optim.Adam differs: no such decay, and epsilon is added to the bias-corrected
sqrt(v_hat), i.e. scaled by sqrt(1 - beta_2^t).
"""

from __future__ import annotations

import math

import torch


class KerasAdam(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, decay: float = 0.0):
        super().__init__(params, dict(lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                                      decay=decay))
        self.iterations = 0

    def current_lr(self) -> float:
        """lr' of the next update (the first group's), as logged."""
        group = self.param_groups[0]
        return group["lr"] / (1.0 + group["decay"] * self.iterations)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        t = self.iterations + 1
        for group in self.param_groups:
            b1, b2, eps = group["beta_1"], group["beta_2"], group["epsilon"]
            lr = group["lr"] / (1.0 + group["decay"] * self.iterations)
            lr_t = lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            ms, vs = [], []
            for p in params:
                state = self.state[p]
                if not state:
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                ms.append(state["m"])
                vs.append(state["v"])
            torch._foreach_lerp_(ms, grads, 1.0 - b1)  # m = b1 m + (1 - b1) g
            torch._foreach_mul_(vs, b2)
            torch._foreach_addcmul_(vs, grads, grads, value=1.0 - b2)
            denom = torch._foreach_sqrt(vs)
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(params, ms, denom, value=-lr_t)
        self.iterations = t
        return loss

    def state_dict(self):
        state = super().state_dict()
        state["iterations"] = self.iterations
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        self.iterations = int(state_dict.pop("iterations"))
        super().load_state_dict(state_dict)

