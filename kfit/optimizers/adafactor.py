"""Keras's `Adafactor` on torch's relative-step `torch.optim.Adafactor`."""

from __future__ import annotations

from typing import Any

import torch

from kfit.optimizers.base import Optimizer, common_options


class Adafactor(Optimizer):
    """Keras Adafactor on torch's relative-step Adafactor.

    Keras defaults: `learning_rate=0.001`, `beta_2_decay=-0.8`, `epsilon_1=1e-30`,
    `epsilon_2=1e-3`, `clip_threshold=1.0`.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_2_decay: float = -0.8,
        epsilon_1: float = 1e-30,
        epsilon_2: float = 1e-3,
        clip_threshold: float = 1.0,
        **kwargs: Any,
    ):
        super().__init__(
            torch.optim.Adafactor,
            learning_rate,
            {"beta2_decay": beta_2_decay, "eps": (epsilon_1, epsilon_2), "d": clip_threshold},
            keras_options={
                "beta_2_decay": beta_2_decay,
                "epsilon_1": epsilon_1,
                "epsilon_2": epsilon_2,
                "clip_threshold": clip_threshold,
            },
            **common_options(kwargs),
        )
