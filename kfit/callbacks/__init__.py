"""Callbacks: objects that act at points of `fit`, `evaluate` and `predict`."""

from kfit.callbacks.backup_and_restore import BackupAndRestore
from kfit.callbacks.callback import Callback
from kfit.callbacks.callback_list import CallbackList
from kfit.callbacks.csv_logger import CSVLogger
from kfit.callbacks.early_stopping import EarlyStopping
from kfit.callbacks.history import History
from kfit.callbacks.lambda_callback import LambdaCallback
from kfit.callbacks.learning_rate_scheduler import LearningRateScheduler
from kfit.callbacks.live_plot import LivePlot
from kfit.callbacks.model_checkpoint import ModelCheckpoint
from kfit.callbacks.monitor import MonitorCallback
from kfit.callbacks.progbar_logger import ProgbarLogger
from kfit.callbacks.reduce_lr_on_plateau import ReduceLROnPlateau
from kfit.callbacks.tensorboard import TensorBoard
from kfit.callbacks.terminate_on_nan import TerminateOnNaN
from kfit.callbacks.torch_scheduler import TorchScheduler, as_callback

__all__ = [
    "BackupAndRestore",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "LivePlot",
    "ModelCheckpoint",
    "MonitorCallback",
    "ProgbarLogger",
    "ReduceLROnPlateau",
    "TensorBoard",
    "TerminateOnNaN",
    "TorchScheduler",
    "as_callback",
]
