"""Cosine decays (Loshchilov & Hutter, SGDR): `CosineDecay` and `CosineDecayRestarts`.

Keras 3's constructors, defaults, formulas and configs, in plain Python arithmetic.
"""

from __future__ import annotations

import math
from typing import Any

from kfit.schedules.arguments import (
    as_step,
    checked_power,
    non_negative,
    optional_name,
    positive,
    unit_interval,
)
from kfit.schedules.base import LearningRateSchedule


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
        self.initial_learning_rate = non_negative("initial_learning_rate", initial_learning_rate)
        self.decay_steps = positive("decay_steps", decay_steps)
        self.alpha = unit_interval("alpha", alpha)
        self.name = optional_name(name)
        self.warmup_target = (
            None if warmup_target is None else non_negative("warmup_target", warmup_target)
        )
        self.warmup_steps = non_negative("warmup_steps", warmup_steps)
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
        elapsed: float = as_step(step)
        if self.warmup_target is None:
            return self._decay(min(elapsed, self.decay_steps), self.initial_learning_rate)
        elapsed = min(elapsed, self.decay_steps + self.warmup_steps)
        if elapsed < self.warmup_steps:
            rise = self.warmup_target - self.initial_learning_rate
            return rise * (elapsed / self.warmup_steps) + self.initial_learning_rate
        return self._decay(elapsed - self.warmup_steps, self.warmup_target)

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
        self.initial_learning_rate = non_negative("initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = positive("first_decay_steps", first_decay_steps)
        self.t_mul = positive("t_mul", t_mul)
        self.m_mul = non_negative("m_mul", m_mul)
        self.alpha = unit_interval("alpha", alpha)
        self.name = optional_name(name)

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
        step = as_step(step)
        restart, fraction = self._restart(step / self.first_decay_steps, step)
        cosine = (
            0.5
            * checked_power(self.m_mul, restart, self, step)
            * (1.0 + math.cos(math.pi * fraction))
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
