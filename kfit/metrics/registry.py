"""Metric ids and configs: `get`, `serialize` and `deserialize`, over plain tables as Keras's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torchmetrics

from kfit import losses as _losses
from kfit.metrics import accuracy as _accuracy
from kfit.metrics import auc as _auc
from kfit.metrics import confusion as _confusion
from kfit.metrics import correlation as _correlation
from kfit.metrics import fbeta as _fbeta
from kfit.metrics import fixed_rate as _fixed_rate
from kfit.metrics import hinge_metrics as _hinge_metrics
from kfit.metrics import iou as _iou
from kfit.metrics import probabilistic as _probabilistic
from kfit.metrics import regression as _regression
from kfit.metrics.base import Metric
from kfit.metrics.probabilistic import (
    BinaryCrossentropy,
)
from kfit.metrics.reduction import Mean, MeanMetricWrapper, Sum
from kfit.metrics.regression import (
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
)
from kfit.registry import snake_case, unknown_id_error

__all__ = [
    "ACCURACY_IDS",
    "ALL_OBJECTS_DICT",
    "UNSUPPORTED",
    "deserialize",
    "get",
    "serialize",
]

#: The family modules: every metric class a family lists in its `__all__` is an id.
FAMILIES = (
    _accuracy,
    _auc,
    _confusion,
    _correlation,
    _fbeta,
    _fixed_rate,
    _hinge_metrics,
    _iou,
    _probabilistic,
    _regression,
)

_CLASSES: list[type[Metric]] = sorted(
    (
        found
        for family in FAMILIES
        for name in family.__all__
        if isinstance(found := getattr(family, name), type) and issubclass(found, Metric)
    ),
    key=lambda cls: cls.__name__,
)

#: Every string id `compile(metrics=[...])` accepts: class names, their snake_case forms and
#: Keras's aliases. `'accuracy'`/`'acc'` are settled from the data's shapes by compile.
ALL_OBJECTS_DICT: dict[str, type[Metric]] = {
    **{cls.__name__: cls for cls in _CLASSES},
    **{snake_case(cls.__name__): cls for cls in _CLASSES},
    "bce": BinaryCrossentropy,
    "BCE": BinaryCrossentropy,
    "mse": MeanSquaredError,
    "MSE": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "MAE": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError,
    "MAPE": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError,
    "MSLE": MeanSquaredLogarithmicError,
}

#: Classes `deserialize` rebuilds from a config: the id table's, plus the bases that need
#: arguments or take other inputs than `(y_true, y_pred)` (no string id gives those).
_CONFIG_CLASSES: dict[str, type[Metric]] = {
    **{cls.__name__: cls for cls in _CLASSES},
    "Mean": Mean,
    "Sum": Sum,
    "MeanMetricWrapper": MeanMetricWrapper,
}

#: The per-sample functions a `MeanMetricWrapper` config may name.
_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    name: getattr(module, name)
    for module in (_losses, _accuracy, _correlation)
    for name in getattr(module, "__all__", ())
    if name[0].islower() and callable(getattr(module, name))
}

#: Keras ids kfit does not implement, with what to use instead (none left).
UNSUPPORTED: dict[str, str] = {}

ACCURACY_IDS = ("accuracy", "acc")


def serialize(metric: Any) -> Any:
    """A metric or metric function as plain data: `{'module', 'class_name', 'config'}`.

    Args:
        metric: a kfit metric object or a per-sample function.

    Returns:
        A dict that `deserialize` reads (for a function, `class_name` is `'function'` and
        `config` its name, as in Keras).

    Raises:
        TypeError: for anything else.
    """
    if isinstance(metric, Metric):
        config = dict(metric.get_config())
        if callable(config.get("fn")):
            config["fn"] = config["fn"].__name__
        return {"module": "kfit.metrics", "class_name": type(metric).__name__, "config": config}
    if callable(metric) and getattr(metric, "__name__", None) in _FUNCTIONS:
        return {"module": "kfit.metrics", "class_name": "function", "config": metric.__name__}
    raise TypeError(
        f"Only kfit metric objects and kfit metric functions serialize; got {metric!r}."
    )


def deserialize(config: Any, custom_objects: dict[str, Any] | None = None) -> Any:
    """Rebuilds a metric from `serialize`'s output (or Keras's `{'class_name', 'config'}`).

    Args:
        config: a dict with `class_name` and `config` (`'function'` and a function's name for
            a function), or a string id (as `get`).
        custom_objects: extra classes or functions by name.

    Returns:
        A new metric object, or a function.

    Raises:
        ValueError: for an unknown class name or id.
    """
    custom_objects = custom_objects or {}
    if isinstance(config, str):
        if config in custom_objects:
            return custom_objects[config]
        return get(config)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            f"A metric config must be a dict with 'class_name' and 'config'; got {config!r}."
        )
    name = config["class_name"]
    if name == "function":
        function = config.get("config")
        if not isinstance(function, str):
            raise ValueError(
                f"A metric function's config must be the function's name; got {function!r}."
            )
        found = custom_objects.get(function) or _FUNCTIONS.get(function)
        if found is None:
            raise unknown_id_error("metric function", function, [*_FUNCTIONS], "kfit.metrics")
        return found
    cls = custom_objects.get(name) or _CONFIG_CLASSES.get(name)
    if cls is None:
        raise unknown_id_error(
            "metric class", name, [*_CONFIG_CLASSES, *custom_objects], "kfit.metrics"
        )
    arguments = dict(config.get("config") or {})
    if isinstance(arguments.get("fn"), str):
        fn = arguments["fn"]
        arguments["fn"] = custom_objects.get(fn) or _FUNCTIONS[fn]
    return cls.from_config(arguments)


def get(identifier: Any) -> Any:
    """Resolves a metric identifier to a metric object or function.

    Args:
        identifier: a string id (`'mae'`, `'AUC'`, ...), a config dict
            (`{'class_name': 'AUC', 'config': {...}}`), a metric object (kfit's or any
            `torchmetrics.Metric`), a metric class, or a function `f(y_true, y_pred)`.

    Returns:
        A new metric object for string ids, configs and classes; the identifier itself
        otherwise.

    Raises:
        ValueError: for an unknown string id (naming the closest valid one).
        TypeError: for anything that is neither a string, a dict nor callable.
    """
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier in UNSUPPORTED:
            raise ValueError(
                f"Metric {identifier!r} is not built into kfit: {UNSUPPORTED[identifier]}."
            )
        if identifier not in ALL_OBJECTS_DICT:
            raise unknown_id_error(
                "metric",
                identifier,
                [*ALL_OBJECTS_DICT, *ACCURACY_IDS],
                "kfit.metrics.ALL_OBJECTS_DICT",
            )
        cls = ALL_OBJECTS_DICT[identifier]
        try:
            return cls()
        except TypeError as err:  # e.g. IoU needs num_classes: a string id cannot say it
            raise ValueError(
                f"Metric {identifier!r} needs arguments ({err}); pass an object "
                f"instead, e.g. kfit.metrics.{cls.__name__}(...)."
            ) from err
    if isinstance(identifier, type) and issubclass(identifier, torchmetrics.Metric):
        return identifier()
    if isinstance(identifier, torchmetrics.Metric) or callable(identifier):
        return identifier
    raise TypeError(
        f"A metric must be a string id, a config dict, a metric object or class, or a "
        f"function f(y_true, y_pred); got {identifier!r} of type {type(identifier).__name__}."
    )
