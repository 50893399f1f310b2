"""Lion (Chen et al., 2023): `TorchLion`, the torch optimizer, and `Lion`, Keras's constructor.

torch.optim has no Lion; `TorchLion` follows Keras's update rule
(`keras/src/optimizers/lion.py`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.optimizer import ParamsT

from kfit.optimizers.base import Optimizer, common_options


class TorchLion(torch.optim.Optimizer):
    """Lion (Chen et al., 2023), with Keras's update rule; torch.optim has none.

    Args:
        params: the parameters (or parameter groups) to update.
        lr: the learning rate.
        betas: `(beta_1, beta_2)`: the interpolation of momentum and gradient for the
            update's sign, and the momentum's decay.
    """

    def __init__(
        self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.99)
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": betas})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Updates the parameters from their gradients; returns `closure()`'s loss, if given."""
        loss = None if closure is None else torch.enable_grad()(closure)()
        for group in self.param_groups:
            beta_1, beta_2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["momentum"] = torch.zeros_like(param)
                momentum = state["momentum"]
                direction = torch.sign(momentum * beta_1 + param.grad * (1.0 - beta_1))
                param.add_(direction, alpha=-group["lr"])
                momentum.mul_(beta_2).add_(param.grad, alpha=1.0 - beta_2)
        return loss


class Lion(Optimizer):
    """Keras Lion: `learning_rate=0.001`, `beta_1=0.9`, `beta_2=0.99`."""

    def __init__(
        self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.99, **kwargs: Any
    ):
        super().__init__(
            TorchLion,
            learning_rate,
            {"betas": (beta_1, beta_2)},
            keras_options={"beta_1": beta_1, "beta_2": beta_2},
            **common_options(kwargs),
        )
