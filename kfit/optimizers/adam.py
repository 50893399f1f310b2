"""The Adam family on torch.optim: Keras's `Adam`, `AdamW`, `Adamax` and `Nadam`.

PyTorch adds epsilon to the bias-corrected root (Keras's "epsilon hat"); with Keras's tiny
default epsilon the difference is far below the noise of training.
"""

from __future__ import annotations

from typing import Any

import torch

from kfit.optimizers.base import Optimizer, common_options


class Adam(Optimizer):
    """Keras Adam: `learning_rate=0.001`, `beta_1=0.9`, `beta_2=0.999`, `epsilon=1e-7`."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            torch.optim.Adam,
            learning_rate,
            {"betas": (beta_1, beta_2), "eps": epsilon, "amsgrad": amsgrad},
            keras_options={
                "beta_1": beta_1,
                "beta_2": beta_2,
                "epsilon": epsilon,
                "amsgrad": amsgrad,
            },
            **common_options(kwargs),
        )


class AdamW(Optimizer):
    """Keras AdamW: Adam with decoupled `weight_decay=0.004`."""

    decoupled_decay_in_torch = True

    def __init__(
        self,
        learning_rate: float = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            torch.optim.AdamW,
            learning_rate,
            {"betas": (beta_1, beta_2), "eps": epsilon, "amsgrad": amsgrad},
            weight_decay=weight_decay,
            keras_options={
                "beta_1": beta_1,
                "beta_2": beta_2,
                "epsilon": epsilon,
                "amsgrad": amsgrad,
            },
            **common_options(kwargs),
        )


class Adamax(Optimizer):
    """Keras Adamax: `learning_rate=0.001`, `beta_1=0.9`, `beta_2=0.999`, `epsilon=1e-7`."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **kwargs: Any,
    ):
        super().__init__(
            torch.optim.Adamax,
            learning_rate,
            {"betas": (beta_1, beta_2), "eps": epsilon},
            keras_options={"beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon},
            **common_options(kwargs),
        )


class Nadam(Optimizer):
    """Keras Nadam: `learning_rate=0.001`, `beta_1=0.9`, `beta_2=0.999`, `epsilon=1e-7`.

    Keras's momentum schedule `beta_1 * (1 - 0.5 * 0.96**(0.004 t))` is torch's
    `momentum_decay=0.004`.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **kwargs: Any,
    ):
        super().__init__(
            torch.optim.NAdam,
            learning_rate,
            {"betas": (beta_1, beta_2), "eps": epsilon, "momentum_decay": 0.004},
            keras_options={"beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon},
            **common_options(kwargs),
        )
