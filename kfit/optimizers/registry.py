"""The optimizer registry: Keras's ids, `serialize`, `deserialize` and `get`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from kfit.optimizers.adafactor import Adafactor
from kfit.optimizers.adagrad import Adadelta, Adagrad
from kfit.optimizers.adam import Adam, Adamax, AdamW, Nadam
from kfit.optimizers.base import Optimizer
from kfit.optimizers.ftrl import Ftrl
from kfit.optimizers.lion import Lion
from kfit.optimizers.rmsprop import RMSprop
from kfit.optimizers.sgd import SGD
from kfit.registry import unknown_id_error

#: Keras's optimizer string ids (matched ignoring case) and the constructors they call.
ALL_OBJECTS_DICT: dict[str, type[Optimizer]] = {
    cls.__name__.lower(): cls
    for cls in (SGD, RMSprop, Adam, AdamW, Adagrad, Adadelta, Adamax, Nadam, Adafactor, Lion, Ftrl)
}

#: Keras ids kfit knows but does not build, with the reason.
UNSUPPORTED = {
    "muon": "Keras's Muon mixes Muon and AdamW per variable; pass torch.optim.Muon yourself",
    "schedulefreeadamw": "not implemented in kfit",
    "lossscaleoptimizer": "use compile(precision='16-mixed') instead",
    "multioptimizer": "build a torch optimizer with parameter groups instead",
    "optimizermap": "build a torch optimizer with parameter groups instead",
    "optimizer": "name a concrete optimizer such as 'adam'",
}


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """Returns an optimizer spec as a plain dict, in the form Keras 3 writes.

    Args:
        optimizer: a `kfit.optimizers` object such as `Adam(learning_rate=1e-3)`.

    Returns:
        `{"module", "class_name", "config", "registered_name"}`; a schedule learning rate is
        itself serialized inside `config`.

    Raises:
        TypeError: for a torch optimizer (it has no Keras config) or anything else.
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"`optimizer` must be a kfit.optimizers.Optimizer to serialize; got {optimizer!r} "
            f"of type {type(optimizer).__name__}. A torch optimizer has no config."
        )
    cls = type(optimizer)
    builtin = ALL_OBJECTS_DICT.get(cls.__name__.lower()) is cls
    if builtin:
        module = "keras.optimizers"
    elif cls is Optimizer:
        module = "kfit.optimizers"  # the base class's public home, where it is documented
    else:
        module = cls.__module__
    return {
        "module": module,
        "class_name": cls.__name__,
        "config": optimizer.get_config(),
        "registered_name": None if builtin else cls.__name__,
    }


def deserialize(
    config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None
) -> Optimizer:
    """Builds an optimizer spec from `serialize`'s dict (or Keras's).

    Args:
        config: a dict with `"class_name"` and `"config"`.
        custom_objects: your own `Optimizer` subclasses and schedules by class name.

    Returns:
        The optimizer spec.

    Raises:
        TypeError: if `config` is not a dict of that form.
        ValueError: for an unknown class name (naming the closest one) or bad arguments.
    """
    if not isinstance(config, Mapping) or not isinstance(config.get("class_name"), str):
        raise TypeError(
            "A serialized optimizer must be a dict {'class_name': str, 'config': dict}; "
            f"got {config!r}."
        )
    custom = dict(custom_objects or {})
    class_name = config["class_name"]
    cls = custom.get(class_name) or ALL_OBJECTS_DICT.get(class_name.lower())
    if cls is None:
        if class_name.lower() in UNSUPPORTED:
            raise ValueError(
                f"Optimizer {class_name!r} is not supported: {UNSUPPORTED[class_name.lower()]}."
            )
        raise unknown_id_error(
            "optimizer", class_name, list(ALL_OBJECTS_DICT), "kfit.optimizers.ALL_OBJECTS_DICT"
        )
    return cls.from_config(dict(config.get("config") or {}), custom_objects=custom)


def get(identifier: Any) -> Optimizer | torch.optim.Optimizer | type[torch.optim.Optimizer]:
    """Resolves an optimizer identifier.

    Args:
        identifier: a Keras string id (any case), a config dict (what `serialize` or
            Keras's `keras.optimizers.serialize` returns), a kfit `Optimizer`, a torch
            optimizer class, or a torch optimizer instance.

    Returns:
        A kfit `Optimizer` spec for string ids; the identifier otherwise.

    Raises:
        ValueError: for an unknown string id (naming the closest valid one).
        TypeError: for anything else.
    """
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in UNSUPPORTED:
            raise ValueError(f"Optimizer {identifier!r} is not supported: {UNSUPPORTED[key]}.")
        if key not in ALL_OBJECTS_DICT:
            raise unknown_id_error(
                "optimizer", identifier, list(ALL_OBJECTS_DICT), "kfit.optimizers.ALL_OBJECTS_DICT"
            )
        # Every built-in builds from its defaults alone; from_config says so to the type
        # checker, which sees the base class's constructor (it needs arguments).
        return ALL_OBJECTS_DICT[key].from_config({})
    if isinstance(identifier, Mapping):
        return deserialize(identifier)
    if isinstance(identifier, Optimizer | torch.optim.Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, torch.optim.Optimizer):
        return identifier
    raise TypeError(
        f"`optimizer` must be a string id, a kfit.optimizers.Optimizer, or a torch optimizer "
        f"class or instance; got {identifier!r} of type {type(identifier).__name__}."
    )
