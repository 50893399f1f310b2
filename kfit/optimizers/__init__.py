"""Keras optimizer ids and constructors, built as torch.optim optimizers.

`compile(optimizer="rmsprop")` gives `torch.optim.RMSprop(lr=0.001, alpha=0.9, eps=1e-7)`:
Keras's hyper-parameters on PyTorch's implementation. Two update rules differ slightly from
Keras's and are kept as PyTorch has them: RMSprop and Adagrad add epsilon outside the square
root, and Adam/AdamW/Adamax/Nadam add it to the bias-corrected root (Keras's "epsilon hat").
With Keras's tiny default epsilon the difference is far below the noise of training.

Keras-style constructors (`kfit.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0)`) return an
`Optimizer` spec; `compile` builds the torch optimizer from it once the parameters are known.
The Keras options `clipnorm`, `clipvalue`, `global_clipnorm` and `weight_decay` (decoupled,
applied before the update, as Keras does for every optimizer) run on the device before each
`optimizer.step()`, with no host read.

The package follows `keras/src/optimizers/`: `base` (`Optimizer`), one module per optimizer
or small family (`sgd`, `rmsprop`, `adam`, `adagrad`, `adafactor`, `lion`, `ftrl`; the last
two also hold the torch implementations `TorchLion` and `TorchFtrl`, which torch.optim
lacks), `keras_attributes` (Keras's `learning_rate` and `iterations` on torch optimizers),
`learning_rate` (reading and setting a torch optimizer's rate) and `registry` (ids,
`serialize`, `deserialize`, `get`). Everything public is importable from `kfit.optimizers`.
"""

from __future__ import annotations

from typing import Any

import torch

from kfit import schedules
from kfit.optimizers import ftrl, keras_attributes, lion
from kfit.optimizers.adafactor import Adafactor
from kfit.optimizers.adagrad import Adadelta, Adagrad
from kfit.optimizers.adam import Adam, Adamax, AdamW, Nadam
from kfit.optimizers.base import Optimizer
from kfit.optimizers.ftrl import Ftrl
from kfit.optimizers.keras_attributes import KerasAttributes, with_keras_attributes
from kfit.optimizers.learning_rate import get_learning_rate, set_learning_rate
from kfit.optimizers.lion import Lion

# ALL_OBJECTS_DICT and UNSUPPORTED are public but not in `__all__`, as before the split.
from kfit.optimizers.registry import ALL_OBJECTS_DICT as ALL_OBJECTS_DICT
from kfit.optimizers.registry import UNSUPPORTED as UNSUPPORTED
from kfit.optimizers.registry import deserialize, get, serialize
from kfit.optimizers.rmsprop import RMSprop
from kfit.optimizers.sgd import SGD

__all__ = [
    "SGD",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Ftrl",
    "KerasAttributes",
    "Lion",
    "Nadam",
    "Optimizer",
    "RMSprop",
    "deserialize",
    "get",
    "get_learning_rate",
    "schedules",
    "serialize",
    "set_learning_rate",
    "with_keras_attributes",
]

# kfit's own torch optimizer classes by the names a pickle may hold: today's, and those they
# had as private classes of the single-module kfit.optimizers (`_Lion`, `_Ftrl`).
_TORCH_CLASSES: dict[str, type[torch.optim.Optimizer]] = {
    "TorchLion": lion.TorchLion,
    "TorchFtrl": ftrl.TorchFtrl,
    "_Lion": lion.TorchLion,
    "_Ftrl": ftrl.TorchFtrl,
}


def __getattr__(name: str) -> Any:
    """Finds the classes pickles name by `kfit.optimizers.<name>` but the package lacks.

    A torch optimizer with Keras's attributes pickles its class as
    `kfit.optimizers._KERAS_CLASSES_<TorchClassName>`: that class is made at run time
    (`keras_attributes.keras_class`), so a new process makes it here on first use. `_Lion`
    and `_Ftrl` are the names `TorchLion` and `TorchFtrl` had before the package split.

    Raises:
        AttributeError: for any other name.
    """
    if name in ("_Lion", "_Ftrl"):
        return _TORCH_CLASSES[name]
    if name.startswith(keras_attributes.KERAS_CLASS_PREFIX):
        made = keras_attributes.keras_class_named(name)
        if made is not None:
            return made
        base_name = name.removeprefix(keras_attributes.KERAS_CLASS_PREFIX)
        base = _TORCH_CLASSES.get(base_name) or getattr(torch.optim, base_name, None)
        if isinstance(base, type) and issubclass(base, torch.optim.Optimizer):
            return keras_attributes.keras_class(base)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
