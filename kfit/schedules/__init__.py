"""Keras 3's learning-rate schedules, evaluated on the host in double precision.

A schedule maps the optimizer's step count to a learning rate: `schedule(step) -> float`.
The constructors, defaults, formulas and configs are Keras 3's
(`keras.optimizers.schedules`), so a config written by `keras.optimizers.schedules.serialize`
builds the same schedule here and the other way round.

Unlike Keras, which evaluates schedules as float32 tensor ops, these are plain Python
arithmetic: kfit calls a schedule with the step as a Python int and writes the result into the
torch optimizer's `lr`, so a schedule never touches the device and never reads a value back
from it. Values agree with Keras's to float32 precision (Keras rounds its inputs and each
operation to float32; kfit's are exact to double precision).

Arguments are checked more strictly than Keras does where a bad value would otherwise give a
NaN, complex, negative or silently ignored learning rate. Every numeric argument is a real
number here: Keras 3 computes a schedule in the dtype of `initial_learning_rate`, so an
integer one truncates everything (`ExponentialDecay(1, 10, 0.5)(10)` is 0 in Keras, 0.5 here).

The package follows `keras/src/optimizers/schedules/`: `base` (`LearningRateSchedule`),
`decay` (exponential, piecewise constant, polynomial, inverse time), `cosine` (`CosineDecay`,
`CosineDecayRestarts`), `arguments` (the argument checks) and `registry` (`serialize`,
`deserialize`, `get`). Everything public is importable from `kfit.schedules`.
"""

from __future__ import annotations

from kfit.schedules.base import LearningRateSchedule
from kfit.schedules.cosine import CosineDecay, CosineDecayRestarts
from kfit.schedules.decay import (
    ExponentialDecay,
    InverseTimeDecay,
    PiecewiseConstantDecay,
    PolynomialDecay,
)

# ALL_OBJECTS_DICT is public but not in `__all__`, as before the split.
from kfit.schedules.registry import ALL_OBJECTS_DICT as ALL_OBJECTS_DICT
from kfit.schedules.registry import deserialize, get, serialize

__all__ = [
    "CosineDecay",
    "CosineDecayRestarts",
    "ExponentialDecay",
    "InverseTimeDecay",
    "LearningRateSchedule",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "deserialize",
    "get",
    "serialize",
]
