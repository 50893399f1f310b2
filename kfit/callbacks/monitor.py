"""`MonitorCallback`: monitor / mode / min_delta / baseline, shared by the monitoring callbacks."""

from __future__ import annotations

import math
import operator
import warnings
from typing import Any, Literal

from kfit.callbacks.callback import Callback
from kfit.callbacks.state import checked, plain_number

Mode = Literal["auto", "min", "max"]


def check_count(name: str, value: Any) -> None:
    """Raises a `ValueError` unless `value` is an integer >= 0 (patience, cooldown, ...)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"`{name}` must be an integer >= 0; got {value!r}.")


def check_save_freq(save_freq: Any) -> None:
    """Raises a `ValueError` unless `save_freq` is `'epoch'` or a number of batches >= 1."""
    if save_freq != "epoch" and (
        isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1
    ):
        raise ValueError(
            f"`save_freq` must be 'epoch' or an integer number of batches >= 1; got {save_freq!r}."
        )


class BatchCountdown:
    """Counts training batches across epochs; `tick` is True on every `every`-th one.

    Args:
        every: how many batches make one period.
    """

    def __init__(self, every: int):
        self.every = every
        self.count = 0

    def tick(self) -> bool:
        self.count += 1
        if self.count < self.every:
            return False
        self.count = 0
        return True


class MonitorCallback(Callback):
    """Base of callbacks that watch one logged quantity for improvement (Keras's semantics).

    Args:
        monitor: the log key to watch, e.g. `'val_loss'` or `'val_accuracy'`.
        mode: `'min'`, `'max'`, or `'auto'`: lower is better for `*loss` keys, otherwise the
            metric's own direction (`metric.direction`; 'up' for accuracy, AUC, ...).
        baseline: the initial best value; None takes the first value seen.
        min_delta: the smallest change that counts as an improvement.

    Raises:
        ValueError: for an unknown `mode`, or in `'auto'` mode when the direction of `monitor`
            cannot be found (when training starts).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: Mode = "auto",
        baseline: float | None = None,
        min_delta: float = 0.0,
    ):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"`mode` must be 'auto', 'min' or 'max'; got {mode!r}.")
        self.monitor = monitor
        self.mode = mode
        self.baseline = baseline
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op: Any = None
        self._warned_nan = False

    def state_dict(self) -> dict[str, Any]:
        """`{'best': the best monitored value so far}` (for `BackupAndRestore`)."""
        return {"best": plain_number(self.best)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores what `state_dict()` returned.

        Raises:
            ValueError: for a missing or non-numeric entry; nothing is changed then.
        """
        self.best = checked(self, state, {"best": "number?"})["best"]

    def _set_monitor_op(self) -> None:
        """Settles whether lower or higher is better (call at `on_train_begin`)."""
        mode = self.mode
        if mode == "auto":
            direction = self.model.metric_direction(self.monitor)
            if direction is None:
                raise ValueError(
                    f"{type(self).__name__} cannot tell whether monitor={self.monitor!r} should "
                    "be minimised or maximised; pass mode='min' or mode='max'."
                )
            mode = "max" if direction == "up" else "min"
        self.monitor_op = operator.gt if mode == "max" else operator.lt
        self._signed_delta = self.min_delta if mode == "max" else -self.min_delta

    def _is_improvement(self, value: float, reference: float | None) -> bool:
        """Whether `value` beats `reference` by more than `min_delta` (Keras's rule).

        NaN is never an improvement (Keras counts a first NaN as the best, then nothing beats
        it); the first NaN seen is reported with a warning.
        """
        if _is_nan(value):
            if not self._warned_nan:
                self._warned_nan = True
                warnings.warn(
                    f"{type(self).__name__}: the monitored value {self.monitor!r} is NaN; a NaN "
                    "never counts as an improvement.",
                    stacklevel=3,
                )
            return False
        if reference is None or _is_nan(reference):
            return True
        return bool(self.monitor_op(value - self._signed_delta, reference))


def _is_nan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False
