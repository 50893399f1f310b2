"""`LearningRateSchedule`, the base class of learning-rate schedules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
