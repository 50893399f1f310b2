"""Tests for kfit.schedules: values against Keras 3's schedules, properties, configs, errors.

Keras evaluates schedules in its floatx. Two comparisons follow from that:

* with Keras's default float32 every input and intermediate is rounded to float32 (unit
  roundoff 2**-24, about 6e-8), and a schedule is a handful of operations on numbers no larger
  than its peak rate, so Keras is off from the exact value by a few units of 6e-8 times the
  peak. The check is `rtol=1e-6` plus `atol=1e-6 * peak` (about 16 float32 units of the peak):
  it passes Keras's rounding and fails any formula error larger than a millionth of the peak.
  The absolute part matters far down a decay, where `0.96 ** 500` in float32 carries a
  relative error of about 1e-5 (the exponent multiplies the rounding of `0.96`).
* with `floatx="float64"` Keras does the same arithmetic as kfit in double precision, so the
  two agree to rounding: `rtol=1e-12` (plus `1e-15 * peak` for values that are a difference
  of nearly equal numbers, such as `1 + cos(x)` near `x = pi`). This checks the formulas
  exactly, including far down the tail where float32 has no digits left.
"""

from __future__ import annotations

import json
import math
import os
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kfit import schedules as ks

# Before Keras is imported: its backend is fixed at import time.
os.environ.setdefault("KERAS_BACKEND", "torch")


@dataclass(frozen=True)
class Case:
    """A schedule's arguments and the steps at which to compare it with Keras."""

    id: str
    class_name: str
    kwargs: dict[str, Any]
    horizon: int  # every step in [0, horizon] is compared
    far: tuple[int, ...] = (1_000, 100_000)
    exact_in_float32: bool = True  # False where float32 rounding moves a restart
    rtol_float32: float = 1e-6

    @property
    def steps(self) -> list[int]:
        return [*range(self.horizon + 1), *self.far]


CASES = [
    Case(
        "exponential",
        "ExponentialDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
        45,
    ),
    Case(
        "exponential-staircase",
        "ExponentialDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.96, "staircase": True},
        45,
        (999, 1_000, 5_000),
    ),
    # float32(1.1) is 1.1 * (1 + 2.2e-8), and `** 100` (step 2000) makes that 2.2e-6.
    Case(
        "exponential-growth",
        "ExponentialDecay",
        {"initial_learning_rate": 0.01, "decay_steps": 20, "decay_rate": 1.1},
        45,
        (2_000,),
        rtol_float32=5e-6,
    ),
    Case(
        "exponential-float-decay-steps",
        "ExponentialDecay",
        {"initial_learning_rate": 1.0, "decay_steps": 2.5, "decay_rate": 0.9, "staircase": True},
        20,
    ),
    Case(
        "piecewise",
        "PiecewiseConstantDecay",
        {"boundaries": [10, 20, 35], "values": [1.0, 0.5, 0.1, 0.01]},
        40,
    ),
    Case(
        "piecewise-one-boundary",
        "PiecewiseConstantDecay",
        {"boundaries": [5], "values": [0.1, 0.02]},
        8,
    ),
    Case(
        "polynomial-default",
        "PolynomialDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 10},
        25,
    ),
    Case(
        "polynomial-quadratic",
        "PolynomialDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 7, "end_learning_rate": 0.0, "power": 2.0},
        20,
    ),
    Case(
        "polynomial-increasing",
        "PolynomialDecay",
        {"initial_learning_rate": 0.01, "decay_steps": 10, "end_learning_rate": 0.1, "power": 0.7},
        20,
    ),
    Case(
        "polynomial-cycle-sqrt",
        "PolynomialDecay",
        {
            "initial_learning_rate": 0.1,
            "decay_steps": 10,
            "end_learning_rate": 0.01,
            "power": 0.5,
            "cycle": True,
        },
        45,
        (1_000, 1_001, 100_000),
    ),
    Case(
        "polynomial-cycle-cubic",
        "PolynomialDecay",
        {
            "initial_learning_rate": 0.1,
            "decay_steps": 6,
            "end_learning_rate": 0.0,
            "power": 3.0,
            "cycle": True,
        },
        30,
    ),
    Case(
        "inverse-time",
        "InverseTimeDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 1.0, "decay_rate": 0.5},
        30,
    ),
    Case(
        "inverse-time-staircase",
        "InverseTimeDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 2.0, "staircase": True},
        45,
    ),
    Case("cosine", "CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 20}, 25),
    Case(
        "cosine-alpha",
        "CosineDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 20, "alpha": 0.1},
        25,
    ),
    Case(
        "cosine-warmup",
        "CosineDecay",
        {
            "initial_learning_rate": 0.0,
            "decay_steps": 20,
            "alpha": 0.05,
            "warmup_target": 0.1,
            "warmup_steps": 8,
        },
        32,
    ),
    Case(
        "cosine-warmup-down",
        "CosineDecay",
        {"initial_learning_rate": 0.3, "decay_steps": 12, "warmup_target": 0.1, "warmup_steps": 5},
        20,
    ),
    Case(
        "cosine-warmup-zero-steps",
        "CosineDecay",
        {"initial_learning_rate": 0.01, "decay_steps": 20, "warmup_target": 0.1, "warmup_steps": 0},
        25,
    ),
    Case(
        "restarts-default",
        "CosineDecayRestarts",
        {"initial_learning_rate": 0.1, "first_decay_steps": 10},
        160,
    ),
    Case(
        "restarts-constant-period",
        "CosineDecayRestarts",
        {
            "initial_learning_rate": 0.1,
            "first_decay_steps": 10,
            "t_mul": 1.0,
            "m_mul": 0.5,
            "alpha": 0.1,
        },
        45,
    ),
    Case(
        "restarts-t3",
        "CosineDecayRestarts",
        {
            "initial_learning_rate": 0.1,
            "first_decay_steps": 7,
            "t_mul": 3.0,
            "m_mul": 0.9,
            "alpha": 0.2,
        },
        95,
    ),
    # In float32, log(1 + 2.5 * 0.5) / log(1.5) rounds below 2 at step 10, so Keras starts the
    # third period one step late there (returning 0.0); float64 Keras and kfit agree.
    Case(
        "restarts-t1.5",
        "CosineDecayRestarts",
        {"initial_learning_rate": 0.1, "first_decay_steps": 4, "t_mul": 1.5, "m_mul": 0.8},
        40,
        exact_in_float32=False,
    ),
    # Periods of 64, 32, 16, ... steps: infinitely many restarts before step 128.
    Case(
        "restarts-shrinking",
        "CosineDecayRestarts",
        {"initial_learning_rate": 0.1, "first_decay_steps": 64, "t_mul": 0.5, "m_mul": 0.8},
        127,
        (),
    ),
]


def _build(case: Case) -> ks.LearningRateSchedule:
    return getattr(ks, case.class_name)(**case.kwargs)


def _values(schedule: Any, steps: list[int]) -> np.ndarray:
    return np.array([float(schedule(step)) for step in steps])


@pytest.fixture(scope="module")
def keras_schedules():
    """`keras.optimizers.schedules`, evaluated in Keras's default float32."""
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"needs KERAS_BACKEND=torch; got {keras.backend.backend()!r}")
    return keras.optimizers.schedules


@pytest.fixture
def keras_schedules_float64(keras_schedules):
    """`keras.optimizers.schedules` with `floatx="float64"` for the duration of a test."""
    import keras

    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    yield keras_schedules
    keras.config.set_floatx(previous)


# --- values against Keras ---------------------------------------------------------------------


@pytest.mark.keras_compat
@pytest.mark.parametrize("case", [c for c in CASES if c.exact_in_float32], ids=lambda c: c.id)
def test_values_match_keras_float32(case, keras_schedules):
    ours = _values(_build(case), case.steps)
    theirs = _values(getattr(keras_schedules, case.class_name)(**case.kwargs), case.steps)
    np.testing.assert_allclose(ours, theirs, rtol=case.rtol_float32, atol=1e-6 * ours.max())


@pytest.mark.keras_compat
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_values_match_keras_float64(case, keras_schedules_float64):
    keras_schedule = getattr(keras_schedules_float64, case.class_name)(**case.kwargs)
    assert keras_schedule(0).dtype == torch.float64
    ours = _values(_build(case), case.steps)
    theirs = _values(keras_schedule, case.steps)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15 * ours.max())


@pytest.mark.keras_compat
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_serialize_equals_keras_serialize(case, keras_schedules):
    keras_schedule = getattr(keras_schedules, case.class_name)(**case.kwargs)
    assert ks.serialize(_build(case)) == keras_schedules.serialize(keras_schedule)


@pytest.mark.keras_compat
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_keras_config_builds_the_same_schedule(case, keras_schedules):
    keras_config = keras_schedules.serialize(
        getattr(keras_schedules, case.class_name)(**case.kwargs)
    )
    steps = case.steps[::7]
    rebuilt = ks.get(json.loads(json.dumps(keras_config)))
    assert type(rebuilt).__name__ == case.class_name
    assert _values(rebuilt, steps).tolist() == _values(_build(case), steps).tolist()


@pytest.mark.keras_compat
def test_keras_reads_a_kfit_config(keras_schedules):
    schedule = ks.CosineDecay(0.0, 20, alpha=0.05, warmup_target=0.1, warmup_steps=8)
    keras_schedule = keras_schedules.deserialize(json.loads(json.dumps(ks.serialize(schedule))))
    steps = [0, 4, 8, 17, 28, 40]
    np.testing.assert_allclose(
        _values(schedule, steps), _values(keras_schedule, steps), rtol=1e-6, atol=1e-7
    )


def test_every_keras_schedule_class_is_implemented_and_compared():
    keras = pytest.importorskip("keras")
    keras_classes = {
        name
        for name, obj in vars(keras.optimizers.schedules).items()
        if isinstance(obj, type) and name != "LearningRateSchedule"
    }
    assert keras_classes == set(ks.ALL_OBJECTS_DICT)
    assert {case.class_name for case in CASES} == keras_classes


# --- values at known points ---------------------------------------------------------------------


def test_restart_step_starts_the_next_period():
    schedule = ks.CosineDecayRestarts(0.1, 4, t_mul=1.5, m_mul=0.8)
    # Periods of 4, 6 and 9 steps: restarts at steps 4, 10 and 19.
    assert schedule(4) == pytest.approx(0.1 * 0.8, rel=1e-12)
    assert schedule(10) == pytest.approx(0.1 * 0.8**2, rel=1e-12)
    assert schedule(19) == pytest.approx(0.1 * 0.8**3, rel=1e-12)
    assert schedule(9) < schedule(10)


def test_shrinking_restarts_raise_at_their_limit():
    schedule = ks.CosineDecayRestarts(0.1, 64, t_mul=0.5)
    assert 0 < schedule(127) <= 0.1
    for step in (128, 10**6):
        with pytest.raises(ValueError, match=r"t_mul=0\.5 < 1 .* before step 128\.0; got step="):
            schedule(step)


@pytest.mark.parametrize(("decay_rate", "staircase"), [(10.0, False), (10, True)])
def test_growth_past_float_range_raises_overflow(decay_rate, staircase):
    schedule = ks.ExponentialDecay(0.1, decay_steps=1, decay_rate=decay_rate, staircase=staircase)
    assert schedule(300) == pytest.approx(1e299)
    with pytest.raises(OverflowError, match="ExponentialDecay.*step 1000"):
        schedule(1000)


def test_piecewise_without_boundaries_is_constant():
    schedule = ks.PiecewiseConstantDecay([], [0.3])
    assert [schedule(step) for step in (0, 1, 10**9)] == [0.3, 0.3, 0.3]


def test_cosine_warmup_ends_at_target_and_decay_floor_is_alpha():
    schedule = ks.CosineDecay(0.0, decay_steps=10, alpha=0.2, warmup_target=0.5, warmup_steps=4)
    assert schedule(0) == 0.0
    assert schedule(2) == pytest.approx(0.25)
    assert schedule(4) == pytest.approx(0.5)
    assert schedule(14) == pytest.approx(0.1)
    assert schedule(10**6) == pytest.approx(0.1)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_call_returns_a_python_float(case):
    assert all(type(value) is float for value in map(_build(case), (0, 1, case.horizon)))


# --- the step argument ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "step", [np.int64(15), np.int32(15), np.uint8(15), torch.tensor(15), torch.tensor([15])]
)
def test_integer_steps_of_any_kind_give_the_python_int_value(step):
    schedule = ks.CosineDecayRestarts(0.1, 10)
    assert schedule(step) == schedule(15)


@pytest.mark.parametrize(
    "step", [15.0, np.float64(15.0), torch.tensor(15.0), True, "15", None, [15]]
)
def test_non_integer_step_raises_type_error(step):
    with pytest.raises(TypeError, match="`step` must be an integer"):
        ks.ExponentialDecay(0.1, 10, 0.5)(step)


def test_negative_step_raises_value_error():
    with pytest.raises(ValueError, match="`step` must be >= 0; got -1"):
        ks.PiecewiseConstantDecay([10], [0.1, 0.01])(-1)


# --- configs, serialization and get -------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_json_round_trip_rebuilds_the_same_schedule(case):
    schedule = _build(case)
    rebuilt = ks.get(json.loads(json.dumps(ks.serialize(schedule))))
    assert type(rebuilt) is type(schedule)
    assert rebuilt.get_config() == schedule.get_config()
    assert _values(rebuilt, case.steps).tolist() == _values(schedule, case.steps).tolist()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_repr_evaluates_to_an_equal_schedule(case):
    schedule = _build(case)
    assert repr(schedule).startswith(f"{case.class_name}(")
    rebuilt = eval(repr(schedule), vars(ks))
    assert rebuilt.get_config() == schedule.get_config()


def test_numpy_arguments_give_a_json_config_of_python_numbers():
    schedule = ks.PolynomialDecay(np.float32(0.5), np.int64(10), end_learning_rate=np.float64(0.1))
    config = schedule.get_config()
    assert type(config["initial_learning_rate"]) is float
    assert type(config["decay_steps"]) is int
    assert json.loads(json.dumps(config)) == config


def test_piecewise_keeps_its_own_copy_of_the_lists():
    boundaries, values = [10], [0.1, 0.01]
    schedule = ks.PiecewiseConstantDecay(boundaries, values)
    boundaries[0], values[0] = 0, 9.0
    assert schedule(5) == 0.1


def test_get_returns_a_schedule_unchanged():
    schedule = ks.InverseTimeDecay(0.1, 10, 0.5)
    assert ks.get(schedule) is schedule


@pytest.mark.parametrize(
    ("wrong", "closest"),
    [
        ("CosineDecy", "CosineDecay"),
        ("exponentialdecay", "ExponentialDecay"),
        ("Polynomial", "PolynomialDecay"),
    ],
)
def test_unknown_class_name_names_the_closest(wrong, closest):
    with pytest.raises(ValueError, match=f"{wrong!r}. Did you mean {closest!r}"):
        ks.get({"class_name": wrong, "config": {}})


@pytest.mark.parametrize(
    "identifier",
    ["CosineDecay", 0.01, None, {"config": {}}, {"class_name": "CosineDecay", "config": [1]}],
)
def test_get_rejects_what_is_not_a_schedule_or_its_config(identifier):
    with pytest.raises(TypeError, match="schedule"):
        ks.get(identifier)


def test_get_reports_bad_constructor_arguments():
    with pytest.raises(ValueError, match="decay_steps"):
        ks.get(
            {
                "class_name": "ExponentialDecay",
                "config": {"initial_learning_rate": 0.1, "decay_steps": 0, "decay_rate": 0.5},
            }
        )


class HalfLife(ks.LearningRateSchedule):
    """A user-written schedule: halves the rate every `half_life` steps."""

    def __init__(self, initial_learning_rate: float, half_life: int):
        self.initial_learning_rate = initial_learning_rate
        self.half_life = half_life

    def __call__(self, step: int) -> float:
        return self.initial_learning_rate * 0.5 ** (step / self.half_life)

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "half_life": self.half_life}


def test_custom_schedule_round_trips_through_custom_objects():
    config = json.loads(json.dumps(ks.serialize(HalfLife(0.8, 3))))
    assert config["class_name"] == "HalfLife"
    assert config["module"] == __name__
    rebuilt = ks.deserialize(config, custom_objects={"HalfLife": HalfLife})
    assert isinstance(rebuilt, HalfLife)
    assert rebuilt(6) == 0.2
    assert repr(rebuilt) == "HalfLife(initial_learning_rate=0.8, half_life=3)"
    with pytest.raises(ValueError, match="'HalfLife'"):
        ks.deserialize(config)


@pytest.mark.parametrize("name", ks.__all__)
def test_public_names_pickle_by_a_path_that_finds_them_and_by_their_path_before_the_package(name):
    obj = getattr(ks, name)
    assert pickle.loads(pickle.dumps(obj)) is obj
    assert pickle.loads(b"ckfit.schedules\n" + name.encode() + b"\n.") is obj


def test_a_schedule_pickles_with_its_config():
    schedule = ks.CosineDecayRestarts(0.5, first_decay_steps=4, t_mul=1.5, m_mul=0.5, alpha=0.1)

    copied = pickle.loads(pickle.dumps(schedule))

    assert type(copied) is ks.CosineDecayRestarts
    assert copied.get_config() == schedule.get_config()
    assert [copied(step) for step in range(20)] == [schedule(step) for step in range(20)]


def test_custom_objects_must_be_schedule_classes():
    with pytest.raises(TypeError, match=r"custom_objects\['HalfLife'\]"):
        ks.deserialize({"class_name": "HalfLife", "config": {}}, custom_objects={"HalfLife": dict})


def test_serialize_rejects_a_plain_function():
    with pytest.raises(TypeError, match="`schedule` must be"):
        ks.serialize(lambda step: 0.1)


def test_base_class_requires_call_and_get_config():
    class Incomplete(ks.LearningRateSchedule):
        pass

    schedule = Incomplete()
    with pytest.raises(NotImplementedError, match="__call__"):
        schedule(0)
    with pytest.raises(NotImplementedError, match="get_config"):
        schedule.get_config()
    assert repr(schedule).startswith("<")


# --- argument errors ------------------------------------------------------------------------------

EXPONENTIAL = {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5}
POLYNOMIAL = {"initial_learning_rate": 0.1, "decay_steps": 10}
COSINE = {"initial_learning_rate": 0.1, "decay_steps": 10}
RESTARTS = {"initial_learning_rate": 0.1, "first_decay_steps": 10}
PIECEWISE = {"boundaries": [10, 20], "values": [0.1, 0.01, 0.001]}

BAD_ARGUMENTS = [
    (
        ks.ExponentialDecay,
        {"decay_steps": 0},
        ValueError,
        r"`decay_steps` must be a finite number > 0; got decay_steps=0",
    ),
    (ks.ExponentialDecay, {"decay_steps": -5}, ValueError, r"decay_steps=-5"),
    (ks.ExponentialDecay, {"decay_steps": math.inf}, ValueError, r"decay_steps=inf"),
    (
        ks.ExponentialDecay,
        {"decay_rate": -0.5},
        ValueError,
        r"`decay_rate` must be a finite number >= 0",
    ),
    (
        ks.ExponentialDecay,
        {"initial_learning_rate": -0.1},
        ValueError,
        r"initial_learning_rate=-0\.1",
    ),
    (
        ks.ExponentialDecay,
        {"initial_learning_rate": math.nan},
        ValueError,
        r"initial_learning_rate=nan",
    ),
    (
        ks.ExponentialDecay,
        {"initial_learning_rate": "0.1"},
        TypeError,
        r"`initial_learning_rate` must be a finite number >= 0; got '0.1' of type str",
    ),
    (ks.ExponentialDecay, {"initial_learning_rate": True}, TypeError, r"`initial_learning_rate`"),
    (
        ks.ExponentialDecay,
        {"initial_learning_rate": torch.tensor(0.1)},
        TypeError,
        r"of type Tensor",
    ),
    (
        ks.ExponentialDecay,
        {"staircase": "yes"},
        TypeError,
        r"`staircase` must be True or False; got 'yes'",
    ),
    (ks.ExponentialDecay, {"staircase": 1}, TypeError, r"`staircase`"),
    (ks.ExponentialDecay, {"name": 3}, TypeError, r"`name`"),
    (
        ks.PiecewiseConstantDecay,
        {"values": [0.1, 0.01]},
        ValueError,
        r"one more element than `boundaries`.*length 2.*length 2",
    ),
    (ks.PiecewiseConstantDecay, {"boundaries": [10, 20, 30]}, ValueError, r"one more element"),
    (
        ks.PiecewiseConstantDecay,
        {"boundaries": [10, 10]},
        ValueError,
        r"strictly increasing.*boundaries\[1\] <= boundaries\[0\]",
    ),
    (ks.PiecewiseConstantDecay, {"boundaries": [20, 10]}, ValueError, r"strictly increasing"),
    (
        ks.PiecewiseConstantDecay,
        {"boundaries": 10},
        TypeError,
        r"`boundaries` must be a list or tuple",
    ),
    (
        ks.PiecewiseConstantDecay,
        {"values": np.array([0.1, 0.01, 0.001])},
        TypeError,
        r"`values` must be a list or tuple",
    ),
    (
        ks.PiecewiseConstantDecay,
        {"boundaries": ["10", 20]},
        TypeError,
        r"`boundaries\[0\]` must be a finite number; got '10' of type str",
    ),
    (
        ks.PiecewiseConstantDecay,
        {"boundaries": [10, math.nan]},
        ValueError,
        r"`boundaries\[1\]` must be a finite number; got boundaries\[1\]=nan",
    ),
    (
        ks.PiecewiseConstantDecay,
        {"values": [0.1, -0.01, 0.001]},
        ValueError,
        r"`values\[1\]` must be a finite number >= 0",
    ),
    (
        ks.PolynomialDecay,
        {"decay_steps": 0},
        ValueError,
        r"`decay_steps` must be a finite number > 0",
    ),
    (
        ks.PolynomialDecay,
        {"power": -1.0},
        ValueError,
        r"`power` must be a finite number >= 0; got power=-1\.0",
    ),
    (
        ks.PolynomialDecay,
        {"end_learning_rate": -1e-4},
        ValueError,
        r"`end_learning_rate` must be a finite number >= 0",
    ),
    (ks.PolynomialDecay, {"cycle": "no"}, TypeError, r"`cycle` must be True or False"),
    (
        ks.InverseTimeDecay,
        {"decay_steps": 0},
        ValueError,
        r"`decay_steps` must be a finite number > 0",
    ),
    (
        ks.InverseTimeDecay,
        {"decay_rate": -0.1},
        ValueError,
        r"`decay_rate` must be a finite number >= 0",
    ),
    (ks.InverseTimeDecay, {"staircase": None}, TypeError, r"`staircase`"),
    (ks.CosineDecay, {"decay_steps": 0}, ValueError, r"`decay_steps` must be a finite number > 0"),
    (
        ks.CosineDecay,
        {"alpha": 1.5},
        ValueError,
        r"`alpha` must be a finite number in \[0, 1\]; got alpha=1\.5",
    ),
    (ks.CosineDecay, {"alpha": -0.1}, ValueError, r"`alpha` must be a finite number in \[0, 1\]"),
    (
        ks.CosineDecay,
        {"warmup_target": -0.1, "warmup_steps": 5},
        ValueError,
        r"`warmup_target` must be a finite number >= 0",
    ),
    (
        ks.CosineDecay,
        {"warmup_target": 0.2, "warmup_steps": -1},
        ValueError,
        r"`warmup_steps` must be a finite number >= 0",
    ),
    (
        ks.CosineDecay,
        {"warmup_steps": 100},
        ValueError,
        r"`warmup_steps=100` needs a `warmup_target`",
    ),
    (
        ks.CosineDecayRestarts,
        {"first_decay_steps": 0},
        ValueError,
        r"`first_decay_steps` must be a finite number > 0",
    ),
    (ks.CosineDecayRestarts, {"t_mul": 0.0}, ValueError, r"`t_mul` must be a finite number > 0"),
    (ks.CosineDecayRestarts, {"t_mul": -2.0}, ValueError, r"`t_mul` must be a finite number > 0"),
    (ks.CosineDecayRestarts, {"m_mul": -0.5}, ValueError, r"`m_mul` must be a finite number >= 0"),
    (
        ks.CosineDecayRestarts,
        {"alpha": 2.0},
        ValueError,
        r"`alpha` must be a finite number in \[0, 1\]",
    ),
]

_DEFAULTS = {
    ks.ExponentialDecay: EXPONENTIAL,
    ks.InverseTimeDecay: EXPONENTIAL,
    ks.PiecewiseConstantDecay: PIECEWISE,
    ks.PolynomialDecay: POLYNOMIAL,
    ks.CosineDecay: COSINE,
    ks.CosineDecayRestarts: RESTARTS,
}


@pytest.mark.parametrize(
    ("cls", "change", "error", "match"),
    BAD_ARGUMENTS,
    ids=[
        f"{cls.__name__}-{','.join(change)}-{i}"
        for i, (cls, change, _, _) in enumerate(BAD_ARGUMENTS)
    ],
)
def test_bad_argument_raises_naming_it(cls, change, error, match):
    with pytest.raises(error, match=match):
        cls(**{**_DEFAULTS[cls], **change})


# --- properties ---------------------------------------------------------------------------------

steps = st.integers(min_value=0, max_value=10**7)
rates = st.floats(min_value=1e-6, max_value=10.0)
periods = st.integers(min_value=1, max_value=10_000)
fractions = st.floats(min_value=0.0, max_value=1.0)


@settings(max_examples=60, deadline=None)
@given(
    initial=rates,
    decay_steps=st.one_of(periods, st.floats(min_value=0.5, max_value=1e4)),
    decay_rate=st.floats(min_value=0.0, max_value=1.0),
    staircase=st.booleans(),
    a=steps,
    b=steps,
)
def test_exponential_decay_never_increases_below_rate_one(
    initial, decay_steps, decay_rate, staircase, a, b
):
    schedule = ks.ExponentialDecay(initial, decay_steps, decay_rate, staircase=staircase)
    low, high = sorted((a, b))
    assert 0.0 <= schedule(high) <= schedule(low) <= initial


@settings(max_examples=60, deadline=None)
@given(
    initial=rates,
    decay_steps=periods,
    decay_rate=st.floats(min_value=0.0, max_value=100.0),
    staircase=st.booleans(),
    step=steps,
)
def test_inverse_time_decay_is_initial_over_elapsed_time(
    initial, decay_steps, decay_rate, staircase, step
):
    elapsed = step // decay_steps if staircase else step / decay_steps
    value = ks.InverseTimeDecay(initial, decay_steps, decay_rate, staircase=staircase)(step)
    assert value * (1 + decay_rate * elapsed) == pytest.approx(initial, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    initial=rates,
    decay_steps=periods,
    alpha=fractions,
    warmup=st.one_of(st.none(), st.tuples(rates, st.integers(min_value=0, max_value=1_000))),
    step=steps,
)
def test_cosine_decay_stays_between_alpha_peak_and_peak(initial, decay_steps, alpha, warmup, step):
    target, warmup_steps = warmup if warmup else (None, 0)
    schedule = ks.CosineDecay(
        initial, decay_steps, alpha, warmup_target=target, warmup_steps=warmup_steps
    )
    value = schedule(step)
    if step < warmup_steps:
        assert min(initial, target) * (1 - 1e-12) <= value <= max(initial, target) * (1 + 1e-12)
    else:
        peak = initial if target is None else target
        assert alpha * peak * (1 - 1e-12) <= value <= peak * (1 + 1e-12)
    if step >= warmup_steps + decay_steps:
        assert value == pytest.approx(alpha * peak, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    initial=rates,
    end=rates,
    decay_steps=periods,
    power=st.floats(min_value=0.0, max_value=5.0, exclude_min=True),  # power 0 is constant
    cycle=st.booleans(),
    step=steps,
)
def test_polynomial_decay_stays_between_its_ends(initial, end, decay_steps, power, cycle, step):
    schedule = ks.PolynomialDecay(initial, decay_steps, end, power=power, cycle=cycle)
    value = schedule(step)
    low, high = sorted((initial, end))
    # Keras's `(initial - end) * f + end` is exact only to rounding of the larger end.
    assert low - 1e-12 * high <= value <= high * (1 + 1e-12)
    if step >= decay_steps and (not cycle or step % decay_steps == 0):
        assert value == pytest.approx(end, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    boundaries=st.lists(st.integers(min_value=-5, max_value=10**6), max_size=6, unique=True).map(
        sorted
    ),
    data=st.data(),
    step=st.integers(min_value=0, max_value=10**6 + 5),
)
def test_piecewise_constant_picks_the_interval_holding_the_step(boundaries, data, step):
    values = data.draw(st.lists(rates, min_size=len(boundaries) + 1, max_size=len(boundaries) + 1))
    # Keras's rule, read literally: values[0] up to and including boundaries[0], and so on.
    expected = next(
        (v for b, v in zip(boundaries, values[:-1], strict=True) if step <= b), values[-1]
    )
    assert ks.PiecewiseConstantDecay(boundaries, values)(step) == expected


@settings(max_examples=60, deadline=None)
@given(
    initial=rates,
    first=st.integers(min_value=1, max_value=1_000),
    t_mul=st.sampled_from([1, 2, 3]),
    m_mul=st.floats(min_value=0.0, max_value=1.0),
    alpha=fractions,
    restart=st.integers(min_value=0, max_value=12),
)
def test_restart_steps_start_at_m_mul_power_times_initial(
    initial, first, t_mul, m_mul, alpha, restart
):
    schedule = ks.CosineDecayRestarts(initial, first, t_mul=t_mul, m_mul=m_mul, alpha=alpha)
    start = first * (restart if t_mul == 1 else (t_mul**restart - 1) // (t_mul - 1))
    expected = initial * ((1 - alpha) * m_mul**restart + alpha)
    assert schedule(start) == pytest.approx(expected, rel=1e-9, abs=1e-15 * initial)
    assert alpha * initial * (1 - 1e-12) <= schedule(start + first // 2) <= initial * (1 + 1e-12)


@st.composite
def any_schedule(draw) -> ks.LearningRateSchedule:
    """A schedule of any class, with valid random arguments."""
    cls = draw(st.sampled_from(sorted(ks.ALL_OBJECTS_DICT.values(), key=lambda c: c.__name__)))
    if cls is ks.PiecewiseConstantDecay:
        boundaries = sorted(draw(st.lists(periods, max_size=4, unique=True)))
        values = draw(st.lists(rates, min_size=len(boundaries) + 1, max_size=len(boundaries) + 1))
        return cls(boundaries, values)
    if cls is ks.CosineDecayRestarts:
        return cls(
            draw(rates), draw(periods), draw(st.floats(1.0, 4.0)), draw(fractions), draw(fractions)
        )
    if cls is ks.CosineDecay:
        return cls(
            draw(rates),
            draw(periods),
            draw(fractions),
            warmup_target=draw(rates),
            warmup_steps=draw(periods),
        )
    if cls is ks.PolynomialDecay:
        return cls(
            draw(rates), draw(periods), draw(rates), draw(st.floats(0.0, 4.0)), draw(st.booleans())
        )
    return cls(draw(rates), draw(periods), draw(st.floats(0.0, 1.0)), draw(st.booleans()))


@settings(max_examples=80, deadline=None)
@given(schedule=any_schedule(), at=st.lists(steps, min_size=1, max_size=5))
def test_config_round_trip_gives_equal_values(schedule, at):
    from_config = type(schedule).from_config(schedule.get_config())
    through_json = ks.get(json.loads(json.dumps(ks.serialize(schedule))))
    for rebuilt in (from_config, through_json):
        assert type(rebuilt) is type(schedule)
        assert [rebuilt(step) for step in at] == [schedule(step) for step in at]
