"""Ctrl-C during `fit`: held until the current batch has finished."""

from __future__ import annotations

import signal
import threading
from typing import Any


class DeferredInterrupt:
    """Holds Ctrl-C (SIGINT) during `fit` until the current batch has finished.

    A second Ctrl-C interrupts at once. Only the main thread can install signal handlers;
    elsewhere the interrupt is left alone.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc_info: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
