"""`EarlyStopping`: stops `fit` when a monitored quantity stops improving."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch

from kfit import distributed
from kfit.callbacks.monitor import Mode, MonitorCallback, check_count
from kfit.callbacks.state import checked, plain_number


class EarlyStopping(MonitorCallback):
    """Stops training when a monitored quantity has stopped improving (Keras 3's rule).

    At the end of every epoch from `start_from_epoch` on, the monitored value either improves
    on the best seen so far (by more than `min_delta`), or one more epoch of waiting is counted.
    Training stops once `patience` epochs have passed without improvement (never after the
    first epoch). With a `baseline`, the wait is only reset by values that also beat it.

    With `restore_best_weights=True`, the weights at the end of the best epoch are copied
    (`state_dict` tensors cloned on their own device: no host transfer) and loaded back when
    training ends, whether or not it stopped early.

    Args:
        monitor: the log key to watch, e.g. `'val_loss'` or `'val_accuracy'`.
        min_delta: the smallest change of the monitored value that counts as an improvement.
        patience: epochs without improvement after which training stops.
        verbose: 1 prints when training stops early and when weights are restored; 0 is silent.
        mode: `'min'`, `'max'`, or `'auto'` (lower is better for `*loss`, else the metric's
            direction).
        baseline: a value the monitored quantity must beat for the wait to be reset; None
            for no baseline.
        restore_best_weights: load the weights of the best epoch back at the end of training.
            When False, the model keeps the weights of the last epoch.
        start_from_epoch: epochs to let pass before watching (a warm-up).

    Raises:
        ValueError: for a negative `patience` or `start_from_epoch`, an unknown `mode`, or
            (once training starts) `mode='auto'` on a key whose direction is unknown.

    Example:
        >>> callback = kfit.callbacks.EarlyStopping(monitor="loss", patience=3)
        >>> history = model.fit(x, y, epochs=10, callbacks=[callback], verbose=0)
        >>> len(history.history["loss"])  # training stopped early
        4
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        verbose: int = 0,
        mode: Mode = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ):
        super().__init__(monitor, mode, baseline=baseline, min_delta=min_delta)
        check_count("patience", patience)
        check_count("start_from_epoch", start_from_epoch)
        self.patience = patience
        self.verbose = verbose
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights: dict[str, Any] | None = None

    def on_train_begin(self, logs=None):
        # Reset, so that one instance can be reused across `fit` calls.
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_epoch = 0
        self.best_weights = None

    def state_dict(self) -> dict[str, Any]:
        """The best value and epoch, the epochs waited, and the best weights if kept."""
        return {
            "best": plain_number(self.best),
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores what `state_dict()` returned; best weights go to the model's devices.

        Raises:
            ValueError: for a missing or wrong entry, or best weights that do not fit the
                model; nothing is changed then.
        """
        kinds = {
            "best": "number?",
            "best_epoch": "count",
            "wait": "count",
            "stopped_epoch": "count",
        }
        values = checked(self, state, kinds)
        weights = state.get("best_weights")
        if weights is not None:
            weights = self._fitted_weights(weights)
        for key, value in values.items():
            setattr(self, key, value)
        self.best_weights = weights

    def _fitted_weights(self, weights: Any) -> dict[str, Any]:
        """Saved best weights, checked against the model and moved to its devices."""
        current = self.model.state_dict() if self.model is not None else None
        if not isinstance(weights, dict) or (
            current is not None and weights.keys() != current.keys()
        ):
            raise ValueError("EarlyStopping's saved best weights do not fit the model's weights")
        if current is None:
            return dict(weights)
        fitted = {}
        for key, value in weights.items():
            target = current[key]
            if isinstance(target, torch.Tensor):
                if not isinstance(value, torch.Tensor) or value.shape != target.shape:
                    raise ValueError(f"EarlyStopping's saved best weight {key!r} does not fit")
                value = value.to(device=target.device, dtype=target.dtype)
            fitted[key] = value
        return fitted

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            # Settled here, not at on_train_begin: metrics are built by the first batch.
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self._save_best_weights()
            # The wait restarts only when the value beats both the best and the baseline.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        verbose = self.verbose > 0 and distributed.is_rank_zero()  # torchrun: one log
        if self.stopped_epoch > 0 and verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping", flush=True)
        if self.restore_best_weights and self.best_weights is not None:
            if verbose:
                print(
                    "Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}.",
                    flush=True,
                )
            self.model.load_state_dict(self.best_weights)

    def get_monitor_value(self, logs: dict[str, Any] | None) -> Any:
        """The monitored value in `logs`, or None (with a warning) when it is missing."""
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"Early stopping conditioned on metric `{self.monitor}` which is not "
                f"available. Available metrics are: {','.join(logs)}",
                stacklevel=2,
            )
        return value

    def _save_best_weights(self) -> None:
        """Copies the current `state_dict` on its devices, reusing the previous copy's memory."""
        state = self.model.state_dict()
        saved = self.best_weights
        if saved is None or saved.keys() != state.keys():
            self.best_weights = {key: _copy_value(value) for key, value in state.items()}
            return
        for key, value in state.items():
            if (
                isinstance(value, torch.Tensor)
                and isinstance(saved[key], torch.Tensor)
                and saved[key].shape == value.shape
                and saved[key].dtype == value.dtype
            ):
                saved[key].copy_(value)
            else:
                saved[key] = _copy_value(value)


def _copy_value(value: Any) -> Any:
    """A detached clone of a tensor (same device), or a deep copy of any other state entry."""
    return value.detach().clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)
