"""FTRL-Proximal (McMahan et al., 2013): `TorchFtrl`, the torch optimizer, and `Ftrl`.

torch.optim has no FTRL; `TorchFtrl` follows Keras's update rule
(`keras/src/optimizers/ftrl.py`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.optimizer import ParamsT

from kfit.optimizers.base import Optimizer, common_options


class TorchFtrl(torch.optim.Optimizer):
    """FTRL-Proximal (McMahan et al., 2013), with Keras's update rule; torch.optim has none.

    Args:
        params: the parameters (or parameter groups) to update.
        lr: the learning rate.
        lr_power: how the rate falls as the squared gradients add up (<= 0).
        initial_accumulator_value: the starting value of the squared-gradient sums.
        l1: the L1 regularization strength.
        l2: the L2 regularization strength.
        l2_shrinkage: the L2 shrinkage regularization strength.
        beta: Keras's `beta`, added to the L2 strength as `beta / (2 * lr)`.

    Raises:
        ValueError: if `lr_power > 0`.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        lr_power: float = -0.5,
        initial_accumulator_value: float = 0.1,
        l1: float = 0.0,
        l2: float = 0.0,
        l2_shrinkage: float = 0.0,
        beta: float = 0.0,
    ) -> None:
        if lr_power > 0:
            raise ValueError(f"`learning_rate_power` must be <= 0; got {lr_power}.")
        defaults = {
            "lr": lr,
            "lr_power": lr_power,
            "init": initial_accumulator_value,
            "l1": l1,
            "l2": l2,
            "l2_shrinkage": l2_shrinkage,
            "beta": beta,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Updates the parameters from their gradients; returns `closure()`'s loss, if given."""
        loss = None if closure is None else torch.enable_grad()(closure)()
        for group in self.param_groups:
            lr, power = group["lr"], -group["lr_power"]
            l2 = group["l2"] + group["beta"] / (2.0 * lr)
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["accumulator"] = torch.full_like(param, group["init"])
                    state["linear"] = torch.zeros_like(param)
                accum, linear = state["accumulator"], state["linear"]
                grad = param.grad + 2.0 * group["l2_shrinkage"] * param
                new_accum = accum + torch.square(param.grad)
                linear.add_(grad - (new_accum.pow(power) - accum.pow(power)) / lr * param)
                quadratic = new_accum.pow(power) / lr + 2.0 * l2
                clipped = torch.clamp(linear, -group["l1"], group["l1"])
                param.copy_((clipped - linear) / quadratic)
                accum.copy_(new_accum)
        return loss


class Ftrl(Optimizer):
    """Keras FTRL-Proximal.

    Keras defaults: `learning_rate=0.001`, `learning_rate_power=-0.5`,
    `initial_accumulator_value=0.1`, l1/l2/l2-shrinkage strengths 0, `beta=0`.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        learning_rate_power: float = -0.5,
        initial_accumulator_value: float = 0.1,
        l1_regularization_strength: float = 0.0,
        l2_regularization_strength: float = 0.0,
        l2_shrinkage_regularization_strength: float = 0.0,
        beta: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(
            TorchFtrl,
            learning_rate,
            {
                "lr_power": learning_rate_power,
                "initial_accumulator_value": initial_accumulator_value,
                "l1": l1_regularization_strength,
                "l2": l2_regularization_strength,
                "l2_shrinkage": l2_shrinkage_regularization_strength,
                "beta": beta,
            },
            keras_options={
                "learning_rate_power": learning_rate_power,
                "initial_accumulator_value": initial_accumulator_value,
                "l1_regularization_strength": l1_regularization_strength,
                "l2_regularization_strength": l2_regularization_strength,
                "l2_shrinkage_regularization_strength": l2_shrinkage_regularization_strength,
                "beta": beta,
            },
            **common_options(kwargs),
        )
