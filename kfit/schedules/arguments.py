"""Argument checks shared by the built-in learning-rate schedules.

Stricter than Keras where a bad value would otherwise give a NaN, complex, negative or
silently ignored learning rate: every numeric argument must be a finite real number, and
the step an integer >= 0.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable
from typing import Any

from kfit.schedules.base import LearningRateSchedule


def as_step(step: Any) -> int:
    """Returns `step` as a non-negative Python int.

    Accepts what `operator.index` accepts: Python and NumPy integers and single-element
    integer tensors (a CUDA tensor is copied to the host, so kfit itself passes Python ints).

    Args:
        step: the optimizer's step count.

    Returns:
        The step as a Python int.

    Raises:
        TypeError: if `step` is not an integer (a bool included).
        ValueError: if `step` is negative.
    """
    if isinstance(step, bool):
        raise TypeError(f"`step` must be an integer; got {step!r}.")
    try:
        index = operator.index(step)
    except TypeError:
        raise TypeError(
            "`step` must be an integer (a Python int, a NumPy integer or a 0-d integer "
            f"tensor); got {step!r} of type {type(step).__name__}."
        ) from None
    if index < 0:
        raise ValueError(f"`step` must be >= 0; got {index}.")
    return index


def real_number(
    name: str, value: Any, condition: str, valid: Callable[[float], bool]
) -> int | float:
    """Checks that `value` is a finite real number meeting `condition` (tested by `valid`).

    Args:
        name: the argument's name, for messages.
        value: the argument.
        condition: the condition in words, such as `"> 0"` (empty for none).
        valid: tests the condition.

    Returns:
        `value` as a Python int (for integers) or float, so configs stay JSON-friendly.

    Raises:
        TypeError: if `value` is not a real number (a bool included).
        ValueError: if it is not finite or fails `valid`.
    """
    expected = f"a finite number {condition}".rstrip()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be {expected}; got {value!r} of type {type(value).__name__}."
        )
    number = int(value) if isinstance(value, numbers.Integral) else float(value)
    if not math.isfinite(number) or not valid(number):
        raise ValueError(f"`{name}` must be {expected}; got {name}={value!r}.")
    return number


def positive(name: str, value: Any) -> int | float:
    """`real_number` for a value > 0."""
    return real_number(name, value, "> 0", lambda v: v > 0)


def non_negative(name: str, value: Any) -> int | float:
    """`real_number` for a value >= 0."""
    return real_number(name, value, ">= 0", lambda v: v >= 0)


def unit_interval(name: str, value: Any) -> int | float:
    """`real_number` for a value in [0, 1]."""
    return real_number(name, value, "in [0, 1]", lambda v: 0 <= v <= 1)


def flag(name: str, value: Any) -> bool:
    """Checks that `value` is True or False.

    Raises:
        TypeError: for anything else.
    """
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be True or False; got {value!r}.")
    return value


def optional_name(value: Any) -> str | None:
    """Checks a schedule's `name`: a string or None.

    Raises:
        TypeError: for anything else.
    """
    # Keras's own deserialization example writes `"name": None`, so None is accepted.
    if value is not None and not isinstance(value, str):
        raise TypeError(f"`name` must be a string or None; got {value!r}.")
    return value


def checked_power(base: float, exponent: float, schedule: LearningRateSchedule, step: int) -> float:
    """`base ** exponent` in floats, with a clear error where the power overflows.

    Raises:
        OverflowError: naming the schedule and the step, if the power overflows.
    """
    try:
        # float(): an int base and a staircase's int exponent would build a huge exact int.
        return float(base) ** exponent
    except OverflowError:
        raise OverflowError(
            f"{type(schedule).__name__}: {base!r} ** {exponent!r} overflows at step {step}; "
            "the learning rate would be infinite."
        ) from None
