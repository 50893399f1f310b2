"""Reading, checking and setting the learning rate of a torch optimizer.

A schedule's rate is computed on the host (`scheduled_rate`); a float rate is written into
every parameter group, keeping their ratios (`set_learning_rate`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

#: The message for setting a number where the optimizer was given a schedule.
SCHEDULED_RATE_NOT_SETTABLE = (
    "This optimizer was created with a learning-rate schedule, so its learning rate is not "
    "settable to a number (as in Keras); assign another schedule, or give the optimizer a "
    "float `learning_rate` to set it from a callback."
)


def check_rate(value: Any) -> None:
    """Checks that `value` is a learning rate: a finite number >= 0 (not a bool).

    Raises:
        ValueError: for anything else.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ValueError(f"The learning rate must be a finite number >= 0; got {value!r}.")


def scheduled_rate(schedule: Callable[[int], float], step: int) -> float:
    """The schedule's rate at `step`, checked to be a number >= 0 (host arithmetic only).

    Args:
        schedule: a function `step -> learning rate`, such as a `kfit.schedules` schedule.
        step: the number of updates made so far.

    Returns:
        The rate as a Python float.

    Raises:
        ValueError: if the schedule returns anything but a finite number >= 0.
    """
    rate = schedule(step)
    if isinstance(rate, np.generic) or (isinstance(rate, torch.Tensor) and rate.numel() == 1):
        rate = rate.item()  # a tensor-valued schedule costs a host read at every update
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < math.inf:
        raise ValueError(
            f"The learning-rate schedule {schedule!r} must return a finite number >= 0; at step "
            f"{step} it returned {rate!r}."
        )
    return float(rate)


def get_learning_rate(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of the optimizer's first parameter group."""
    return float(optimizer.param_groups[0]["lr"])


def set_learning_rate(optimizer: torch.optim.Optimizer, value: float) -> None:
    """Sets the learning rate, keeping the ratios between parameter groups.

    The first group gets `value`; every other group is scaled by the same factor, so groups
    that were given different rates keep their proportions (a single group just gets `value`).

    Raises:
        ValueError: if `value` is negative or not a number.
        TypeError: if the optimizer has a learning-rate schedule (as in Keras).
    """
    check_rate(value)
    if getattr(optimizer, "kfit_lr_schedule", None) is not None:
        raise TypeError(SCHEDULED_RATE_NOT_SETTABLE)
    first = float(optimizer.param_groups[0]["lr"])
    for group in optimizer.param_groups:
        group["lr"] = float(value) if first == 0 else float(group["lr"]) * float(value) / first
