"""Runs on one model that do not disturb each other: a per-model lock, exact modes, kept sums.

`fit` holds the model's `RunLock` for the whole run and lets waiting threads in between two
training steps; `evaluate`, `predict` and the `*_on_batch` methods hold it while they run. An
`evaluate` during a `fit` (from a callback, or from another thread between two steps) keeps
the training accumulators as they were (`kept_accumulators`), and every run in eval mode puts
back the exact train/eval mode of every submodule (`exact_modes`). So the epoch's training
numbers, History, EarlyStopping and checkpoints never see an evaluation's batches.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torchmetrics

from kfit.internals import set_update_count


class RunLock:
    """A re-entrant lock for one model, fair to other threads at `fit`'s step boundaries.

    Python's locks are not fair: a thread waiting for a lock that `fit` releases and takes
    again after every step would wait for the whole `fit`. Instead `fit` holds the lock
    throughout and calls `let_others_in()` between steps, which hands the lock to the threads
    waiting for it and takes it back once they are done. Its cost when nobody waits is one
    attribute read per step.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._depth = 0
        self._waiting = 0
        self._changed = threading.Condition()
        #: How many `fit` runs hold the lock now (0 or 1; nested fits count again).
        self.fitting = 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Holds the lock (re-entrant in one thread); other threads wait for it."""
        me = threading.get_ident()
        if self._owner == me:
            self._lock.acquire()  # re-entered: an evaluate inside a callback of fit
        elif not self._lock.acquire(blocking=False):
            with self._changed:
                self._waiting += 1
            try:
                self._lock.acquire()
            finally:
                with self._changed:
                    self._waiting -= 1
                    self._changed.notify_all()
        self._owner, self._depth = me, self._depth + 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
            self._lock.release()
            with self._changed:
                self._changed.notify_all()

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        """Holds the lock for a `fit`; `evaluate` then keeps the training accumulators."""
        with self.hold():
            self.fitting += 1
            try:
                yield
            finally:
                self.fitting -= 1

    def let_others_in(self) -> None:
        """Between two steps of `fit`: lets waiting threads run, then takes the lock back."""
        if (
            not self._waiting
            or not self.fitting
            or self._depth != 1
            or self._owner != threading.get_ident()
        ):
            return
        owner, self._owner, self._depth = self._owner, None, 0
        with self._changed:
            self._lock.release()
            # Until every waiting thread has taken its turn (each notifies when done).
            self._changed.wait_for(lambda: self._waiting == 0 and self._depth == 0)
        self._lock.acquire()
        self._owner, self._depth = owner, 1


_LOCKS: weakref.WeakKeyDictionary[torch.nn.Module, RunLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def run_lock(model: torch.nn.Module) -> RunLock:
    """The model's `RunLock` (kept outside the model: models pickle and copy without it)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = RunLock()
        return lock


@contextlib.contextmanager
def exact_modes(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode without gradients; every submodule's own train/eval mode comes back after.

    `model.train(was_training)` alone would also switch to training the submodules a user had
    put in eval mode (a frozen BatchNorm); this puts each one back as it was.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(modes[0][1])
        for module, training in modes:
            if module.training != training:
                module.training = training


@contextlib.contextmanager
def kept_accumulators(metrics: Iterable[Any]) -> Iterator[None]:
    """Runs the body, then puts every torchmetrics metric's state back as it was before.

    Args:
        metrics: the model's accumulators (`model.metrics`); other objects are left alone.
    """
    saved = []
    for metric in metrics:
        if isinstance(metric, torchmetrics.Metric):
            state = {name: _copied(value) for name, value in metric.metric_state.items()}
            saved.append((metric, state, metric.update_count))
    try:
        yield
    finally:
        for metric, state, update_count in saved:
            metric.reset()  # drops the evaluation's cached result and any host-side counts
            for name, value in state.items():
                setattr(metric, name, value)
            set_update_count(metric, update_count)  # `metric_values` reads it


def _copied(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return value
