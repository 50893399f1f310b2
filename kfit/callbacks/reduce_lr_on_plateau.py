"""`ReduceLROnPlateau`: lowers the learning rate when a monitored quantity stops improving."""

from __future__ import annotations

import warnings
from typing import Any

from kfit import distributed
from kfit.callbacks.monitor import Mode, MonitorCallback, check_count
from kfit.callbacks.state import checked, plain_number
from kfit.optimizers import get_learning_rate, set_learning_rate


class ReduceLROnPlateau(MonitorCallback):
    """Multiplies the learning rate by `factor` when a quantity has stopped improving.

    At the end of every epoch the learning rate the epoch used is added to the logs as
    `logs['learning_rate']` (so it appears in History and on the log line). Then, after
    `patience` epochs without an improvement of more than `min_delta`, the learning rate
    becomes `max(lr * factor, min_lr)`, and `cooldown` epochs pass before waiting starts again.
    The rate is changed with `kfit.optimizers.set_learning_rate`, so parameter groups keep
    their ratios.

    Args:
        monitor: the log key to watch, e.g. `'val_loss'`.
        factor: the factor the learning rate is multiplied by; must be < 1.
        patience: epochs without improvement after which the learning rate is reduced.
        verbose: 1 prints a message at each reduction; 0 is silent.
        mode: `'min'`, `'max'`, or `'auto'` (lower is better for `*loss`, else the metric's
            direction).
        min_delta: the smallest change of the monitored value that counts as an improvement.
        cooldown: epochs to wait after a reduction before counting epochs without improvement.
        min_lr: the lowest learning rate a reduction can give.
        **kwargs: accepted for Keras compatibility and ignored (with a warning).

    Raises:
        ValueError: for `factor >= 1`, a negative `patience` or `cooldown`, an unknown `mode`,
            or (once training starts) `mode='auto'` on a key whose direction is unknown.

    Example:
        >>> reduce_lr = kfit.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.2,
        ...                                              patience=5, min_lr=0.001)
        >>> history = model.fit(x, y, validation_split=0.2, callbacks=[reduce_lr])
        >>> history.history["learning_rate"]
        [0.01, 0.01, ...]
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: Mode = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(monitor, mode, min_delta=min_delta)
        if isinstance(factor, bool) or not isinstance(factor, int | float) or factor >= 1.0:
            raise ValueError(
                f"ReduceLROnPlateau does not support `factor` >= 1.0; `factor` must be a "
                f"number < 1; got {factor!r}."
            )
        check_count("patience", patience)
        check_count("cooldown", cooldown)
        if isinstance(min_lr, bool) or not isinstance(min_lr, int | float) or min_lr < 0:
            raise ValueError(f"`min_lr` must be a number >= 0; got {min_lr!r}.")
        if kwargs:
            warnings.warn(
                f"ReduceLROnPlateau ignores the arguments {sorted(kwargs)}.", stacklevel=2
            )
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def state_dict(self) -> dict[str, Any]:
        """The best value so far, the epochs waited and the cooldown epochs left."""
        return {
            "best": plain_number(self.best),
            "wait": self.wait,
            "cooldown_counter": self.cooldown_counter,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores what `state_dict()` returned.

        Raises:
            ValueError: for a missing or wrong entry; nothing is changed then.
        """
        values = checked(
            self, state, {"best": "number?", "wait": "count", "cooldown_counter": "count"}
        )
        self.best, self.wait = values["best"], values["wait"]
        self.cooldown_counter = values["cooldown_counter"]

    def in_cooldown(self) -> bool:
        """Whether a reduction happened less than `cooldown` epochs ago."""
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            # Settled here, not at on_train_begin: metrics are built by the first batch.
            self._set_monitor_op()
        logs = {} if logs is None else logs
        optimizer = self.model.optimizer
        logs["learning_rate"] = get_learning_rate(optimizer)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"Learning rate reduction is conditioned on metric `{self.monitor}` which is "
                f"not available. Available metrics are: {','.join(logs)}.",
                stacklevel=2,
            )
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce(optimizer, epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def _reduce(self, optimizer: Any, epoch: int) -> bool:
        """Lowers the learning rate unless it is already at `min_lr`; says whether it did."""
        old_lr = get_learning_rate(optimizer)
        if old_lr <= self.min_lr:
            return False
        new_lr = max(old_lr * self.factor, self.min_lr)
        set_learning_rate(optimizer, new_lr)
        if self.verbose > 0 and distributed.is_rank_zero():  # torchrun: one log
            print(
                f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.",
                flush=True,
            )
        return True
