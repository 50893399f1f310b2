"""Keras's `Adagrad` and `Adadelta` on `torch.optim.Adagrad` and `torch.optim.Adadelta`.

PyTorch's Adagrad adds epsilon outside the square root, Keras's inside; with Keras's tiny
default epsilon the difference is far below the noise of training.
"""

from __future__ import annotations

from typing import Any

import torch

from kfit.optimizers.base import Optimizer, common_options


class Adagrad(Optimizer):
    """Keras Adagrad: `learning_rate=0.001`, `initial_accumulator_value=0.1`, `epsilon=1e-7`."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        **kwargs: Any,
    ):
        super().__init__(
            torch.optim.Adagrad,
            learning_rate,
            {"initial_accumulator_value": initial_accumulator_value, "eps": epsilon},
            keras_options={
                "initial_accumulator_value": initial_accumulator_value,
                "epsilon": epsilon,
            },
            **common_options(kwargs),
        )


class Adadelta(Optimizer):
    """Keras Adadelta: `learning_rate=0.001`, `rho=0.95`, `epsilon=1e-7`."""

    def __init__(
        self, learning_rate: float = 0.001, rho: float = 0.95, epsilon: float = 1e-7, **kwargs: Any
    ):
        super().__init__(
            torch.optim.Adadelta,
            learning_rate,
            {"rho": rho, "eps": epsilon},
            keras_options={"rho": rho, "epsilon": epsilon},
            **common_options(kwargs),
        )
