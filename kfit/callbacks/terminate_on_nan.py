"""`TerminateOnNaN`: stops training at the first batch whose loss is NaN or infinite."""

from __future__ import annotations

import math

from kfit.callbacks.callback import Callback


class TerminateOnNaN(Callback):
    """Stops training as soon as the loss becomes NaN or infinite.

    After every training batch the running loss of the epoch is checked (it turns NaN or
    infinite with the first batch whose loss does). By default training then stops gracefully:
    `model.stop_training` is set, the epoch ends, and every callback's `on_train_end` runs.
    With `raise_error=True` a `RuntimeError` is raised at once instead, so no `on_train_end`
    runs (e.g. a checkpoint or backup is not overwritten by a failed state).

    Cost: the check reads the running loss back to the host after every training step, one
    device sync per step, which can slow training on a GPU. That is what adding this callback
    asks for; without it `fit` reads values only when the progress bar redraws and at the end
    of each epoch.

    Args:
        raise_error: False to stop training gracefully; True to raise a `RuntimeError`.

    Example:
        >>> callback = kfit.callbacks.TerminateOnNaN()
        >>> history = model.fit(x, y, epochs=10, callbacks=[callback])
        Batch 3: Invalid loss, terminating training
    """

    def __init__(self, raise_error: bool = False):
        super().__init__()
        if not isinstance(raise_error, bool):
            raise TypeError(f"`raise_error` must be True or False; got {raise_error!r}.")
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")  # sync point: reads the running values every step
        if loss is None or math.isfinite(loss):
            return
        if self.raise_error:
            raise RuntimeError(
                f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                "Terminating training immediately."
            )
        print(f"Batch {batch}: Invalid loss, terminating training", flush=True)
        self.model.stop_training = True
