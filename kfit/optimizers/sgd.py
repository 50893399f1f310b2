"""Keras's `SGD` on `torch.optim.SGD`: momentum and Nesterov momentum."""

from __future__ import annotations

from typing import Any

import torch

from kfit.optimizers.base import Optimizer, common_options


class SGD(Optimizer):
    """Keras SGD: `learning_rate=0.01`, `momentum=0.0`, `nesterov=False`."""

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            torch.optim.SGD,
            learning_rate,
            {"momentum": momentum, "nesterov": nesterov},
            keras_options={"momentum": momentum, "nesterov": nesterov},
            **common_options(kwargs),
        )
