"""Keras's `RMSprop` on `torch.optim.RMSprop`.

PyTorch adds epsilon outside the square root, Keras inside; with Keras's tiny default
epsilon the difference is far below the noise of training.
"""

from __future__ import annotations

from typing import Any

import torch

from kfit.optimizers.base import Optimizer, common_options


class RMSprop(Optimizer):
    """Keras RMSprop: `learning_rate=0.001`, `rho=0.9`, `momentum=0.0`, `epsilon=1e-7`."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            torch.optim.RMSprop,
            learning_rate,
            {"alpha": rho, "momentum": momentum, "eps": epsilon, "centered": centered},
            keras_options={
                "rho": rho,
                "momentum": momentum,
                "epsilon": epsilon,
                "centered": centered,
            },
            **common_options(kwargs),
        )
