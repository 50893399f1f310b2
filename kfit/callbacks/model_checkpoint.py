"""`ModelCheckpoint`: saves the model or its weights every epoch or every N batches."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from kfit import distributed
from kfit.callbacks.monitor import BatchCountdown, Mode, MonitorCallback, check_save_freq
from kfit.callbacks.state import checked, plain_number


class ModelCheckpoint(MonitorCallback):
    """Saves the model, or only its weights, during `fit` (Keras 3's arguments and messages).

    `filepath` is formatted with `epoch` (1-based), `batch` (1-based, for batch-frequency
    saves) and the logged values, so `'ckpt-{epoch:02d}-{val_loss:.4f}.pt'` writes one file per
    epoch. Every write is atomic: a run killed while saving leaves the previous file whole.

    Unlike Keras, the file suffix is free (Keras demands `.keras`, `.h5` or `.weights.h5`):
    with `save_weights_only=True` the file is `model.save_weights(path)`, the `state_dict` in
    torch format (or safetensors when the path ends in `.safetensors`); otherwise it is
    `model.save(path)`, the full training state that `model.load` restores. And the
    monitored direction is settled only when `save_best_only` needs it, so an unknown
    `monitor` is no error when every epoch is saved anyway.

    Args:
        filepath: where to save; may hold `{epoch}`, `{batch}` and any log key.
        monitor: the log key that decides what is "best" (with `save_best_only`).
        verbose: 0 (silent) or 1 (a message each time the callback acts).
        save_best_only: save only when `monitor` improves on the best value so far.
        save_weights_only: save `model.save_weights(path)` instead of `model.save(path)`.
        mode: `'min'`, `'max'`, or `'auto'` (the metric's own direction; lower for losses).
        save_freq: `'epoch'`, or an integer N: save every N training batches, counted across
            epochs, with the running epoch values as logs (a host read on those batches).
        initial_value_threshold: the initial best value of `monitor`; only a better value
            is saved (with `save_best_only`).

    Raises:
        ValueError: for a `save_freq` that is neither `'epoch'` nor a positive integer, or an
            unknown `mode`.

    Example:
        >>> checkpoint = kfit.callbacks.ModelCheckpoint(
        ...     "checkpoints/model-{epoch:02d}-{val_loss:.4f}.pt", save_best_only=True
        ... )
        >>> model.fit(x, y, epochs=10, validation_split=0.2, callbacks=[checkpoint])
        >>> model.load("checkpoints/model-07-0.1234.pt")
    """

    may_stop_training = False  # it saves, never stops

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: Mode = "auto",
        save_freq: Literal["epoch"] | int = "epoch",
        initial_value_threshold: float | None = None,
    ):
        super().__init__(monitor=monitor, mode=mode, baseline=initial_value_threshold)
        check_save_freq(save_freq)
        self.filepath = os.fspath(filepath)
        if not save_weights_only and self.filepath.endswith(".safetensors"):
            raise ValueError(
                f"ModelCheckpoint cannot save the full training state to {self.filepath!r}: "
                "`.safetensors` holds weights only. Pass `save_weights_only=True`, or use a "
                "`.pt` file."
            )
        if Path(self.filepath).is_dir():
            raise IsADirectoryError(
                f"ModelCheckpoint's `filepath` must name a file; {self.filepath!r} is a directory."
            )
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._countdown = BatchCountdown(save_freq) if save_freq != "epoch" else None
        self._current_epoch = 0
        if save_freq != "epoch":
            # A batch hook on the instance only: epoch-frequency saves cost nothing per step.
            self.on_train_batch_end = self._save_every_n_batches  # type: ignore[method-assign]  # on purpose (above)

    def state_dict(self) -> dict[str, Any]:
        """The best value so far and the batches counted towards the next batch-level save."""
        count = 0 if self._countdown is None else self._countdown.count
        return {"best": plain_number(self.best), "batches_since_save": count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores what `state_dict()` returned (a resumed run keeps its best value).

        Raises:
            ValueError: for a missing or wrong entry; nothing is changed then.
        """
        values = checked(self, state, {"best": "number?", "batches_since_save": "count"})
        self.best = values["best"]
        if self._countdown is not None:
            self._countdown.count = values["batches_since_save"]

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def _save_every_n_batches(self, batch, logs=None):
        # Bound only with a batch `save_freq`, which has a countdown. The batch logs are
        # read (a host read) only when saving.
        if self._countdown is not None and self._countdown.tick():
            self._save(self._current_epoch, batch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def _save(self, epoch: int, batch: int | None, logs: Mapping[str, Any]) -> None:
        filepath = self._file_path(epoch, batch, logs)
        if not self._should_save(epoch, logs, filepath):
            return
        if Path(filepath).is_dir():
            raise IsADirectoryError(
                f"ModelCheckpoint's `filepath` must name a file; {filepath!r} is a directory."
            )
        if self.save_weights_only:
            self.model.save_weights(filepath)
        else:
            self.model.save(filepath)
        self._print(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")

    def _file_path(self, epoch: int, batch: int | None, logs: Mapping[str, Any]) -> str:
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as err:
            raise KeyError(
                f"Failed to format ModelCheckpoint's filepath {self.filepath!r}: no value for "
                f"{err}. Available: {sorted(fields)}."
            ) from err

    def _should_save(self, epoch: int, logs: Mapping[str, Any], filepath: str) -> bool:
        """Keras's decision: always, or (with `save_best_only`) when `monitor` improved."""
        if not self.save_best_only:
            self._print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=3)
            return True
        if np.ndim(current.detach().cpu() if isinstance(current, torch.Tensor) else current):
            warnings.warn(
                f"Can save best model only when `monitor` is a scalar value. Received: "
                f"{current}. Falling back to `save_best_only=False`.",
                stacklevel=3,
            )
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            self._print(
                f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, "
                f"saving model to {filepath}"
            )
            self.best = current
            return True
        self._print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _print(self, message: str) -> None:
        if self.verbose > 0 and distributed.is_rank_zero():  # torchrun: one log
            print(message, flush=True)
