"""`ProgbarLogger`: decides when the Keras log is drawn; `kfit.progress.Progbar` draws it."""

from __future__ import annotations

import sys
from typing import Any

from kfit.callbacks.callback import Callback
from kfit.progress import Progbar


class ProgbarLogger(Callback):
    """Prints `Epoch i/N` and the progress line of each epoch, evaluation and prediction.

    Added by `fit`, `evaluate` and `predict` when `verbose` is not 0. Values are read from the
    device only when the bar redraws (at most every 0.05 s) and at the end of an epoch.
    """

    rank_zero_only = True  # torchrun: one process prints / writes

    def __init__(self) -> None:
        super().__init__()
        self._bar: Progbar | None = None
        self._in_fit = False
        self._seen = 0
        self._epoch_steps: int | None = None  # learned from the first epoch, as Keras does

    @property
    def verbose(self) -> int:
        verbose = self.params.get("verbose", 1)
        return 1 if verbose == "auto" else int(verbose)

    def _start(self, target: int | None) -> None:
        self._seen = 0
        self._bar = Progbar(target, verbose=self.verbose) if self.verbose else None

    def _step(self, batch: int, logs: Any) -> None:
        self._seen = batch + 1
        if self._bar is not None and self.verbose == 1 and self._bar.wants_draw():
            self._bar.update(self._seen, logs)

    def _finish(self, logs: Any) -> None:
        if self._bar is not None:
            self._bar.finish(self._seen, logs)
            self._bar = None

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False
        self._interrupt()  # an epoch began and never ended: no data left

    def on_exception(self, exception):
        self._interrupt()  # Ctrl-C or an error: the open bar says so (a red widget)

    def _interrupt(self) -> None:
        if self._bar is not None:
            self._bar.interrupt(self._seen)
            self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.verbose:
            print(f"Epoch {epoch + 1}/{self.params['epochs']}", file=sys.stdout, flush=True)
        self._start(self.params.get("steps") or self._epoch_steps)

    def on_train_batch_end(self, batch, logs=None):
        self._step(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._epoch_steps = self._epoch_steps or self._seen
        self._finish(logs)

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._start(self.params.get("steps"))

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._step(batch, logs)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self._finish(logs)

    def on_predict_begin(self, logs=None):
        self._start(self.params.get("steps"))

    def on_predict_batch_end(self, batch, logs=None):
        self._step(batch, None)

    def on_predict_end(self, logs=None):
        self._finish(None)
