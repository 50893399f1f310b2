"""`LambdaCallback`: a callback made of plain functions, one per hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kfit.callbacks.callback import Callback
from kfit.registry import closest_name

_HOOKS = sorted(name for name in vars(Callback) if name.startswith("on_"))


class LambdaCallback(Callback):
    r"""Builds a callback from functions, each called at its hook during `fit`/`evaluate`/...

    The functions take the hook's arguments, positionally:

    - `on_epoch_begin` and `on_epoch_end`: `(epoch, logs)`;
    - `on_train_begin` and `on_train_end`: `(logs)`;
    - `on_train_batch_begin` and `on_train_batch_end`: `(batch, logs)`;
    - any other hook of `kfit.callbacks.Callback`, passed by its name (e.g.
      `on_test_end=lambda logs: ...`), takes that hook's arguments.

    Only the hooks given are called: a batch hook that is not given costs `fit` nothing, and
    the running values in a batch hook's `logs` are read from the device only if the function
    looks at them.

    Args:
        on_epoch_begin: called at the start of every epoch.
        on_epoch_end: called at the end of every epoch.
        on_train_begin: called when training starts.
        on_train_end: called when training ends.
        on_train_batch_begin: called before every training batch.
        on_train_batch_end: called after every training batch.
        **kwargs: functions for any other hook, by its name.

    Raises:
        ValueError: for a keyword that names no hook (with the closest hook name).
        TypeError: for a hook that is given something other than a function.

    Example:
        >>> print_batch = kfit.callbacks.LambdaCallback(
        ...     on_train_batch_begin=lambda batch, logs: print(batch))
        >>> json_log = open("loss_log.json", mode="wt", buffering=1)
        >>> json_logging = kfit.callbacks.LambdaCallback(
        ...     on_epoch_end=lambda epoch, logs: json_log.write(
        ...         json.dumps({"epoch": epoch, "loss": logs["loss"]}) + "\n"),
        ...     on_train_end=lambda logs: json_log.close())
        >>> model.fit(x, y, callbacks=[print_batch, json_logging])
    """

    def __init__(
        self,
        on_epoch_begin: Callable[..., Any] | None = None,
        on_epoch_end: Callable[..., Any] | None = None,
        on_train_begin: Callable[..., Any] | None = None,
        on_train_end: Callable[..., Any] | None = None,
        on_train_batch_begin: Callable[..., Any] | None = None,
        on_train_batch_end: Callable[..., Any] | None = None,
        **kwargs: Callable[..., Any] | None,
    ):
        super().__init__()
        unknown = [name for name in kwargs if name not in _HOOKS]
        if unknown:
            suggestion = closest_name(unknown[0], _HOOKS)
            hint = f" Did you mean {suggestion!r}?" if suggestion else ""
            raise ValueError(
                f"LambdaCallback got {', '.join(map(repr, unknown))}, which name no callback "
                f"hook.{hint} The hooks are the `on_*` methods of kfit.callbacks.Callback."
            )
        hooks = {
            "on_epoch_begin": on_epoch_begin,
            "on_epoch_end": on_epoch_end,
            "on_train_begin": on_train_begin,
            "on_train_end": on_train_end,
            "on_train_batch_begin": on_train_batch_begin,
            "on_train_batch_end": on_train_batch_end,
            **kwargs,
        }
        for name, function in hooks.items():
            if function is None:
                continue
            if not callable(function):
                raise TypeError(
                    f"`{name}` must be a function; got {function!r} of type "
                    f"{type(function).__name__}."
                )
            # On the instance, as in Keras: hooks not given keep the base class's no-ops.
            setattr(self, name, function)
