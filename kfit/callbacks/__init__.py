"""Callbacks: objects that act at points of `fit`, `evaluate` and `predict`."""

from kfit.callbacks.callback import Callback
from kfit.callbacks.callback_list import CallbackList
from kfit.callbacks.progbar_logger import ProgbarLogger
from kfit.history import History

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger"]
