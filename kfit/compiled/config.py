"""The compile settings as plain values, for `Model.save` to record and `Model.load` to replay.

String ids, numbers and flags are kept as they are. Objects with a config are recorded as a
tagged dict `{"kfit_object": kind, "config": serialized}`:

- losses: `kfit.losses.Loss` objects (`kfit.losses.serialize`), and registered loss
  functions by name;
- optimizers: `kfit.optimizers` specs such as `Adam(learning_rate=ExponentialDecay(...))`
  (`kfit.optimizers.serialize`, the schedule inside);
- metrics: kfit metric objects that have `get_config()`;
- torch loss modules (`nn.CrossEntropyLoss(label_smoothing=0.1)`) by class name and
  their plain constructor arguments, and torch optimizer classes (`torch.optim.AdamW`) by name.

A setting that holds anything else (a torch optimizer instance, a loss module with a tensor
argument, a lambda, a metric without a config) cannot be recorded: it is left out, its name
listed under `"unrecorded"`, and `save` warns once, naming it. `load` compiles an uncompiled
model only when the loss and the optimizer were recorded.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from kfit import losses, optimizers

__all__ = ["UNRECORDED_KEY", "can_compile", "from_config", "to_config"]

#: The key listing the settings `to_config` could not record.
UNRECORDED_KEY = "unrecorded"
_TAG = "kfit_object"


class _NotExpressible(Exception):
    """A value with no plain-value description."""


def _metric_config(metric: Any) -> dict[str, Any]:
    from kfit import metrics  # imported here: kfit.metrics imports kfit.losses

    cls = type(metric)
    get_config = getattr(metric, "get_config", None)
    if get_config is None or getattr(metrics, cls.__name__, None) is not cls:
        raise _NotExpressible(repr(metric))
    try:
        config = get_config()
    except (NotImplementedError, TypeError) as err:
        raise _NotExpressible(repr(metric)) from err
    return {"class_name": cls.__name__, "config": _plain(config, "value")}


_DEPRECATED_TORCH_LOSS_ARGS = ("size_average", "reduce")


def _torch_loss_config(module: nn.Module) -> dict[str, Any]:
    """A torch.nn loss module as its class name and plain constructor arguments."""
    cls = type(module)
    if getattr(nn, cls.__name__, None) is not cls or not cls.__module__.startswith(
        "torch.nn.modules.loss"
    ):
        raise _NotExpressible(repr(module))
    config = {}
    for name in inspect.signature(cls.__init__).parameters:
        if name in ("self", *_DEPRECATED_TORCH_LOSS_ARGS) or not hasattr(module, name):
            continue
        value = getattr(module, name)
        if value is not None and not isinstance(value, str | bool | int | float):
            raise _NotExpressible(repr(module))  # e.g. a class-weight tensor
        config[name] = value
    return {"class_name": cls.__name__, "config": config}


def _plain(value: Any, kind: str) -> Any:
    """`value` as plain data, objects of `kind` tagged; raises `_NotExpressible`."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item, kind) for item in value]
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise _NotExpressible(repr(value))
        return {key: _plain(item, kind) for key, item in value.items()}
    if kind == "loss" and isinstance(value, losses.Loss):
        try:
            return {_TAG: "loss", "config": _plain(losses.serialize(value), "value")}
        except TypeError as err:
            raise _NotExpressible(repr(value)) from err
    if kind == "loss" and losses.ALL_OBJECTS_DICT.get(getattr(value, "__name__", "")) is value:
        return value.__name__
    if kind == "loss" and isinstance(value, nn.Module):
        return {_TAG: "torch_loss", "config": _torch_loss_config(value)}
    if (
        kind == "optimizer"
        and isinstance(value, type)
        and getattr(torch.optim, value.__name__, None) is value
    ):
        return {_TAG: "torch_optimizer_class", "config": value.__name__}
    if kind == "optimizer" and isinstance(value, optimizers.Optimizer):
        try:
            return {_TAG: "optimizer", "config": _plain(optimizers.serialize(value), "value")}
        except TypeError as err:
            raise _NotExpressible(repr(value)) from err
    if kind == "metric":
        return {_TAG: "metric", "config": _metric_config(value)}
    raise _NotExpressible(repr(value))


_KINDS = {
    "optimizer": "optimizer",
    "loss": "loss",
    "metrics": "metric",
    "weighted_metrics": "metric",
}


def to_config(**settings: Any) -> dict[str, Any]:
    """The compile settings as plain values, objects serialized where they have a config.

    Args:
        **settings: `compile`'s arguments by name.

    Returns:
        The recordable settings; `"unrecorded"` lists the names of those left out (absent
        when all were recorded).
    """
    config: dict[str, Any] = {}
    unrecorded = []
    for key, value in settings.items():
        try:
            config[key] = _plain(value, _KINDS.get(key, "value"))
        except _NotExpressible:
            unrecorded.append(key)
    if unrecorded:
        config[UNRECORDED_KEY] = unrecorded
    return config


def warn_unrecorded(config: Mapping[str, Any], source: str) -> None:
    """Warns that `save` could not record some compile settings, naming them."""
    unrecorded = config.get(UNRECORDED_KEY)
    if unrecorded:
        warnings.warn(
            f"{source}: the compile settings {unrecorded} hold objects without a config (a "
            "torch optimizer or loss module, a function, or a metric without get_config), so "
            "they are not saved. Compile the model the same way before `load` to restore them.",
            stacklevel=3,
        )


def can_compile(config: Mapping[str, Any]) -> bool:
    """Whether `config` holds what `compile` needs: a recorded loss and optimizer."""
    unrecorded = config.get(UNRECORDED_KEY, [])
    return (
        config.get("loss") is not None
        and "optimizer" in config
        and "loss" not in unrecorded
        and "optimizer" not in unrecorded
    )


def _restore(value: Any) -> Any:
    if isinstance(value, list):
        return [_restore(item) for item in value]
    if isinstance(value, Mapping):
        kind = value.get(_TAG)
        if kind == "loss":
            return losses.deserialize(value["config"])
        if kind == "optimizer":
            return optimizers.deserialize(value["config"])
        if kind == "metric":
            return _metric_from_config(value["config"])
        if kind == "torch_loss":
            cls = getattr(nn, value["config"]["class_name"])
            return cls(**value["config"]["config"])
        if kind == "torch_optimizer_class":
            return getattr(torch.optim, value["config"])
        return {key: _restore(item) for key, item in value.items()}
    return value


def _metric_from_config(config: Mapping[str, Any]) -> Any:
    from kfit import metrics

    cls = getattr(metrics, config["class_name"], None)
    if not isinstance(cls, type):
        raise ValueError(f"Unknown metric class {config['class_name']!r} in the saved compile.")
    inner = dict(config.get("config") or {})
    from_config = getattr(cls, "from_config", None)
    return from_config(inner) if from_config is not None else cls(**inner)


def from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """`compile`'s keyword arguments rebuilt from `to_config`'s dict.

    Args:
        config: what `to_config` returned (or an older file's plain-id settings).

    Returns:
        The arguments, with loss, optimizer and metric objects rebuilt.
    """
    return {key: _restore(value) for key, value in config.items() if key != UNRECORDED_KEY}
