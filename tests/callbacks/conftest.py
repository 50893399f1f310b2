"""Fixtures to drive a kfit callback and its Keras 3 original through the same epochs.

`drive` calls `on_train_begin`, then `on_epoch_begin`/`on_epoch_end` with a scripted logs
dict per epoch until the model's `stop_training` is set, then `on_train_end`, as `fit` does.
A `Side` builds a tiny model of one framework (a Dense/Linear layer of 3 inputs to 1 output,
compiled with SGD) and reads or writes its learning rate and weights, so the same test body
runs against kfit and against Keras.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import kfit

# Before Keras is imported: its backend and device are fixed at import time.
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("KERAS_TORCH_DEVICE", "cpu")

SMALL_X = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(4, 3)
SMALL_Y = np.array([[0.0], [1.0], [1.0], [0.0]], dtype=np.float32)


def _drive(
    callback: Any,
    model: Any,
    sequence: Sequence[dict[str, Any]],
    label: Callable[[Any, float], None] | None = None,
) -> list[dict[str, Any]]:
    """Runs `callback` through the epochs of `sequence`; returns the logs as it left them.

    Args:
        callback: a kfit or Keras callback.
        model: the model it is attached to (of the same framework).
        sequence: one logs dict per epoch (copied before each `on_epoch_end`).
        label: called as `label(model, epoch)` at the start of each epoch, e.g. to fill the
            weights with the epoch number so a restore can be traced to its epoch.
    """
    callback.set_model(model)
    callback.set_params({"verbose": 0, "epochs": len(sequence), "steps": 1})
    model.stop_training = False
    callback.on_train_begin({})
    seen: list[dict[str, Any]] = []
    for epoch, values in enumerate(sequence):
        if label is not None:
            label(model, epoch)
        callback.on_epoch_begin(epoch, {})
        logs = dict(values)
        callback.on_epoch_end(epoch, logs)
        seen.append(logs)
        if model.stop_training:
            break
    callback.on_train_end(seen[-1] if seen else {})
    return seen


class Side:
    """One framework's tiny model and the accessors a test needs."""

    name: str
    callbacks: Any

    def model(self, learning_rate: float = 0.5, metrics: Sequence[str] = ()) -> Any:
        raise NotImplementedError

    def build_metrics(self, model: Any) -> None:
        """Runs one evaluation, so that compiled metrics (and their directions) exist."""
        model.evaluate(SMALL_X, SMALL_Y, verbose=0)

    def label(self, model: Any, value: float) -> None:
        raise NotImplementedError

    def label_of(self, model: Any) -> float:
        raise NotImplementedError

    def learning_rate(self, model: Any) -> float:
        raise NotImplementedError


class KfitSide(Side):
    name = "kfit"
    callbacks = kfit.callbacks

    def model(self, learning_rate: float = 0.5, metrics: Sequence[str] = ()) -> kfit.Model:
        model = kfit.Sequential(nn.Linear(3, 1))
        model.compile(
            optimizer=kfit.optimizers.SGD(learning_rate=learning_rate),
            loss="mse",
            metrics=list(metrics),
            device="cpu",
        )
        return model

    def label(self, model: kfit.Model, value: float) -> None:
        with torch.no_grad():
            for tensor in model.state_dict().values():
                tensor.fill_(value)

    def label_of(self, model: kfit.Model) -> float:
        return next(iter(model.state_dict().values())).reshape(-1)[0].item()

    def learning_rate(self, model: kfit.Model) -> float:
        return kfit.optimizers.get_learning_rate(model.optimizer)


class KerasSide(Side):
    name = "keras"

    def __init__(self, keras: Any):
        self.keras = keras
        self.callbacks = keras.callbacks

    def model(self, learning_rate: float = 0.5, metrics: Sequence[str] = ()) -> Any:
        keras = self.keras
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
            loss="mse",
            metrics=list(metrics),
        )
        return model

    def label(self, model: Any, value: float) -> None:
        model.set_weights([np.full(w.shape, value, dtype=w.dtype) for w in model.get_weights()])

    def label_of(self, model: Any) -> float:
        return float(model.get_weights()[0].reshape(-1)[0])

    def learning_rate(self, model: Any) -> float:
        return float(self.keras.ops.convert_to_numpy(model.optimizer.learning_rate))


@pytest.fixture(scope="session")
def keras() -> Any:
    """Keras 3 on its torch backend (the test is skipped without it)."""
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"Keras compat tests need KERAS_BACKEND=torch; got {keras.backend.backend()}")
    return keras


@pytest.fixture
def drive() -> Callable[..., list[dict[str, Any]]]:
    """The function that runs a callback through scripted epochs (see the module docstring)."""
    return _drive


@pytest.fixture
def kfit_side() -> KfitSide:
    return KfitSide()


@pytest.fixture
def keras_side(keras: Any) -> KerasSide:
    return KerasSide(keras)
