"""`LearningRateScheduler`: sets the learning rate at the start of each epoch from a function."""

from __future__ import annotations

import numbers
from collections.abc import Callable

from kfit import distributed
from kfit.callbacks.callback import Callback
from kfit.optimizers import get_learning_rate, set_learning_rate


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of every epoch to `schedule(epoch, lr)`.

    `epoch` is 0-based and `lr` is the current learning rate (of the optimizer's first
    parameter group; other groups keep their ratios to it). A schedule taking only `epoch` is
    called as `schedule(epoch)`. At the end of every epoch the rate is added to the logs as
    `logs['learning_rate']`, so it appears in History and on the log line.

    For a `torch.optim.lr_scheduler` scheduler, use `kfit.callbacks.TorchScheduler`.

    Args:
        schedule: a function `(epoch, lr) -> new_lr` or `epoch -> new_lr`.
        verbose: 1 prints the new rate at the start of each epoch; 0 is silent.

    Raises:
        TypeError: if `schedule` is not callable.
        ValueError: (during `fit`) if `schedule` returns something other than a real number,
            or a negative one.

    Example:
        >>> def scheduler(epoch, lr):
        ...     return lr if epoch < 10 else lr * math.exp(-0.1)
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> callback = kfit.callbacks.LearningRateScheduler(scheduler)
        >>> history = model.fit(x, y, epochs=15, callbacks=[callback], verbose=0)
        >>> round(history.history["learning_rate"][-1], 5)
        0.00607
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(
                f"`schedule` must be a function (epoch, lr) -> lr; got {schedule!r} of type "
                f"{type(schedule).__name__}."
            )
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if optimizer is None:
            raise ValueError(
                "LearningRateScheduler needs `model.optimizer`, which a model with lazy "
                "modules builds at its first step; run one forward pass before `fit`."
            )
        try:
            learning_rate = self.schedule(epoch, get_learning_rate(optimizer))
        except TypeError:  # a schedule of the epoch alone
            learning_rate = self.schedule(epoch)
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
            raise ValueError(
                f"The output of the `schedule` function should be a float; got "
                f"{learning_rate!r} of type {type(learning_rate).__name__} at epoch {epoch}."
            )
        set_learning_rate(optimizer, float(learning_rate))
        if self.verbose > 0 and distributed.is_rank_zero():  # torchrun: one log
            print(
                f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                f"{learning_rate}.",
                flush=True,
            )

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = get_learning_rate(self.model.optimizer)
