"""Keras's optimizer attributes (`learning_rate`, `lr`, `iterations`) on torch optimizers.

`with_keras_attributes(optimizer)` swaps the optimizer's class for a subclass of it that
also inherits `KerasAttributes`. That subclass is made at run time, once per torch class,
and is pickled by name as `kfit.optimizers._KERAS_CLASSES_<TorchClassName>`: the package's
module `__getattr__` finds it again in a new process (`keras_class_named` here, then the
torch class by name).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import torch

from kfit.optimizers.learning_rate import get_learning_rate, scheduled_rate, set_learning_rate

#: The prefix of the pickled names of the Keras-attribute classes.
KERAS_CLASS_PREFIX = "_KERAS_CLASSES_"

# The module the Keras-attribute classes say they belong to: the package, whose `__getattr__`
# resolves their names, so pickles name `kfit.optimizers._KERAS_CLASSES_Adam` as they always
# have, whatever module of the package defines the machinery.
_PICKLE_MODULE = "kfit.optimizers"

if TYPE_CHECKING:
    # For the type checker the mixin is a torch optimizer: it is only ever combined with one
    # (`keras_class`), ahead of it in the MRO, and uses its `param_groups` and `step`.
    _TorchOptimizer = torch.optim.Optimizer
else:
    _TorchOptimizer = object


class KerasAttributes(_TorchOptimizer):
    """Keras's optimizer attributes on the torch optimizers kfit builds.

    `learning_rate` (alias `lr`) reads the current rate and takes a float (all parameter
    groups keep their ratios) or a schedule `step -> float`, honoured from the next step;
    `iterations` counts the updates made. The count lives in the first parameter group
    (`'iterations'`), so it is saved and restored with the optimizer's `state_dict`.
    """

    # Instance attributes, set only where needed (read with `getattr(..., default)`).
    #: The learning-rate schedule, if the optimizer has one.
    kfit_lr_schedule: Callable[[int], float] | None
    #: Whether kfit's `Optimizer.step` sets the scheduled rate and counts the updates.
    kfit_counted_outside: bool

    @property
    def iterations(self) -> int:
        """The number of updates made so far."""
        return int(self.param_groups[0].get("iterations", 0))

    @property
    def learning_rate(self) -> float:
        """The rate the next update uses (a schedule's value at `iterations`)."""
        schedule = getattr(self, "kfit_lr_schedule", None)
        if schedule is not None:
            return scheduled_rate(schedule, self.iterations)
        return get_learning_rate(self)

    @learning_rate.setter
    def learning_rate(self, value: float | Callable[[int], float]) -> None:
        if callable(value) and not isinstance(value, bool):
            rate = scheduled_rate(value, self.iterations)
            self.kfit_lr_schedule = value
            for group in self.param_groups:
                group["lr"] = rate
            return
        set_learning_rate(self, value)

    lr = learning_rate

    def step(self, closure: Any = None) -> Any:
        """Torch's `step`, after setting a schedule's rate and counting the update."""
        if not getattr(self, "kfit_counted_outside", False):  # Optimizer.step counts itself
            group = self.param_groups[0]
            iteration = group.get("iterations", 0)
            schedule = getattr(self, "kfit_lr_schedule", None)
            if schedule is not None:
                rate = scheduled_rate(schedule, iteration)
                for each in self.param_groups:
                    each["lr"] = rate
            group["iterations"] = iteration + 1
        return super().step(closure)


# The Keras-attribute class of each torch optimizer class, and of each pickled name.
_KERAS_CLASSES: dict[type, type[KerasAttributes]] = {}
_KERAS_CLASSES_BY_NAME: dict[str, type[KerasAttributes]] = {}


def keras_class(cls: type[torch.optim.Optimizer]) -> type[KerasAttributes]:
    """Returns the subclass of `cls` with `KerasAttributes`, made once per class.

    Args:
        cls: a torch optimizer class (torch's, kfit's or your own).

    Returns:
        A class named as `cls`, picklable as `kfit.optimizers._KERAS_CLASSES_<cls name>`.
    """
    keras_cls = _KERAS_CLASSES.get(cls)
    if keras_cls is None:
        # Made at run time on purpose: `cls` is any torch optimizer class, the user's own
        # included, so the subclass cannot be written out beforehand.
        keras_cls = type(cls.__name__, (KerasAttributes, cls), {"__module__": _PICKLE_MODULE})
        keras_cls.__qualname__ = f"{KERAS_CLASS_PREFIX}{cls.__name__}"
        _KERAS_CLASSES_BY_NAME[keras_cls.__qualname__] = keras_cls  # picklable by name
        _KERAS_CLASSES[cls] = keras_cls
    return keras_cls


def keras_class_named(name: str) -> type[KerasAttributes] | None:
    """The Keras-attribute class already made under the pickled name `name`, or None."""
    return _KERAS_CLASSES_BY_NAME.get(name)


def with_keras_attributes(optimizer: torch.optim.Optimizer) -> KerasAttributes:
    """Gives a torch optimizer Keras's `learning_rate`, `lr` and `iterations` (in place).

    Its class becomes a subclass of its own class with `KerasAttributes`, so it is still an
    instance of its torch class and behaves as before.

    Args:
        optimizer: a torch optimizer; one that has Keras's attributes is left as is.

    Returns:
        The same optimizer.
    """
    if isinstance(optimizer, KerasAttributes):
        return optimizer
    optimizer.__class__ = keras_class(type(optimizer))
    return cast(KerasAttributes, optimizer)  # now an instance of a KerasAttributes subclass
