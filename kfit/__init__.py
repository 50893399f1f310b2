"""kfit: Keras's compile / fit / evaluate / predict for any PyTorch module.

Example:
    >>> import kfit
    >>> model = kfit.Model(my_torch_module)
    >>> model.compile(optimizer="rmsprop", loss="categorical_crossentropy",
    ...               metrics=["accuracy"])
    >>> history = model.fit(x, y, epochs=20, validation_split=0.2)
"""

import importlib
import warnings
from typing import Any

with warnings.catch_warnings():
    # torchmetrics imports transformers when it is installed, which imports `tqdm.auto`: in a
    # notebook without ipywidgets that warns "IProgress not found", about bars kfit does not
    # draw (kfit chooses its own, `kfit.progress`).
    warnings.filterwarnings("ignore", message="IProgress not found")
    import torchmetrics  # noqa: F401

from kfit import (
    callbacks,
    distributed,
    losses,
    metrics,
    models,
    optimizers,
    summary,
    utils,
)
from kfit.callbacks import diagnosis
from kfit.callbacks.history import History
from kfit.compiled.loss_terms import add_loss
from kfit.model import Model, Sequential
from kfit.training import lr_finder

__version__ = "0.1.0"

__all__ = [
    "History",
    "Model",
    "Sequential",
    "__version__",
    "add_loss",
    "callbacks",
    "diagnosis",
    "distributed",
    "losses",
    "lr_finder",
    "metrics",
    "models",
    "optimizers",
    "summary",
    "utils",
    "wrappers",
]


def __getattr__(name: str) -> Any:
    # `kfit.wrappers` needs scikit-learn: imported on first use, so `import kfit` does not.
    if name == "wrappers":
        return importlib.import_module("kfit.wrappers")
    raise AttributeError(f"module 'kfit' has no attribute {name!r}")
