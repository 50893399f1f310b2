"""Keras 3's learning-rate schedules, evaluated on the host in double precision.

A schedule maps the optimizer's step count to a learning rate: `schedule(step) -> float`.
The constructors, defaults, formulas and configs are Keras 3's
(`keras.optimizers.schedules`), so a config written by `keras.optimizers.schedules.serialize`
builds the same schedule here and the other way round.

Unlike Keras, which evaluates schedules as float32 tensor ops, these are plain Python
arithmetic: kfit calls a schedule with the step as a Python int and writes the result into the
torch optimizer's `lr`, so a schedule never touches the device and never reads a value back
from it. Values agree with Keras's to float32 precision (Keras rounds its inputs and each
operation to float32; kfit's are exact to double precision).

Arguments are checked more strictly than Keras does where a bad value would otherwise give a
NaN, complex, negative or silently ignored learning rate. Every numeric argument is a real
number here: Keras 3 computes a schedule in the dtype of `initial_learning_rate`, so an
integer one truncates everything (`ExponentialDecay(1, 10, 0.5)(10)` is 0 in Keras, 0.5 here).
"""

from __future__ import annotations

import bisect
import math
import numbers
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kfit.registry import unknown_id_error

__all__ = [
    "CosineDecay",
    "CosineDecayRestarts",
    "ExponentialDecay",
    "InverseTimeDecay",
    "LearningRateSchedule",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "deserialize",
    "get",
    "serialize",
]

# Keras writes this module name into the configs of its built-in schedules.
_KERAS_MODULE = "keras.optimizers.schedules"


def _as_step(step: Any) -> int:
    """Returns `step` as a non-negative Python int.

    Accepts what `operator.index` accepts: Python and NumPy integers and single-element
    integer tensors (a CUDA tensor is copied to the host, so kfit itself passes Python ints).
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


def _number(name: str, value: Any, condition: str, valid: Callable[[float], bool]) -> int | float:
    """Checks that `value` is a finite real number meeting `condition` (tested by `valid`).

    Returns it as a Python int (for integers) or float, so configs stay JSON-friendly.
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


def _positive(name: str, value: Any) -> int | float:
    return _number(name, value, "> 0", lambda v: v > 0)


def _non_negative(name: str, value: Any) -> int | float:
    return _number(name, value, ">= 0", lambda v: v >= 0)


def _fraction(name: str, value: Any) -> int | float:
    return _number(name, value, "in [0, 1]", lambda v: 0 <= v <= 1)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be True or False; got {value!r}.")
    return value


def _name(value: Any) -> str | None:
    # Keras's own deserialization example writes `"name": None`, so None is accepted.
    if value is not None and not isinstance(value, str):
        raise TypeError(f"`name` must be a string or None; got {value!r}.")
    return value


def _power(base: float, exponent: float, schedule: LearningRateSchedule, step: int) -> float:
    """`base ** exponent` in floats, with a clear error where the power overflows."""
    try:
        # float(): an int base and a staircase's int exponent would build a huge exact int.
        return float(base) ** exponent
    except OverflowError:
        raise OverflowError(
            f"{type(schedule).__name__}: {base!r} ** {exponent!r} overflows at step {step}; "
            "the learning rate would be infinite."
        ) from None


class LearningRateSchedule:
    """The base class of learning-rate schedules.

    A schedule is called with the optimizer's step count (the number of optimizer updates
    done so far, starting at 0) and returns the learning rate for the next update. Pass one
    as the `learning_rate` of a kfit optimizer to change the rate as training goes on.

    To write your own, subclass it and implement `__call__(step)`; implement `get_config()`
    too (returning the constructor's arguments) to make it serializable. kfit calls
    schedules with a Python int and expects a Python float back: keep the computation in
    plain Python so that it runs on the host with no device synchronization.

    Example:
        >>> class OneOverT(LearningRateSchedule):
        ...     def __init__(self, initial_learning_rate):
        ...         self.initial_learning_rate = initial_learning_rate
        ...
        ...     def __call__(self, step):
        ...         return self.initial_learning_rate / (step + 1)
        ...
        ...     def get_config(self):
        ...         return {"initial_learning_rate": self.initial_learning_rate}
        >>> OneOverT(0.1)(4)
        0.02
    """

    def __call__(self, step: int) -> float:
        """Returns the learning rate at `step`.

        Args:
            step: the optimizer's step count, a non-negative Python int. The built-in
                schedules also take a NumPy integer or a single-element integer tensor
                (reading a tensor on an accelerator waits for the device; kfit passes ints).

        Returns:
            The learning rate, a Python float.

        Raises:
            TypeError: (built-in schedules) if `step` is not an integer.
            ValueError: (built-in schedules) if `step` is negative.
        """
        raise NotImplementedError(
            f"Learning rate schedule {type(self).__name__!r} must override `__call__(self, step)`."
        )

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments that rebuild this schedule."""
        raise NotImplementedError(
            f"Learning rate schedule {type(self).__name__!r} must override `get_config()` to "
            "be serializable."
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LearningRateSchedule:
        """Builds a schedule from the output of `get_config()`.

        Args:
            config: the constructor's arguments by name.

        Returns:
            A new schedule of this class.
        """
        return cls(**config)

    def __repr__(self) -> str:
        try:
            config = self.get_config()
        except NotImplementedError:
            return object.__repr__(self)
        arguments = ", ".join(f"{key}={value!r}" for key, value in config.items())
        return f"{type(self).__name__}({arguments})"


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
        self.initial_learning_rate = _non_negative("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        # A negative rate would give complex numbers at fractional exponents.
        self.decay_rate = _non_negative("decay_rate", decay_rate)
        self.staircase = _flag("staircase", staircase)
        self.name = _name(name)

    def __call__(self, step: int) -> float:
        step = _as_step(step)
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return self.initial_learning_rate * _power(self.decay_rate, exponent, self, step)

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
            _number(f"boundaries[{i}]", b, "", lambda _: True) for i, b in enumerate(boundaries)
        ]
        for i in range(1, len(self.boundaries)):
            if self.boundaries[i] <= self.boundaries[i - 1]:
                raise ValueError(
                    "`boundaries` must be strictly increasing; got "
                    f"boundaries={self.boundaries!r} (boundaries[{i}] <= boundaries[{i - 1}])."
                )
        self.values = [_non_negative(f"values[{i}]", v) for i, v in enumerate(values)]
        self.name = _name(name)

    def __call__(self, step: int) -> float:
        # bisect_left counts the boundaries strictly below `step`: the index of its interval.
        return float(self.values[bisect.bisect_left(self.boundaries, _as_step(step))])

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
        self.initial_learning_rate = _non_negative("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.end_learning_rate = _non_negative("end_learning_rate", end_learning_rate)
        self.power = _non_negative("power", power)
        self.cycle = _flag("cycle", cycle)
        self.name = _name(name)

    def __call__(self, step: int) -> float:
        step = _as_step(step)
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps *= max(1, math.ceil(step / decay_steps))
        else:
            step = min(step, decay_steps)
        # Clamped: rounding must not make the base negative (a complex number at power 0.5).
        remaining = max(0.0, 1.0 - step / decay_steps)
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
        self.initial_learning_rate = _non_negative("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.decay_rate = _non_negative("decay_rate", decay_rate)
        self.staircase = _flag("staircase", staircase)
        self.name = _name(name)

    def __call__(self, step: int) -> float:
        time = _as_step(step) / self.decay_steps
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


class CosineDecay(LearningRateSchedule):
    """A cosine decay (Loshchilov & Hutter, SGDR), optionally after a linear warmup.

    Without `warmup_target`, the rate decays from `initial_learning_rate` to
    `alpha * initial_learning_rate` over `decay_steps` steps and then stays there:

    ```python
    step = min(step, decay_steps)
    cosine = 0.5 * (1 + cos(pi * step / decay_steps))
    initial_learning_rate * ((1 - alpha) * cosine + alpha)
    ```

    With `warmup_target`, the rate first rises linearly from `initial_learning_rate` to
    `warmup_target` over `warmup_steps` steps (Goyal et al., 2017), then decays as above from
    `warmup_target` to `alpha * warmup_target` over the next `decay_steps` steps.

    Args:
        initial_learning_rate: the learning rate at step 0 (a float >= 0).
        decay_steps: the number of steps of the decay (> 0).
        alpha: the final rate as a fraction of the rate the decay starts from, in [0, 1].
            Defaults to `0.0`.
        name: an optional name, kept in the config. Defaults to `"CosineDecay"`.
        warmup_target: the rate reached at the end of the warmup (>= 0), or `None` (the
            default) for no warmup.
        warmup_steps: the number of warmup steps (>= 0). Defaults to `0`; with
            `warmup_target` set and `warmup_steps=0` the decay starts from `warmup_target`
            at step 0, as in Keras.

    Raises:
        TypeError: for an argument of the wrong type.
        ValueError: for `decay_steps <= 0`, `alpha` outside [0, 1], a negative or non-finite
            rate or step count, or `warmup_steps > 0` without a `warmup_target` (Keras would
            silently skip the warmup).

    Example:
        >>> schedule = CosineDecay(
        ...     0.0, decay_steps=100, alpha=0.1, warmup_target=1.0, warmup_steps=10
        ... )
        >>> schedule(0), schedule(5), schedule(10), schedule(60), schedule(110), schedule(500)
        (0.0, 0.5, 1.0, 0.55, 0.1, 0.1)
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: float,
        alpha: float = 0.0,
        name: str | None = "CosineDecay",
        warmup_target: float | None = None,
        warmup_steps: float = 0,
    ):
        super().__init__()
        self.initial_learning_rate = _non_negative("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.alpha = _fraction("alpha", alpha)
        self.name = _name(name)
        self.warmup_target = (
            None if warmup_target is None else _non_negative("warmup_target", warmup_target)
        )
        self.warmup_steps = _non_negative("warmup_steps", warmup_steps)
        if self.warmup_target is None and self.warmup_steps > 0:
            raise ValueError(
                f"`warmup_steps={warmup_steps!r}` needs a `warmup_target`, the rate to warm up "
                "to; without one there is no warmup. Pass `warmup_target` or "
                "`warmup_steps=0`."
            )

    def _decay(self, step: float, decay_from: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * (step / self.decay_steps)))
        return decay_from * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step: int) -> float:
        step = _as_step(step)
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            rise = self.warmup_target - self.initial_learning_rate
            return rise * (step / self.warmup_steps) + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class CosineDecayRestarts(LearningRateSchedule):
    """A cosine decay with warm restarts (Loshchilov & Hutter, SGDR).

    The learning-rate multiplier decays along a half cosine from 1 to `alpha` over
    `first_decay_steps` steps; then the schedule restarts. The `i`-th period (counting from
    0) lasts `first_decay_steps * t_mul ** i` steps and starts from `m_mul ** i` times the
    initial rate:

    ```python
    cosine = 0.5 * m_mul ** i * (1 + cos(pi * fraction_of_period_i_done))
    initial_learning_rate * ((1 - alpha) * cosine + alpha)
    ```

    At a step where a period ends and the next one starts, the rate is the new period's
    first one.

    Args:
        initial_learning_rate: the learning rate at step 0 (a float >= 0).
        first_decay_steps: the length of the first period in steps (> 0).
        t_mul: the factor by which each period is longer than the one before (> 0).
            Defaults to `2.0`. Below 1 the periods shrink and infinitely many fit before step
            `first_decay_steps / (1 - t_mul)`; calling the schedule at or past that step
            raises a `ValueError` (Keras returns NaN there).
        m_mul: the factor by which each period starts lower than the one before (>= 0).
            Defaults to `1.0`.
        alpha: the rate's floor as a fraction of `initial_learning_rate`, in [0, 1]; it is
            not scaled by `m_mul`. Defaults to `0.0`.
        name: an optional name, kept in the config. Defaults to `"SGDRDecay"`.

    Raises:
        TypeError: for an argument of the wrong type.
        ValueError: for `first_decay_steps <= 0`, `t_mul <= 0`, a negative `m_mul`, `alpha`
            outside [0, 1] or a negative or non-finite rate.

    Example:
        >>> schedule = CosineDecayRestarts(1.0, first_decay_steps=10, t_mul=2.0, m_mul=0.5)
        >>> schedule(0), schedule(5), schedule(10), schedule(20), schedule(30)
        (1.0, 0.5, 0.5, 0.25, 0.25)
    """

    def __init__(
        self,
        initial_learning_rate: float,
        first_decay_steps: float,
        t_mul: float = 2.0,
        m_mul: float = 1.0,
        alpha: float = 0.0,
        name: str | None = "SGDRDecay",
    ):
        super().__init__()
        self.initial_learning_rate = _non_negative("initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = _positive("first_decay_steps", first_decay_steps)
        self.t_mul = _positive("t_mul", t_mul)
        self.m_mul = _non_negative("m_mul", m_mul)
        self.alpha = _fraction("alpha", alpha)
        self.name = _name(name)

    def _periods_before(self, periods: int) -> float:
        """The length of the first `periods` periods together, in units of the first one."""
        return (1.0 - self.t_mul**periods) / (1.0 - self.t_mul)

    def _restart(self, done: float, step: int) -> tuple[int, float]:
        """Splits `done` first-period lengths into (restart index, fraction of that period)."""
        t_mul = self.t_mul
        if t_mul == 1.0:
            restart = math.floor(done)
            return restart, done - restart
        # The periods before restart `i` add up to (t_mul**i - 1) / (t_mul - 1).
        elapsed = 1.0 + done * (t_mul - 1.0)
        if elapsed <= 0.0:
            raise ValueError(
                f"CosineDecayRestarts with t_mul={t_mul!r} < 1 restarts infinitely often "
                f"before step {self.first_decay_steps / (1.0 - t_mul)!r}; got step={step}."
            )
        restart = math.floor(math.log(elapsed) / math.log(t_mul))
        # The logarithm can land a rounding error below a restart: settle it exactly.
        if self._periods_before(restart + 1) <= done:
            restart += 1
        elif restart > 0 and self._periods_before(restart) > done:
            restart -= 1
        fraction = (done - self._periods_before(restart)) / t_mul**restart
        return restart, fraction

    def __call__(self, step: int) -> float:
        step = _as_step(step)
        restart, fraction = self._restart(step / self.first_decay_steps, step)
        cosine = (
            0.5 * _power(self.m_mul, restart, self, step) * (1.0 + math.cos(math.pi * fraction))
        )
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self.t_mul,
            "m_mul": self.m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }


ALL_OBJECTS_DICT: dict[str, type[LearningRateSchedule]] = {
    cls.__name__: cls
    for cls in (
        CosineDecay,
        CosineDecayRestarts,
        ExponentialDecay,
        InverseTimeDecay,
        PiecewiseConstantDecay,
        PolynomialDecay,
    )
}


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """Returns a schedule as a JSON-friendly dict, in the form Keras 3 writes.

    Args:
        schedule: the schedule; its class must implement `get_config()`.

    Returns:
        `{"module": ..., "class_name": ..., "config": {...}, "registered_name": None}`; for
        a built-in schedule it equals `keras.optimizers.schedules.serialize` of the same
        Keras schedule.

    Raises:
        TypeError: if `schedule` is not a `LearningRateSchedule`.

    Example:
        >>> serialize(InverseTimeDecay(0.1, 10, 0.5))["config"]["decay_rate"]
        0.5
    """
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(
            f"`schedule` must be a kfit.schedules.LearningRateSchedule; got {schedule!r}."
        )
    cls = type(schedule)
    return {
        "module": _KERAS_MODULE if ALL_OBJECTS_DICT.get(cls.__name__) is cls else cls.__module__,
        "class_name": cls.__name__,
        "config": schedule.get_config(),
        "registered_name": None,
    }


def deserialize(
    config: Mapping[str, Any], custom_objects: Mapping[str, type] | None = None
) -> LearningRateSchedule:
    """Builds a schedule from a dict written by `serialize` (kfit's or Keras's).

    Args:
        config: a dict with `"class_name"` and `"config"` (the constructor's arguments);
            other keys (`"module"`, `"registered_name"`) are ignored.
        custom_objects: your own `LearningRateSchedule` subclasses by class name.

    Returns:
        The schedule.

    Raises:
        TypeError: if `config` is not a dict of that form.
        ValueError: for an unknown class name (naming the closest known one) or invalid
            constructor arguments.

    Example:
        >>> deserialize({"class_name": "ExponentialDecay", "config": {
        ...     "initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5}})(20)
        0.025
    """
    if (
        not isinstance(config, Mapping)
        or not isinstance(config.get("class_name"), str)
        or not isinstance(config.get("config", {}), Mapping)
    ):
        raise TypeError(
            "A serialized schedule must be a dict {'class_name': str, 'config': dict}; "
            f"got {config!r}."
        )
    classes = {**ALL_OBJECTS_DICT, **(custom_objects or {})}
    class_name = config["class_name"]
    if class_name not in classes:
        raise unknown_id_error(
            "learning rate schedule",
            class_name,
            list(classes),
            "kfit.schedules.ALL_OBJECTS_DICT",
        )
    cls = classes[class_name]
    if not (isinstance(cls, type) and issubclass(cls, LearningRateSchedule)):
        raise TypeError(
            f"custom_objects[{class_name!r}] must be a LearningRateSchedule subclass; got {cls!r}."
        )
    return cls.from_config(dict(config.get("config", {})))


def get(identifier: LearningRateSchedule | Mapping[str, Any]) -> LearningRateSchedule:
    """Resolves a learning-rate schedule identifier.

    Args:
        identifier: a `LearningRateSchedule` (returned as is) or a dict
            `{"class_name": ..., "config": {...}}` as written by `serialize` or by Keras's
            `keras.optimizers.schedules.serialize`.

    Returns:
        The schedule.

    Raises:
        TypeError: for anything else (a schedule needs its arguments, so a bare name is not
            an identifier).
        ValueError: for an unknown class name, naming the closest known one.

    Example:
        >>> get({"class_name": "CosineDecay", "config": {
        ...     "initial_learning_rate": 1.0, "decay_steps": 10}})(5)
        0.5
    """
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    if isinstance(identifier, Mapping):
        return deserialize(identifier)
    raise TypeError(
        "A learning-rate schedule identifier must be a kfit.schedules.LearningRateSchedule or "
        f"a dict {{'class_name': ..., 'config': {{...}}}}; got {identifier!r}."
    )
