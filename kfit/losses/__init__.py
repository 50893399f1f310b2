"""Loss functions and classes with Keras 3's names, formulas, defaults and reduction.

Every function here takes `(y_true, y_pred)` and returns one value per sample (the last axis
reduced), so the same function serves as a loss and as a metric:
`kfit.losses.mean_squared_error is kfit.metrics.mean_squared_error`.

Shapes are checked, never silently broadcast: a `(N,)` target for an `(N, 1)` prediction is
reshaped as Keras does; any other mismatch raises a `ValueError` naming both shapes.

The package is split by family as Keras's documentation groups them: `regression`,
`crossentropy`, `probabilistic`, `hinge`, `segmentation`, `ctc`, `metric_learning`; the base
class and reductions are in `loss`. This module is the registry: `ALL_OBJECTS_DICT`, `get`,
`serialize` and `deserialize`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

import kfit.losses.crossentropy as _crossentropy
import kfit.losses.ctc as _ctc
import kfit.losses.hinge as _hinge
import kfit.losses.loss as _loss
import kfit.losses.metric_learning as _metric_learning
import kfit.losses.probabilistic as _probabilistic
import kfit.losses.regression as _regression
import kfit.losses.segmentation as _segmentation
from kfit.losses import batch_means  # noqa: F401  (importing it fills BATCH_MEANS)
from kfit.losses.crossentropy import *  # noqa: F403
from kfit.losses.crossentropy import binary_crossentropy
from kfit.losses.ctc import *  # noqa: F403
from kfit.losses.hinge import *  # noqa: F403
from kfit.losses.loss import *  # noqa: F403
from kfit.losses.loss import Loss
from kfit.losses.metric_learning import *  # noqa: F403
from kfit.losses.probabilistic import *  # noqa: F403
from kfit.losses.probabilistic import kl_divergence
from kfit.losses.regression import *  # noqa: F403
from kfit.losses.regression import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
)
from kfit.losses.segmentation import *  # noqa: F403
from kfit.registry import closest_name, unknown_id_error

#: The family modules: every loss class and function a family lists in its `__all__` is a
#: `kfit.losses` name and a `compile(loss=...)` id (a new loss touches its family alone).
_FAMILIES = (
    _regression,
    _crossentropy,
    _probabilistic,
    _hinge,
    _segmentation,
    _ctc,
    _metric_learning,
)

__all__ = [
    "ALL_OBJECTS_DICT",
    "closest_name",
    "deserialize",
    "get",
    "serialize",
    "unknown_id_error",
]
__all__ += _loss.__all__
__all__ += _regression.__all__
__all__ += _crossentropy.__all__
__all__ += _probabilistic.__all__
__all__ += _hinge.__all__
__all__ += _segmentation.__all__
__all__ += _ctc.__all__
__all__ += _metric_learning.__all__

_CLASSES: list[type[Loss]] = sorted(
    (
        found
        for family in _FAMILIES
        for name in family.__all__
        if isinstance(found := getattr(family, name), type) and issubclass(found, Loss)
    ),
    key=lambda cls: cls.__name__,
)
_FUNCTIONS: list[Callable[..., torch.Tensor]] = sorted(
    (
        found
        for family in _FAMILIES
        for name in family.__all__
        if callable(found := getattr(family, name)) and not isinstance(found, type)
    ),
    key=lambda fn: fn.__name__,
)
_ALIASES = {
    "bce": binary_crossentropy,
    "BCE": binary_crossentropy,
    "kld": kl_divergence,
    "KLD": kl_divergence,
    "mae": mean_absolute_error,
    "MAE": mean_absolute_error,
    "mape": mean_absolute_percentage_error,
    "MAPE": mean_absolute_percentage_error,
    "mse": mean_squared_error,
    "MSE": mean_squared_error,
    "msle": mean_squared_logarithmic_error,
    "MSLE": mean_squared_logarithmic_error,
}

#: Every string id `compile(loss=...)` accepts (case-sensitive, as in Keras), besides the
#: shape-dependent `'crossentropy'`/`'ce'` that `compile` settles from the data.
ALL_OBJECTS_DICT: dict[str, Any] = {
    **{cls.__name__: cls for cls in _CLASSES},
    **{fn.__name__: fn for fn in _FUNCTIONS},
    **_ALIASES,
}

#: Keras ids kfit knows but does not implement, with the reason (none left).
UNSUPPORTED: dict[str, str] = {}


def serialize(loss: Loss | Callable[..., torch.Tensor]) -> dict[str, Any]:
    """Returns Keras's serialized form of a loss object or function.

    Args:
        loss: a `Loss` (kfit's, or a subclass with `get_config`) or a registered function.

    Returns:
        `{'module', 'class_name', 'config', 'registered_name'}` as Keras writes it; for a
        function, `class_name` is `'function'` and `config` its name.

    Raises:
        TypeError: for anything that cannot be described by plain values.
    """
    if isinstance(loss, Loss):
        return {
            "module": type(loss).__module__.rsplit(".", 1)[0]
            if type(loss) in _CLASSES
            else type(loss).__module__,
            "class_name": type(loss).__name__,
            "config": loss.get_config(),
            "registered_name": None if type(loss) in _CLASSES else type(loss).__name__,
        }
    name = getattr(loss, "__name__", None)
    if callable(loss) and name is not None and ALL_OBJECTS_DICT.get(name) is loss:
        return {
            "module": "builtins",
            "class_name": "function",
            "config": name,
            "registered_name": "function",
        }
    raise TypeError(
        f"Cannot serialize the loss {loss!r}: only kfit.losses.Loss objects and the functions "
        "in kfit.losses.ALL_OBJECTS_DICT can be described by a config."
    )


def deserialize(
    config: str | Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None
) -> Loss | Callable[..., torch.Tensor]:
    """Builds a loss from `serialize`'s dict (or Keras's), or from a string id.

    Args:
        config: a string id, or a dict with `class_name` and `config`.
        custom_objects: extra `{name: class or function}` for user-defined losses.

    Returns:
        A `Loss` instance for a class, the function itself for a function.

    Raises:
        ValueError: for an unknown class or id (naming the closest valid one), or a dict
            without `class_name`.
        TypeError: for a config that is neither a string nor a mapping.
    """
    table = {**ALL_OBJECTS_DICT, **(custom_objects or {})}
    if isinstance(config, str):
        return _resolve(config, table)
    if not isinstance(config, Mapping):
        raise TypeError(
            f"A loss config must be a string id or a dict; got {config!r} of type "
            f"{type(config).__name__}."
        )
    if "class_name" not in config:
        raise ValueError(f"A loss config dict needs a 'class_name' key; got {dict(config)!r}.")
    class_name = config["class_name"]
    inner = config.get("config", {})
    if class_name == "function":
        return _resolve(inner, table)
    found = table.get(config.get("registered_name") or class_name, table.get(class_name))
    if found is None:
        classes = [name for name, value in table.items() if isinstance(value, type)]
        raise unknown_id_error("loss class", class_name, classes, "kfit.losses.ALL_OBJECTS_DICT")
    if not isinstance(found, type):
        return found
    loss_class: Any = found  # a kfit Loss class (the table holds classes and functions)
    return loss_class.from_config(dict(inner or {}))


def _resolve(identifier: str, table: Mapping[str, Any]) -> Any:
    if identifier in UNSUPPORTED:
        raise ValueError(f"Loss {identifier!r} is not supported: {UNSUPPORTED[identifier]}.")
    if identifier not in table:
        raise unknown_id_error("loss", identifier, list(table), "kfit.losses.ALL_OBJECTS_DICT")
    found = table[identifier]
    return found() if isinstance(found, type) else found


def get(identifier: Any) -> Loss | Callable[..., torch.Tensor]:
    """Resolves a loss identifier to a callable.

    Args:
        identifier: a string id (`'mse'`, `'BinaryCrossentropy'`, ...), a config dict (what
            `serialize` or Keras's `serialize` returns), a `Loss`, a function
            `f(y_true, y_pred)`, or a torch loss module such as `nn.CrossEntropyLoss()`.

    Returns:
        A `Loss` instance for class ids and configs, the function itself for function ids,
        or the identifier unchanged when it is already callable.

    Raises:
        ValueError: for an unknown string id (naming the closest valid one).
        TypeError: for anything that is neither a string, a dict nor callable.
    """
    if isinstance(identifier, str):
        return _resolve(identifier, ALL_OBJECTS_DICT)
    if isinstance(identifier, Mapping):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, (Loss, nn.Module)):
        return identifier()
    if callable(identifier):
        return identifier
    raise TypeError(
        f"`loss` must be a string id, a config dict, a Loss, a function f(y_true, y_pred) or a "
        f"torch loss module; got {identifier!r} of type {type(identifier).__name__}."
    )
