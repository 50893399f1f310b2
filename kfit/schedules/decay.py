"""Step-count decays: exponential, piecewise constant, polynomial and inverse time.

Keras 3's `ExponentialDecay`, `PiecewiseConstantDecay`, `PolynomialDecay` and
`InverseTimeDecay`: same constructors, defaults, formulas and configs, in plain Python
arithmetic.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

from kfit.schedules.arguments import (
    as_step,
    checked_power,
    flag,
    non_negative,
    optional_name,
    positive,
    real_number,
)
from kfit.schedules.base import LearningRateSchedule


class ExponentialDecay(LearningRateSchedule):
    """Multiplies the learning rate by `decay_rate` every `decay_steps` steps.

    The learning rate at `step` is

    ```python
    initial_learning_rate * decay_rate ** (step / decay_steps)
    ```

    where, with `staircase=True`, `step / decay_steps` is rounded down to an integer, so the
    rate drops in steps instead of continuously.

    Args:
        initial_learning_rate: the learning rate at step 0 (a float >= 0).
        decay_steps: the number of steps over which the rate is multiplied by `decay_rate`
            once (> 0).
        decay_rate: the factor per `decay_steps` steps (>= 0; below 1 decays, above 1 grows).
        staircase: whether to decay at whole multiples of `decay_steps` only.
        name: an optional name, kept in the config. Defaults to `"ExponentialDecay"`.

    Raises:
        TypeError: for an argument of the wrong type.
        ValueError: for `decay_steps <= 0` or a negative or non-finite rate.

    Example:
        >>> schedule = ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5, staircase=True)
        >>> schedule(0), schedule(99), schedule(100), schedule(250)
        (0.1, 0.1, 0.05, 0.025)
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: float,
        decay_rate: float,
        staircase: bool = False,
        name: str | None = "ExponentialDecay",
    ):
        super().__init__()
        self.initial_learning_rate = non_negative("initial_learning_rate", initial_learning_rate)
        self.decay_steps = positive("decay_steps", decay_steps)
        # A negative rate would give complex numbers at fractional exponents.
        self.decay_rate = non_negative("decay_rate", decay_rate)
        self.staircase = flag("staircase", staircase)
        self.name = optional_name(name)

    def __call__(self, step: int) -> float:
        step = as_step(step)
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return self.initial_learning_rate * checked_power(self.decay_rate, exponent, self, step)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class PiecewiseConstantDecay(LearningRateSchedule):
    """A learning rate that is constant between step boundaries.

    The rate is `values[0]` while `step <= boundaries[0]`, `values[i]` while
    `boundaries[i - 1] < step <= boundaries[i]`, and `values[-1]` once
    `step > boundaries[-1]`.

    Args:
        boundaries: the steps at which the rate changes, strictly increasing. An empty list
            gives the constant rate `values[0]`.
        values: the learning rates (each >= 0), one more than `boundaries`.
        name: an optional name, kept in the config. Defaults to `"PiecewiseConstant"`.

    Raises:
        TypeError: if `boundaries` or `values` is not a list or tuple of numbers.
        ValueError: if `len(values) != len(boundaries) + 1`, the boundaries are not strictly
            increasing, or a value is negative or not finite.

    Example:
        >>> schedule = PiecewiseConstantDecay(boundaries=[100, 110], values=[1.0, 0.5, 0.1])
        >>> schedule(100), schedule(101), schedule(110), schedule(111)
        (1.0, 0.5, 0.5, 0.1)
    """

    def __init__(
        self,
        boundaries: Sequence[float],
        values: Sequence[float],
        name: str | None = "PiecewiseConstant",
    ):
        super().__init__()
        for argument, sequence in (("boundaries", boundaries), ("values", values)):
            if not isinstance(sequence, list | tuple):
                raise TypeError(
                    f"`{argument}` must be a list or tuple of numbers; got {sequence!r}."
                )
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                "`values` must have one more element than `boundaries`; got "
                f"boundaries={list(boundaries)!r} of length {len(boundaries)} and "
                f"values={list(values)!r} of length {len(values)}."
            )
        self.boundaries = [
            real_number(f"boundaries[{i}]", b, "", lambda _: True) for i, b in enumerate(boundaries)
        ]
        for i in range(1, len(self.boundaries)):
            if self.boundaries[i] <= self.boundaries[i - 1]:
                raise ValueError(
                    "`boundaries` must be strictly increasing; got "
                    f"boundaries={self.boundaries!r} (boundaries[{i}] <= boundaries[{i - 1}])."
                )
        self.values = [non_negative(f"values[{i}]", v) for i, v in enumerate(values)]
        self.name = optional_name(name)

    def __call__(self, step: int) -> float:
        # bisect_left counts the boundaries strictly below `step`: the index of its interval.
        return float(self.values[bisect.bisect_left(self.boundaries, as_step(step))])

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": list(self.boundaries), "values": list(self.values), "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """Decays the learning rate polynomially to `end_learning_rate` over `decay_steps` steps.

    The learning rate at `step` is

    ```python
    step = min(step, decay_steps)
    (initial_learning_rate - end_learning_rate) * (1 - step / decay_steps) ** power
        + end_learning_rate
    ```

    so it stays at `end_learning_rate` after `decay_steps`. With `cycle=True` the decay
    instead restarts: `decay_steps` is replaced by its smallest multiple that is `>= step`
    (`decay_steps` itself at step 0), so the rate jumps back up after each multiple.

    Args:
        initial_learning_rate: the learning rate at step 0 (a float >= 0).
        decay_steps: the number of steps to reach `end_learning_rate` (> 0).
        end_learning_rate: the final learning rate (>= 0). Defaults to `0.0001`.
        power: the exponent of the polynomial (>= 0); `1.0`, the default, is linear.
        cycle: whether to restart the decay after each multiple of `decay_steps`.
        name: an optional name, kept in the config. Defaults to `"PolynomialDecay"`.

    Raises:
        TypeError: for an argument of the wrong type.
        ValueError: for `decay_steps <= 0`, a negative `power` (an infinite rate at
            `decay_steps`) or a negative or non-finite rate.

    Example:
        >>> schedule = PolynomialDecay(0.1, decay_steps=10, end_learning_rate=0.0, power=2.0)
        >>> schedule(0), schedule(5), schedule(10), schedule(20)
        (0.1, 0.025, 0.0, 0.0)
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: float,
        end_learning_rate: float = 0.0001,
        power: float = 1.0,
        cycle: bool = False,
        name: str | None = "PolynomialDecay",
    ):
        super().__init__()
        self.initial_learning_rate = non_negative("initial_learning_rate", initial_learning_rate)
        self.decay_steps = positive("decay_steps", decay_steps)
        self.end_learning_rate = non_negative("end_learning_rate", end_learning_rate)
        self.power = non_negative("power", power)
        self.cycle = flag("cycle", cycle)
        self.name = optional_name(name)

    def __call__(self, step: int) -> float:
        elapsed: float = as_step(step)
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps *= max(1, math.ceil(elapsed / decay_steps))
        else:
            elapsed = min(elapsed, decay_steps)
        # Clamped: rounding must not make the base negative (a complex number at power 0.5).
        remaining = max(0.0, 1.0 - elapsed / decay_steps)
        span = self.initial_learning_rate - self.end_learning_rate
        return span * remaining**self.power + self.end_learning_rate

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


class InverseTimeDecay(LearningRateSchedule):
    """Decays the learning rate as `1 / t`.

    The learning rate at `step` is

    ```python
    initial_learning_rate / (1 + decay_rate * step / decay_steps)
    ```

    where, with `staircase=True`, `step / decay_steps` is rounded down to an integer.

    Args:
        initial_learning_rate: the learning rate at step 0 (a float >= 0).
        decay_steps: the unit of steps in which time is counted (> 0).
        decay_rate: how fast the rate falls (>= 0; a negative rate would reach a division by
            zero).
        staircase: whether to decay at whole multiples of `decay_steps` only.
        name: an optional name, kept in the config. Defaults to `"InverseTimeDecay"`.

    Raises:
        TypeError: for an argument of the wrong type.
        ValueError: for `decay_steps <= 0` or a negative or non-finite rate.

    Example:
        >>> schedule = InverseTimeDecay(0.1, decay_steps=1.0, decay_rate=0.5)
        >>> schedule(0), schedule(2), schedule(8)
        (0.1, 0.05, 0.02)
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: float,
        decay_rate: float,
        staircase: bool = False,
        name: str | None = "InverseTimeDecay",
    ):
        super().__init__()
        self.initial_learning_rate = non_negative("initial_learning_rate", initial_learning_rate)
        self.decay_steps = positive("decay_steps", decay_steps)
        self.decay_rate = non_negative("decay_rate", decay_rate)
        self.staircase = flag("staircase", staircase)
        self.name = optional_name(name)

    def __call__(self, step: int) -> float:
        time = as_step(step) / self.decay_steps
        if self.staircase:
            time = math.floor(time)
        return self.initial_learning_rate / (1.0 + self.decay_rate * time)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }
