"""`TorchScheduler`: steps a `torch.optim.lr_scheduler` scheduler during `fit`."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from kfit.callbacks.callback import Callback

Interval = Literal["epoch", "step"]
Scheduler = LRScheduler | ReduceLROnPlateau
# ReduceLROnPlateau is an LRScheduler only from torch 2.2 on; name both for older versions.
_SCHEDULER_TYPES = (LRScheduler, ReduceLROnPlateau)


class TorchScheduler(Callback):
    """Steps a PyTorch learning-rate scheduler every epoch or every training step.

    Any `torch.optim.lr_scheduler` scheduler works (`StepLR`, `OneCycleLR`,
    `CosineAnnealingLR`, `SequentialLR`, ...). A `ReduceLROnPlateau` scheduler is stepped
    with the value of `monitor` from the logs. At the end of every epoch the learning rate of
    the epoch's last training step is added to the logs as `logs['learning_rate']`, so it
    appears in History and on the log line.

    With `interval='step'`, a `ReduceLROnPlateau` scheduler reads the running value of
    `monitor` after every step, which is a host-device sync per step; other schedulers cost no
    device read.

    A raw scheduler in `fit(callbacks=[...])` is wrapped in a `TorchScheduler` with the
    defaults (see `as_callback`).

    Args:
        scheduler: a scheduler built on `model.optimizer`, or a function
            `optimizer -> scheduler` called with `model.optimizer` when training starts
            (for optimizers that `compile` builds from an id such as `'adam'`). A function is
            called again only if the model's optimizer changes (a new `compile`).
        interval: `'epoch'` steps the scheduler at the end of each epoch; `'step'` after each
            training batch (for `OneCycleLR` and other per-iteration schedules).
        monitor: the log key whose value a `ReduceLROnPlateau` scheduler is stepped with;
            by default `'val_loss'` for `interval='epoch'` and `'loss'` (the running epoch
            mean) for `interval='step'`. Only for `ReduceLROnPlateau`.

    Raises:
        ValueError: for an unknown `interval`, a `monitor` for a scheduler that takes none,
            or (when training starts) a scheduler that drives an optimizer other than
            `model.optimizer`.
        TypeError: if `scheduler` is neither a torch scheduler nor a function.

    Example:
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> step_lr = torch.optim.lr_scheduler.StepLR(model.optimizer, step_size=2, gamma=0.5)
        >>> history = model.fit(x, y, epochs=4, callbacks=[kfit.callbacks.TorchScheduler(step_lr)])
        >>> history.history["learning_rate"]
        [0.01, 0.01, 0.005, 0.005]
        >>> one_cycle = kfit.callbacks.TorchScheduler(
        ...     lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=100),
        ...     interval="step",
        ... )
    """

    def __init__(
        self,
        scheduler: Scheduler | Callable[[Optimizer], Scheduler],
        interval: Interval = "epoch",
        monitor: str | None = None,
    ):
        super().__init__()
        if interval not in ("epoch", "step"):
            raise ValueError(f"`interval` must be 'epoch' or 'step'; got {interval!r}.")
        if isinstance(scheduler, _SCHEDULER_TYPES):
            self.scheduler: Scheduler | None = scheduler
            self._factory: Callable[[Optimizer], Scheduler] | None = None
            if monitor is not None and not isinstance(scheduler, ReduceLROnPlateau):
                raise ValueError(
                    f"`monitor` applies only to a ReduceLROnPlateau scheduler; got "
                    f"monitor={monitor!r} for a {type(scheduler).__name__}."
                )
        elif callable(scheduler):
            self.scheduler, self._factory = None, scheduler
        else:
            raise TypeError(
                "`scheduler` must be a torch.optim.lr_scheduler scheduler or a function "
                f"optimizer -> scheduler; got {scheduler!r} of type {type(scheduler).__name__}."
            )
        self.interval = interval
        self.monitor = monitor or ("val_loss" if interval == "epoch" else "loss")
        self._monitor_given = monitor is not None
        self._last_lr: Any = None
        self._pending_state: dict[str, Any] | None = None  # restored before the scheduler exists
        if interval == "step":
            # Bound on the instance, so `fit` calls a batch hook only when stepping per batch.
            self.on_train_batch_end = self._step_after_batch  # type: ignore[method-assign]  # on purpose (above)

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        factory = self._factory
        if factory is not None and (
            self.scheduler is None or self.scheduler.optimizer is not optimizer
        ):
            if optimizer is None:
                raise ValueError(
                    "TorchScheduler needs `model.optimizer` to build its scheduler; a model "
                    "with lazy modules builds it at its first step: run one forward pass "
                    "before `fit`."
                )
            self.scheduler = self._build(factory, optimizer)
        scheduler = self._built()
        if optimizer is not None and scheduler.optimizer is not optimizer:
            raise ValueError(
                f"The {type(scheduler).__name__} scheduler drives an optimizer other "
                "than `model.optimizer`; build it on `model.optimizer` after `compile`, or "
                "pass a function optimizer -> scheduler."
            )
        self._last_lr = None
        if self._pending_state is not None:
            self._load_scheduler_state(self._pending_state)
            self._pending_state = None

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's own state, under 'scheduler' (None before it is built)."""
        if self.scheduler is None:
            return {"scheduler": self._pending_state}
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores what `state_dict()` returned (a scheduler not yet built gets it when built).

        Raises:
            ValueError: if the saved state is not one of this kind of scheduler; nothing is
                changed then.
        """
        saved = state.get("scheduler", ...)
        if saved is not None and not isinstance(saved, dict):
            raise ValueError(f"TorchScheduler's saved state must hold 'scheduler'; got {state!r}")
        if self.scheduler is None or saved is None:
            self._pending_state = saved
            return
        self._load_scheduler_state(saved)

    def _built(self) -> Scheduler:
        """The scheduler; a function given for it is called when training starts."""
        if self.scheduler is None:
            raise RuntimeError("TorchScheduler builds its scheduler when training starts.")
        return self.scheduler

    def _load_scheduler_state(self, saved: dict[str, Any]) -> None:
        scheduler = self._built()
        expected = set(scheduler.state_dict())
        if set(saved) != expected:
            raise ValueError(
                f"the saved scheduler state (entries {sorted(saved)}) is not one of a "
                f"{type(scheduler).__name__} (entries {sorted(expected)})"
            )
        scheduler.load_state_dict(saved)

    def on_epoch_end(self, epoch, logs=None):
        if self.interval == "epoch":
            self._step(logs)
        if logs is not None and self._last_lr is not None:
            logs["learning_rate"] = float(self._last_lr)

    def _step_after_batch(self, batch: int, logs: Any = None) -> None:
        self._step(logs)

    def _step(self, logs: Any) -> None:
        """Records the learning rate just used, then steps the scheduler."""
        scheduler = self._built()
        # Kept as stored (a float, or a tensor for tensor learning rates): no device read.
        self._last_lr = scheduler.optimizer.param_groups[0]["lr"]
        if not isinstance(scheduler, ReduceLROnPlateau):
            scheduler.step()
            return
        value = (logs or {}).get(self.monitor)  # per step, this is a sync point
        if value is None:
            warnings.warn(
                f"The ReduceLROnPlateau scheduler is conditioned on metric `{self.monitor}` "
                f"which is not available. Available metrics are: {','.join(logs or {})}.",
                stacklevel=2,
            )
            return
        scheduler.step(value)

    def _build(self, factory: Callable[[Optimizer], Scheduler], optimizer: Optimizer) -> Scheduler:
        scheduler = factory(optimizer)
        if not isinstance(scheduler, _SCHEDULER_TYPES):
            raise TypeError(
                "The `scheduler` function must return a torch.optim.lr_scheduler scheduler; "
                f"got {scheduler!r} of type {type(scheduler).__name__}."
            )
        if self._monitor_given and not isinstance(scheduler, ReduceLROnPlateau):
            raise ValueError(
                f"`monitor` applies only to a ReduceLROnPlateau scheduler; got "
                f"monitor={self.monitor!r} for a {type(scheduler).__name__}."
            )
        return scheduler


def as_callback(obj: Any, argument: str = "callbacks") -> Callback:
    """Returns a callback unchanged and wraps a torch scheduler in a `TorchScheduler`.

    Args:
        obj: a `kfit.callbacks.Callback`, or a `torch.optim.lr_scheduler` scheduler (stepped
            every epoch; a `ReduceLROnPlateau` one with `val_loss`).
        argument: the argument `obj` came from, for the error message.

    Returns:
        `obj` itself, or `TorchScheduler(obj)`.

    Raises:
        TypeError: for anything else.

    Example:
        >>> step_lr = torch.optim.lr_scheduler.StepLR(model.optimizer, step_size=10)
        >>> kfit.callbacks.as_callback(step_lr)
        <kfit.callbacks.torch_scheduler.TorchScheduler object at ...>
    """
    if isinstance(obj, Callback):
        return obj
    if isinstance(obj, _SCHEDULER_TYPES):
        return TorchScheduler(obj)
    raise TypeError(
        f"`{argument}` must hold kfit.callbacks.Callback objects or torch.optim.lr_scheduler "
        f"schedulers; got {obj!r} of type {type(obj).__name__}."
    )
