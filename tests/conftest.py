"""Shared fixtures: tiny data, models whose outputs are known, and a state-dict snapshot."""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import kfit

# Before anything imports Keras: the compat tests compare against its torch backend.
os.environ.setdefault("KERAS_BACKEND", "torch")


@pytest.fixture
def keras() -> Any:
    """Keras 3 on its torch backend, on the CPU; the test is skipped without it."""
    os.environ.setdefault("KERAS_TORCH_DEVICE", "cpu")
    module = pytest.importorskip("keras")
    if module.backend.backend() != "torch":
        pytest.skip(f"needs KERAS_BACKEND=torch; got {module.backend.backend()!r}")
    return module


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module: tiny models run fastest and steadiest that way
    on a busy two-core machine (two threads spin against each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class ReadCounter:
    """Counts calls of the tensor methods that read device values to the host.

    Reads made by torch.optim itself are left out: PyTorch keeps Adam's step count on the host
    (unless `capturable=True`), so its `.item()` there is no device sync.
    """

    METHODS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__")

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.calls: list[str] = []
        for name in self.METHODS:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counting(name, original))

    def _counting(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(tensor, *args, **kwargs):
            if f"torch{os.sep}optim" not in sys._getframe(1).f_code.co_filename:
                self.calls.append(name)
            return original(tensor, *args, **kwargs)

        return wrapper


@pytest.fixture
def count_host_reads(monkeypatch: pytest.MonkeyPatch) -> Callable[[], ReadCounter]:
    """Call it to start counting host reads; the counter's `calls` lists them."""
    return lambda: ReadCounter(monkeypatch)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def xy() -> tuple[np.ndarray, np.ndarray]:
    """Ten float32 samples of three features and one regression target each."""
    rng = np.random.default_rng(0)
    return rng.random((10, 3), dtype=np.float32), rng.random((10, 1), dtype=np.float32)


class Recorder(nn.Module):
    """A linear layer that records each training input batch (a copy, on the host).

    Only calls in training mode are kept: validation, evaluation and any check `fit` runs in
    eval mode before training are not training steps.
    """

    def __init__(self, in_features: int = 3, out_features: int = 1):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(x.detach().clone())
        return self.linear(x)


@pytest.fixture
def recorder() -> Recorder:
    """A `Recorder` of three features to one output."""
    return Recorder()


@pytest.fixture
def column_recorder() -> Recorder:
    """A `Recorder` of one feature to one output, for inputs that are sample ids."""
    return Recorder(1, 1)


@pytest.fixture
def frozen_model() -> Callable[..., kfit.Model]:
    """Builds a model that always outputs 0 and never changes (zero weights, SGD at lr 0).

    Its loss per sample is `y**2` under `'mse'` and its `'mae'` is `|y|`, so every logged
    value can be worked out by hand.
    """

    def build(
        in_features: int = 3, out_features: int = 1, metrics: Any = ("mae",), **compile_kwargs
    ) -> kfit.Model:
        layer = nn.Linear(in_features, out_features)
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
        model = kfit.Sequential(layer)
        compile_kwargs.setdefault("optimizer", kfit.optimizers.SGD(learning_rate=0.0))
        compile_kwargs.setdefault("loss", "mse")
        model.compile(metrics=list(metrics), **compile_kwargs)
        return model

    return build


@pytest.fixture
def compiled_model() -> kfit.Model:
    """A trainable linear model, three features to one output, compiled with SGD and mse."""
    model = kfit.Sequential(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return model


@pytest.fixture
def take_snapshot() -> Callable[[nn.Module], dict[str, torch.Tensor]]:
    """Returns a function giving a deep copy of a model's `state_dict()`."""
    return lambda model: copy.deepcopy(model.state_dict())


@pytest.fixture
def assert_unchanged() -> Callable[[nn.Module, dict[str, torch.Tensor]], None]:
    """Returns a function asserting that a model's state dict equals an earlier snapshot."""

    def check(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
        after = model.state_dict()
        assert after.keys() == before.keys()
        for name, value in before.items():
            assert torch.equal(after[name], value), f"{name} changed"

    return check
