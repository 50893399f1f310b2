"""kfit against Keras 3: the same weights, data and compile settings give the same History.

Each case builds a small MLP in Keras 3 (torch backend, CPU), copies its initial weights into
the equivalent `torch.nn.Sequential`, trains both with `shuffle=False` (Keras draws its
permutations from its own RNG, kfit from torch's) and compares `history.history` epoch by
epoch, then `evaluate` and `predict` on the trained models.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import kfit

# Before Keras is imported: its backend and device are fixed at import time.
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("KERAS_TORCH_DEVICE", "cpu")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip(
        f"Keras compat tests need KERAS_BACKEND=torch; got {keras.backend.backend()!r}.",
        allow_module_level=True,
    )

pytestmark = [
    pytest.mark.keras_compat,
    # Keras's torch backend converts tensors with np.array(x), which NumPy 2 warns about.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:keras"),
]

NUM_FEATURES = 8
HIDDEN = 16
SEED = 0


@dataclass(frozen=True)
class Task:
    """A data set and the output layer that fits it."""

    units: int
    activation: str | None
    make_y: Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _regression_y(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rule = rng.normal(size=(NUM_FEATURES, 1)).astype(np.float32)
    return (np.tanh(x @ rule) + 0.1 * rng.normal(size=(len(x), 1))).astype(np.float32)


def _binary_y(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rule = rng.normal(size=(NUM_FEATURES, 1))
    flips = rng.random((len(x), 1)) < 0.1  # noisy labels, so accuracy is not trivially 1
    return ((x @ rule > 0) ^ flips).astype(np.float32)


def _class_ids(x: np.ndarray, rng: np.random.Generator, num_classes: int) -> np.ndarray:
    rule = rng.normal(size=(NUM_FEATURES, num_classes))
    return (x @ rule).argmax(axis=1).astype(np.int64)


TASKS = {
    "regression": Task(1, None, _regression_y),
    "binary": Task(1, "sigmoid", _binary_y),
    # Integer labels of shape (N,): 'accuracy' must become sparse categorical accuracy.
    "sparse": Task(4, "softmax", lambda x, rng: _class_ids(x, rng, 4)),
    # One-hot labels over 6 classes, so top-5 accuracy (Keras's default k) is not always 1.
    "categorical": Task(
        6, "softmax", lambda x, rng: np.eye(6, dtype=np.float32)[_class_ids(x, rng, 6)]
    ),
}

# Both libraries run the same float32 arithmetic in a different order (Keras's ops against
# kfit's), so SGD runs agree to about 1e-7 relative after a few epochs; 1e-4 leaves room for
# other CPUs without hiding a wrong formula. Accuracy values are multiples of 1/N, so this is
# exact for them: one flipped prediction would be off by 1/N.
SGD_TOLERANCE = {"rtol": 1e-4, "atol": 1e-6}
# kfit runs RMSprop and Adam on torch.optim, which adds epsilon outside the square root
# (RMSprop) or to the bias-corrected root (Adam), where Keras puts it inside the root (RMSprop)
# or uses "epsilon hat" (Adam); kfit/optimizers/ documents this. With Keras's epsilon 1e-7
# inside the root, RMSprop's updates differ noticeably wherever a gradient is below ~1e-3, and
# the difference compounds: History agrees to ~1e-4 relative and outputs to ~1e-3.
ADAPTIVE_TOLERANCE = {"rtol": 1e-3, "atol": 1e-4}


@dataclass(frozen=True)
class Case:
    """One row of the compat table: compile and fit settings, and how close the runs must be.

    `optimizer` and `metrics` are either plain ids, or functions of the library module
    (`keras` or `kfit`) so that each run gets its own, fresh objects.
    """

    id: str
    task: str
    optimizer: Any
    loss: str
    metrics: Any
    names: tuple[str, ...]  # the metric log names, in compile order
    weighted_metrics: Any = None
    num_samples: int = 96
    batch_size: int = 32
    epochs: int = 3
    initial_epoch: int = 0
    validation_split: float = 0.0
    half_zero_sample_weight: bool = False
    tolerance: dict[str, float] = field(default_factory=lambda: dict(SGD_TOLERANCE))
    predict_atol: float = 1e-5


def _momentum_sgd(lib: Any) -> Any:
    return lib.optimizers.SGD(learning_rate=0.05, momentum=0.9)


def _top_2(lib: Any) -> list[Any]:
    return ["accuracy", lib.metrics.TopKCategoricalAccuracy(k=2)]


CASES = [
    Case("sgd_mse", "regression", "sgd", "mse", ["mae", "mse"], ("mae", "mse")),
    Case(
        "sgd_momentum",
        "regression",
        _momentum_sgd,
        "mse",
        ["mae"],
        ("mae",),
        epochs=4,
        initial_epoch=1,
    ),
    Case(
        "binary_crossentropy",
        "binary",
        "sgd",
        "binary_crossentropy",
        ["accuracy"],
        ("accuracy",),
        validation_split=0.25,
    ),
    Case(
        "sparse_categorical_crossentropy",
        "sparse",
        "sgd",
        "sparse_categorical_crossentropy",
        ["accuracy"],
        ("accuracy",),
        validation_split=0.25,
    ),
    Case(
        "categorical_top_5",
        "categorical",
        "sgd",
        "categorical_crossentropy",
        ["accuracy", "top_k_categorical_accuracy"],
        ("accuracy", "top_k_categorical_accuracy"),
        validation_split=0.25,
    ),
    Case(
        "categorical_top_2_object",
        "categorical",
        "sgd",
        "categorical_crossentropy",
        _top_2,
        ("accuracy", "top_k_categorical_accuracy"),
        validation_split=0.25,
    ),
    Case(
        "validation_split",
        "regression",
        "sgd",
        "mse",
        ["mae"],
        ("mae",),
        num_samples=128,
        validation_split=0.25,
    ),
    Case(
        "partial_last_batch",
        "regression",
        "sgd",
        "mse",
        ["mae"],
        ("mae",),
        num_samples=100,
        batch_size=32,
    ),
    Case(
        "sample_weight",
        "regression",
        "sgd",
        "mse",
        ["mae"],
        ("mae", "mse"),
        weighted_metrics=["mse"],
        num_samples=100,
        half_zero_sample_weight=True,
    ),
    Case(
        "rmsprop",
        "regression",
        "rmsprop",
        "mse",
        ["mae"],
        ("mae",),
        validation_split=0.25,
        tolerance=dict(ADAPTIVE_TOLERANCE),
        predict_atol=5e-3,
    ),
    Case(
        "adam",
        "binary",
        "adam",
        "binary_crossentropy",
        ["accuracy"],
        ("accuracy",),
        tolerance=dict(ADAPTIVE_TOLERANCE),
        predict_atol=5e-3,
    ),
]


@dataclass
class Run:
    """Both trained models, their Histories and the data they saw."""

    case: Case
    x: np.ndarray
    y: np.ndarray
    keras_model: Any
    kfit_model: kfit.Model
    keras_history: Any
    kfit_history: kfit.History


def _data(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(case.num_samples, NUM_FEATURES)).astype(np.float32)
    y = TASKS[case.task].make_y(x, rng)
    sample_weight = None
    if case.half_zero_sample_weight:
        sample_weight = rng.uniform(0.5, 2.0, case.num_samples).astype(np.float32)
        sample_weight[1::2] = 0.0
    return x, y, sample_weight


def _initial_weights(units: int) -> list[np.ndarray]:
    """Keras-layout weights: kernels are (in, out)."""
    rng = np.random.default_rng(SEED + 1)
    shapes = [(NUM_FEATURES, HIDDEN), (HIDDEN,), (HIDDEN, units), (units,)]
    return [(0.4 * rng.normal(size=shape)).astype(np.float32) for shape in shapes]


def _keras_model(task: Task, weights: list[np.ndarray]) -> Any:
    model = keras.Sequential(
        [
            keras.Input((NUM_FEATURES,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(task.units, activation=task.activation),
        ]
    )
    model.set_weights(weights)
    return model


def _kfit_model(task: Task, weights: list[np.ndarray]) -> kfit.Model:
    layers: list[nn.Module] = [
        nn.Linear(NUM_FEATURES, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, task.units),
    ]
    if task.activation == "sigmoid":
        layers.append(nn.Sigmoid())
    elif task.activation == "softmax":
        layers.append(nn.Softmax(dim=-1))
    kernel_1, bias_1, kernel_2, bias_2 = (torch.from_numpy(w) for w in weights)
    with torch.no_grad():
        # Keras's Dense kernel is (in, out); torch's Linear weight is (out, in).
        layers[0].weight.copy_(kernel_1.T)
        layers[0].bias.copy_(bias_1)
        layers[2].weight.copy_(kernel_2.T)
        layers[2].bias.copy_(bias_2)
    return kfit.Sequential(layers)


def _resolve(spec: Any, lib: Any) -> Any:
    return spec(lib) if callable(spec) else spec


def _train(case: Case) -> Run:
    task = TASKS[case.task]
    x, y, sample_weight = _data(case)
    weights = _initial_weights(task.units)
    fit_kwargs = {
        "batch_size": case.batch_size,
        "epochs": case.epochs,
        "initial_epoch": case.initial_epoch,
        "validation_split": case.validation_split,
        "sample_weight": sample_weight,
        "shuffle": False,
        "verbose": 0,
    }

    keras_model = _keras_model(task, weights)
    keras_model.compile(
        optimizer=_resolve(case.optimizer, keras),
        loss=case.loss,
        metrics=_resolve(case.metrics, keras),
        weighted_metrics=case.weighted_metrics,
    )
    keras_history = keras_model.fit(x, y, **fit_kwargs)

    kfit_model = _kfit_model(task, weights)
    kfit_model.compile(
        optimizer=_resolve(case.optimizer, kfit),
        loss=case.loss,
        metrics=_resolve(case.metrics, kfit),
        weighted_metrics=case.weighted_metrics,
        device="cpu",
    )
    kfit_history = kfit_model.fit(x, y, **fit_kwargs)
    return Run(case, x, y, keras_model, kfit_model, keras_history, kfit_history)


@pytest.fixture(scope="module", params=CASES, ids=[case.id for case in CASES])
def run(request: pytest.FixtureRequest) -> Run:
    """Trains one case in both libraries, once for all the tests that look at it."""
    return _train(request.param)


def _expected_keys(case: Case) -> list[str]:
    keys = ["loss", *case.names]
    if case.validation_split:
        keys += [f"val_{key}" for key in keys]
    return keys


def test_history_keys_match_keras(run: Run) -> None:
    # Keras sorts its log keys; kfit keeps compile order, so compare them as sets.
    assert set(run.kfit_history.history) == set(run.keras_history.history)


def test_history_keys_in_compile_order(run: Run) -> None:
    assert list(run.kfit_history.history) == _expected_keys(run.case)


def test_history_values_match_keras_epoch_by_epoch(run: Run) -> None:
    for key, keras_values in run.keras_history.history.items():
        np.testing.assert_allclose(
            run.kfit_history.history[key], keras_values, err_msg=key, **run.case.tolerance
        )


def test_history_epoch_lists_the_epochs_that_ran(run: Run) -> None:
    expected = list(range(run.case.initial_epoch, run.case.epochs))
    assert run.kfit_history.epoch == expected
    assert run.keras_history.epoch == expected


def test_history_params_match_keras(run: Run) -> None:
    case = run.case
    num_train = math.floor(case.num_samples * (1.0 - case.validation_split))
    expected = {
        "verbose": 0,
        "epochs": case.epochs,
        "steps": math.ceil(num_train / case.batch_size),
    }
    assert run.kfit_history.params == expected
    assert run.keras_history.params == expected


def test_evaluate_list_matches_keras(run: Run) -> None:
    kfit_values = run.kfit_model.evaluate(run.x, run.y, verbose=0)
    keras_values = run.keras_model.evaluate(run.x, run.y, verbose=0)
    # Both are [loss, *metrics] in compile order for a single-output model.
    assert len(kfit_values) == len(keras_values) == 1 + len(run.case.names)
    np.testing.assert_allclose(kfit_values, keras_values, **run.case.tolerance)


def test_evaluate_dict_matches_keras(run: Run) -> None:
    kfit_logs = run.kfit_model.evaluate(run.x, run.y, verbose=0, return_dict=True)
    keras_logs = run.keras_model.evaluate(run.x, run.y, verbose=0, return_dict=True)
    assert list(kfit_logs) == ["loss", *run.case.names]
    assert set(kfit_logs) == set(keras_logs)
    for key, keras_value in keras_logs.items():
        np.testing.assert_allclose(kfit_logs[key], keras_value, err_msg=key, **run.case.tolerance)


def test_predict_matches_keras(run: Run) -> None:
    kfit_outputs = run.kfit_model.predict(run.x, verbose=0)
    keras_outputs = run.keras_model.predict(run.x, verbose=0)
    assert kfit_outputs.shape == keras_outputs.shape
    np.testing.assert_allclose(kfit_outputs, keras_outputs, rtol=0, atol=run.case.predict_atol)


def test_weighted_metric_name_clash_matches_keras() -> None:
    # A weighted metric named like an unweighted one is logged as `weighted_<name>`. (Keras's
    # evaluate() list repeats 'mse' here, a quirk of _flatten_metrics_in_order, so only the
    # History is compared.)
    case = Case(
        "weighted_name_clash",
        "regression",
        "sgd",
        "mse",
        ["mse"],
        ("mse", "weighted_mse"),
        weighted_metrics=["mse"],
        num_samples=64,
        half_zero_sample_weight=True,
    )
    run = _train(case)
    assert list(run.kfit_history.history) == ["loss", "mse", "weighted_mse"]
    assert set(run.kfit_history.history) == set(run.keras_history.history)
    for key, keras_values in run.keras_history.history.items():
        np.testing.assert_allclose(
            run.kfit_history.history[key], keras_values, err_msg=key, **case.tolerance
        )


def test_history_params_keep_verbose_as_passed() -> None:
    # Keras records `verbose` as the caller passed it ('auto'), not as resolved (1).
    task = TASKS["regression"]
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(40, NUM_FEATURES)).astype(np.float32)
    y = task.make_y(x, rng)
    weights = _initial_weights(task.units)
    keras_model = _keras_model(task, weights)
    keras_model.compile(optimizer="sgd", loss="mse")
    kfit_model = _kfit_model(task, weights)
    kfit_model.compile(optimizer="sgd", loss="mse", device="cpu")
    keras_params = keras_model.fit(x, y, epochs=1, verbose="auto", shuffle=False).params
    kfit_params = kfit_model.fit(x, y, epochs=1, verbose="auto", shuffle=False).params
    assert keras_params == {"verbose": "auto", "epochs": 1, "steps": 2}
    assert kfit_params == keras_params


def test_class_weight_matches_keras_and_leaves_validation_unweighted():
    task = TASKS["sparse"]
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(120, NUM_FEATURES)).astype(np.float32)
    y = task.make_y(x, rng)
    weights = _initial_weights(task.units)
    class_weight = {0: 1.0, 1: 3.0, 2: 0.5, 3: 2.0}
    settings = {
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
        "weighted_metrics": ["accuracy"],
    }
    fit_kwargs = {
        "batch_size": 16,
        "epochs": 3,
        "validation_split": 0.25,
        "class_weight": class_weight,
        "shuffle": False,
        "verbose": 0,
    }
    keras_model = _keras_model(task, weights)
    keras_model.compile(optimizer=keras.optimizers.SGD(0.1), **settings)
    expected = keras_model.fit(x, y, **fit_kwargs).history
    model = _kfit_model(task, weights)
    model.compile(optimizer=kfit.optimizers.SGD(0.1), device="cpu", **settings)
    got = model.fit(x, y, **fit_kwargs).history

    assert sorted(got) == sorted(expected)
    for key, values in expected.items():
        np.testing.assert_allclose(got[key], values, **SGD_TOLERANCE, err_msg=key)
    # class weights change the training values but never the validation ones
    assert got["weighted_accuracy"] != got["accuracy"]
    assert got["val_weighted_accuracy"] == got["val_accuracy"]
