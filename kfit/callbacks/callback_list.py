"""`CallbackList`: calls each hook on every callback, in Keras's order, and nothing more."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

from kfit import distributed
from kfit.callbacks.callback import Callback

_BATCH_HOOKS = {
    "on_train_batch_begin": ("on_train_batch_begin", "on_batch_begin"),
    "on_train_batch_end": ("on_train_batch_end", "on_batch_end"),
    "on_test_batch_begin": ("on_test_batch_begin",),
    "on_test_batch_end": ("on_test_batch_end",),
    "on_predict_batch_begin": ("on_predict_batch_begin",),
    "on_predict_batch_end": ("on_predict_batch_end",),
}


class RunningLogs(MutableMapping):
    """A batch's `logs`: the running values, read from the device only when first accessed.

    Batch hooks that never look at their `logs` therefore cost no host-device sync.
    """

    def __init__(self, read: Callable[[], dict[str, Any]]):
        self._read = read
        self._values: dict[str, Any] | None = None

    @property
    def values_dict(self) -> dict[str, Any]:
        if self._values is None:
            self._values = self._read()  # sync point: reads the running values to the host
        return self._values

    def __getitem__(self, key: str) -> Any:
        return self.values_dict[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.values_dict[key] = value

    def __delitem__(self, key: str) -> None:
        del self.values_dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values_dict)

    def __len__(self) -> int:
        return len(self.values_dict)

    def __repr__(self) -> str:
        return repr(self.values_dict)


def _overrides(callback: Callback, names: tuple[str, ...]) -> bool:
    """Whether the callback's class overrides, or the instance itself sets, one of the hooks."""
    return any(
        n in vars(callback) or getattr(type(callback), n) is not getattr(Callback, n) for n in names
    )


class CallbackList:
    """The user's callbacks, then History, then the progress logger (Keras's order).

    Callbacks whose class sets `runs_last` (BackupAndRestore) are moved after all the others.

    Args:
        callbacks: the user's callbacks.
        model: the model, given to every callback.
        params: `{'verbose', 'epochs', 'steps'}`, given to every callback.
    """

    def __init__(self, callbacks: Iterable[Callback], model: Any, params: dict[str, Any]):
        # Under torchrun, a `rank_zero_only` callback (one that prints or writes) runs on rank 0.
        kept = [c for c in callbacks if distributed.runs_here(c)]
        for callback in kept:
            if not isinstance(callback, Callback):
                raise TypeError(
                    f"`callbacks` must hold kfit.callbacks.Callback objects; got "
                    f"{callback!r} of type {type(callback).__name__}."
                )
        # `runs_last` callbacks (BackupAndRestore) go after all others, in their given order.
        self.callbacks = [c for c in kept if not c.runs_last] + [c for c in kept if c.runs_last]
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(params)
            callback.set_callbacks(self.callbacks)
        # Batch hooks are dispatched only to callbacks that override them.
        self._batch_targets = {
            hook: [c for c in self.callbacks if _overrides(c, names)]
            for hook, names in _BATCH_HOOKS.items()
        }

    def wants(self, hook: str) -> bool:
        """Whether any callback overrides the batch hook `hook`."""
        return bool(self._batch_targets[hook])

    def targets(self, hook: str) -> list[Callback]:
        """The callbacks the batch hook `hook` is dispatched to."""
        return self._batch_targets[hook]

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def _call_batch(self, hook: str, batch: int, logs: Any) -> None:
        for callback in self._batch_targets[hook]:
            getattr(callback, hook)(batch, logs)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._call("on_train_begin", logs or {})

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._call("on_train_end", logs or {})

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._call("on_epoch_begin", epoch, logs or {})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self._call("on_epoch_end", epoch, logs)

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._call("on_test_begin", logs or {})

    def on_test_end(self, logs: dict[str, Any]) -> None:
        self._call("on_test_end", logs)

    def on_predict_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._call("on_predict_begin", logs or {})

    def on_predict_end(self, logs: dict[str, Any] | None = None) -> None:
        self._call("on_predict_end", logs or {})

    def on_exception(self, exception: BaseException) -> None:
        """Calls every `on_exception`; an error there becomes a note on `exception`."""
        for callback in self.callbacks:
            try:
                callback.on_exception(exception)
            except Exception as cleanup_error:  # noqa: BLE001 - the original error wins
                exception.add_note(f"on_exception also failed: {cleanup_error!r}")

    def on_batch_hook(self, hook: str, batch: int, logs: Any = None) -> None:
        """Calls the batch hook `hook` (e.g. `'on_train_batch_end'`) on those that override it."""
        self._call_batch(hook, batch, {} if logs is None else logs)
