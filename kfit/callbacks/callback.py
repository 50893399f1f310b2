"""The `Callback` base class: every Keras hook, `self.model` and `self.params`."""

from __future__ import annotations

import contextlib
import weakref
from typing import Any


class Callback:
    """Base class for objects that act at points of `fit`, `evaluate` and `predict`.

    Override any hook. `self.model` is the model being trained; `self.params` holds
    `{'verbose', 'epochs', 'steps'}`. The same `logs` dict goes to every callback in turn, so a
    key one adds in `on_epoch_end` reaches History and the log line. Batch-level hooks cost a
    host read of the running values only when some callback overrides them and reads `logs`.

    Under torchrun every process runs the callbacks with the same epoch `logs`; a callback
    whose class sets `rank_zero_only = True` (the progress log, CSVLogger, TensorBoard,
    LivePlot) runs on rank 0 only, and must not stop training.

    Example:
        >>> class PrintLoss(kfit.callbacks.Callback):
        ...     def on_epoch_end(self, epoch, logs=None):
        ...         print(epoch, logs["loss"])
    """

    #: Run only in the process of rank 0 under torchrun (for callbacks that print or write).
    rank_zero_only = False

    #: Whether a training batch hook may set `model.stop_training` (a kfit addition). Under
    #: torchrun, while some callback that runs everywhere and may stop has a training batch
    #: hook, the processes agree on `stop_training` after every step (one may stop on its own
    #: NaN loss); callbacks that only save (`ModelCheckpoint`, `BackupAndRestore`) set it to
    #: False, sparing that exchange.
    may_stop_training = True

    #: Run after every other callback at each hook (a kfit addition): `BackupAndRestore`
    #: sets it, so that what it saves at an epoch's end holds the other callbacks' updated
    #: state and that epoch's History entry, and what it restores at `on_train_begin` comes
    #: after their own resets.
    runs_last = False

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self._model: Any = None

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    #: Whether `set_model` keeps a weak reference: set for callbacks the model itself keeps
    #: (`model.history`, the `compile(lr_scheduler=...)` callback), since a strong reference
    #: both ways would keep a deleted model, and its GPU memory, alive until the garbage
    #: collector runs.
    holds_model_weakly = False

    def set_model(self, model: Any) -> None:
        self._model = model
        if self.holds_model_weakly and model is not None:
            with contextlib.suppress(TypeError):  # not weak-referenceable: kept as it is
                self._model = weakref.ref(model)

    def set_callbacks(self, callbacks: list[Callback]) -> None:
        """Receives every callback of the run, in calling order (a kfit addition).

        The default ignores them; `BackupAndRestore` keeps them to save and restore their
        `state_dict()`.
        """

    def state_dict(self) -> dict[str, Any]:
        """The callback's memory across epochs, for backups (a kfit addition; torch's name).

        `BackupAndRestore` (and `Model.save(..., callbacks=...)`) store it, so that a resumed
        `fit` continues as if it had never stopped. Values are numbers, strings, None, tensors
        and lists or dicts of them. The default, for callbacks without memory, is `{}`.
        """
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores what `state_dict()` returned (a kfit addition).

        Raises:
            ValueError: if `state` does not fit this callback; nothing is changed then.
        """
        if state:
            raise ValueError(
                f"{type(self).__name__} keeps no state; got a saved state with {sorted(state)}."
            )

    @property
    def model(self) -> Any:
        """The model being trained, evaluated or run (None before `set_model`)."""
        model = self._model
        return model() if isinstance(model, weakref.ref) else model

    def __getstate__(self) -> dict[str, Any]:
        # Pickles and copies leave out the model reference (a copied History keeps its data).
        return {**self.__dict__, "_model": None}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Called once at the start of `fit`."""

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Called once at the end of `fit`, with the last epoch's logs."""

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Called at the start of each epoch (0-based `epoch`)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Called at the end of each epoch with its train and `val_` values."""

    def on_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called by the default `on_train_batch_begin`."""

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called by the default `on_train_batch_end`."""

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called before each training step."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called after each training step with the running epoch values."""
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Called at the start of `evaluate` (also for validation inside `fit`)."""

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        """Called at the end of `evaluate` with its values (no `val_` prefix)."""

    def on_test_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called before each evaluation step."""

    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called after each evaluation step with the running values."""

    def on_predict_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Called at the start of `predict`."""

    def on_predict_end(self, logs: dict[str, Any] | None = None) -> None:
        """Called at the end of `predict`."""

    def on_predict_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called before each prediction step."""

    def on_predict_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called after each prediction step with `{'outputs': ...}` (device tensors)."""

    def on_exception(self, exception: BaseException) -> None:
        """Called when `fit`, `evaluate` or `predict` raises (Ctrl-C included).

        A kfit addition (Keras has no such hook), called before the error propagates. `fit`
        then also calls `on_train_end`, so files opened there are closed either way; `evaluate`
        and `predict` call no end hook after an error. kfit's progress log marks its open bar
        interrupted here.

        Args:
            exception: what was raised.
        """
