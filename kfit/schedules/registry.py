"""The schedule registry: `ALL_OBJECTS_DICT`, `serialize`, `deserialize` and `get`.

Configs are in Keras 3's form, so a config written by `keras.optimizers.schedules.serialize`
builds the same schedule here and the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kfit.registry import unknown_id_error
from kfit.schedules.base import LearningRateSchedule
from kfit.schedules.cosine import CosineDecay, CosineDecayRestarts
from kfit.schedules.decay import (
    ExponentialDecay,
    InverseTimeDecay,
    PiecewiseConstantDecay,
    PolynomialDecay,
)

#: Keras writes this module name into the configs of its built-in schedules.
KERAS_MODULE = "keras.optimizers.schedules"

#: The built-in schedules by class name.
ALL_OBJECTS_DICT: dict[str, type[LearningRateSchedule]] = {
    cls.__name__: cls
    for cls in (
        CosineDecay,
        CosineDecayRestarts,
        ExponentialDecay,
        InverseTimeDecay,
        PiecewiseConstantDecay,
        PolynomialDecay,
    )
}


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """Returns a schedule as a JSON-friendly dict, in the form Keras 3 writes.

    Args:
        schedule: the schedule; its class must implement `get_config()`.

    Returns:
        `{"module": ..., "class_name": ..., "config": {...}, "registered_name": None}`; for
        a built-in schedule it equals `keras.optimizers.schedules.serialize` of the same
        Keras schedule.

    Raises:
        TypeError: if `schedule` is not a `LearningRateSchedule`.

    Example:
        >>> serialize(InverseTimeDecay(0.1, 10, 0.5))["config"]["decay_rate"]
        0.5
    """
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(
            f"`schedule` must be a kfit.schedules.LearningRateSchedule; got {schedule!r}."
        )
    cls = type(schedule)
    return {
        "module": KERAS_MODULE if ALL_OBJECTS_DICT.get(cls.__name__) is cls else cls.__module__,
        "class_name": cls.__name__,
        "config": schedule.get_config(),
        "registered_name": None,
    }


def deserialize(
    config: Mapping[str, Any], custom_objects: Mapping[str, type] | None = None
) -> LearningRateSchedule:
    """Builds a schedule from a dict written by `serialize` (kfit's or Keras's).

    Args:
        config: a dict with `"class_name"` and `"config"` (the constructor's arguments);
            other keys (`"module"`, `"registered_name"`) are ignored.
        custom_objects: your own `LearningRateSchedule` subclasses by class name.

    Returns:
        The schedule.

    Raises:
        TypeError: if `config` is not a dict of that form.
        ValueError: for an unknown class name (naming the closest known one) or invalid
            constructor arguments.

    Example:
        >>> deserialize({"class_name": "ExponentialDecay", "config": {
        ...     "initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5}})(20)
        0.025
    """
    if (
        not isinstance(config, Mapping)
        or not isinstance(config.get("class_name"), str)
        or not isinstance(config.get("config", {}), Mapping)
    ):
        raise TypeError(
            "A serialized schedule must be a dict {'class_name': str, 'config': dict}; "
            f"got {config!r}."
        )
    classes = {**ALL_OBJECTS_DICT, **(custom_objects or {})}
    class_name = config["class_name"]
    if class_name not in classes:
        raise unknown_id_error(
            "learning rate schedule",
            class_name,
            list(classes),
            "kfit.schedules.ALL_OBJECTS_DICT",
        )
    cls = classes[class_name]
    if not (isinstance(cls, type) and issubclass(cls, LearningRateSchedule)):
        raise TypeError(
            f"custom_objects[{class_name!r}] must be a LearningRateSchedule subclass; got {cls!r}."
        )
    return cls.from_config(dict(config.get("config", {})))


def get(identifier: LearningRateSchedule | Mapping[str, Any]) -> LearningRateSchedule:
    """Resolves a learning-rate schedule identifier.

    Args:
        identifier: a `LearningRateSchedule` (returned as is) or a dict
            `{"class_name": ..., "config": {...}}` as written by `serialize` or by Keras's
            `keras.optimizers.schedules.serialize`.

    Returns:
        The schedule.

    Raises:
        TypeError: for anything else (a schedule needs its arguments, so a bare name is not
            an identifier).
        ValueError: for an unknown class name, naming the closest known one.

    Example:
        >>> get({"class_name": "CosineDecay", "config": {
        ...     "initial_learning_rate": 1.0, "decay_steps": 10}})(5)
        0.5
    """
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    if isinstance(identifier, Mapping):
        return deserialize(identifier)
    raise TypeError(
        "A learning-rate schedule identifier must be a kfit.schedules.LearningRateSchedule or "
        f"a dict {{'class_name': ..., 'config': {{...}}}}; got {identifier!r}."
    )
