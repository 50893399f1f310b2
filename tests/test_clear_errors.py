"""Clear errors: unreduced and broken losses, forwards returning None, file paths given as data,
and a full disk while saving. Each fails with a message naming the problem, before any weight
moves (or, for a save, with the previous file intact)."""

from __future__ import annotations

import errno
import os
import pathlib
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import kfit
from kfit.callbacks import Callback, CSVLogger, ModelCheckpoint

pytestmark = pytest.mark.usefixtures("one_thread")

N = 12


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs (N, 3), targets (N, 2) and sample weights (N,)."""
    rng = np.random.default_rng(0)
    return (
        rng.normal(size=(N, 3)).astype(np.float32),
        rng.normal(size=(N, 2)).astype(np.float32),
        rng.uniform(0.1, 2.0, size=N).astype(np.float32),
    )


def _model(loss: Any, module: nn.Module | None = None) -> kfit.Model:
    torch.manual_seed(0)
    model = kfit.Sequential(module if module is not None else nn.Linear(3, 2))
    model.compile(optimizer="sgd", loss=loss, device="cpu")
    return model


def _squared_error(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    return (y_true - y_pred) ** 2  # per element, not reduced


# --------------------------------------------------------------------------- unreduced losses


@pytest.mark.parametrize(
    "loss",
    [nn.MSELoss(reduction="none"), _squared_error],
    ids=["torch-module", "function"],
)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_unreduced_loss_is_reduced_per_sample_as_keras(keras, data, loss, weighted):
    x, y, weights = data
    sample_weight = weights if weighted else None
    model = _model(loss)
    with torch.no_grad():
        y_pred = model.module(torch.from_numpy(x)).numpy()

    value = model.evaluate(x, y, sample_weight=sample_weight, batch_size=N, verbose=0)

    # Keras's mse: each sample's mean over its last axis, then sum(w * l) / N.
    expected = keras.losses.MeanSquaredError()(y, y_pred, sample_weight=sample_weight)
    assert value == pytest.approx(float(expected), rel=1e-5)
    per_sample = ((y - y_pred) ** 2).mean(axis=1)  # the rule, by hand
    w = weights if weighted else np.ones(N, np.float32)
    assert value == pytest.approx(float((w * per_sample).sum() / N), rel=1e-5)


def test_unreduced_cross_entropy_with_sample_weights_matches_keras(keras, data):
    x, _, weights = data
    labels = np.arange(N) % 2
    model = _model(nn.CrossEntropyLoss(reduction="none"))
    with torch.no_grad():
        logits = model.module(torch.from_numpy(x)).numpy()

    value = model.evaluate(x, labels, sample_weight=weights, batch_size=N, verbose=0)

    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        labels, logits, sample_weight=weights
    )
    assert value == pytest.approx(float(expected), rel=1e-5)


def test_fit_with_an_unreduced_torch_loss_trains_as_with_its_mean(data):
    x, y, _ = data
    expected = _model(nn.MSELoss()).fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    unreduced = _model(nn.MSELoss(reduction="none"))
    history = unreduced.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)

    np.testing.assert_allclose(history.history["loss"], expected.history["loss"], rtol=1e-6)


class _PerFeatureLoss(nn.Module):
    """A loss that averages over the batch and keeps the features: no per-sample values."""

    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return ((y_pred - y_true) ** 2).mean(0)


class _ScalarLoss(nn.Module):
    """A loss module with no `reduction` option, returning a scalar."""

    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return ((y_pred - y_true) ** 2).mean()


def test_loss_without_a_batch_axis_is_refused_before_any_step(
    data, take_snapshot, assert_unchanged
):
    x, y, _ = data
    model = _model(_PerFeatureLoss())
    before = take_snapshot(model)

    with pytest.raises(ValueError, match=r"shape \(2,\).*first axis must be the batch \(4 "):
        model.fit(x, y, batch_size=4, verbose=0)

    assert_unchanged(model, before)


def test_scalar_loss_refuses_sample_weights_it_cannot_apply(data, take_snapshot, assert_unchanged):
    x, y, weights = data
    model = _model(_ScalarLoss())
    before = take_snapshot(model)

    with pytest.raises(ValueError, match=r"returned a scalar, so `sample_weight` cannot"):
        model.fit(x, y, sample_weight=weights, verbose=0)

    assert_unchanged(model, before)
    model.fit(x, y, verbose=0)  # without weights it trains


# --------------------------------------------------------------------------- broken losses


class _NoneLoss(kfit.losses.Loss):
    def call(self, y_true, y_pred):
        return None


class _NoneModule(nn.Module):
    def forward(self, y_pred, y_true):
        return None


@pytest.mark.parametrize(
    ("loss", "returned"),
    [
        (lambda y_true, y_pred: None, "None"),
        (lambda y_true, y_pred: 1.0, r"a float \(1.0\)"),
        (lambda y_true, y_pred: np.zeros(3), "a ndarray"),
        (_NoneLoss(name="none_loss"), "None"),
        (_NoneModule(), "None"),
    ],
    ids=["function-none", "function-float", "function-numpy", "loss-class", "torch-module"],
)
def test_loss_that_returns_no_tensor_is_named(
    data, take_snapshot, assert_unchanged, loss, returned
):
    x, y, _ = data
    model = _model(loss)
    before = take_snapshot(model)

    with pytest.raises(
        TypeError, match=rf"The loss '.*' returned {returned}.*must return a tensor"
    ):
        model.fit(x, y, verbose=0)

    assert_unchanged(model, before)


# --------------------------------------------------------------------------- forward -> None


class _ReturnsNone(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x):
        self.linear(x)  # the `return` is missing


class _ReturnsPair(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x):
        return self.linear(x), None


@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_forward_returning_none_is_named_in_fit_and_evaluate(
    data, take_snapshot, assert_unchanged, method
):
    x, y, _ = data
    model = _model("mse", _ReturnsNone())
    before = take_snapshot(model)

    with pytest.raises(ValueError, match=r"returned None \(does `forward` end with a `return`"):
        getattr(model, method)(x, y, verbose=0)

    assert_unchanged(model, before)


@pytest.mark.parametrize("method", ["predict", "predict_on_batch"])
def test_forward_returning_none_is_named_in_predict(data, method):
    x, _, _ = data
    model = _model("mse", _ReturnsNone())
    with pytest.raises(TypeError, match=r"`predict` needs tensors, but the model returned None"):
        getattr(model, method)(x)


def test_predict_names_the_output_that_is_none(data):
    x, _, _ = data
    seen = []

    class Counting(Callback):
        def on_predict_batch_end(self, batch, logs=None):
            seen.append(batch)

    model = _model("mse", _ReturnsPair())
    with pytest.raises(TypeError, match=r"the model's output\[1\] returned None"):
        model.predict(x, batch_size=2, callbacks=[Counting()], verbose=0)
    assert seen == []  # refused at the first batch, before the others ran


# --------------------------------------------------------------------------- paths as data


@pytest.mark.parametrize("path", ["data.csv", pathlib.Path("data.csv")], ids=["str", "Path"])
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict", "lr_find"])
def test_a_file_path_given_as_x_is_refused_with_a_hint(path, method):
    model = _model("mse")
    with pytest.raises(
        TypeError, match=r"`x` is a \w+ \('data.csv'\), taken for a file path"
    ) as info:
        getattr(model, method)(path, verbose=0)
    assert "pandas.read_csv" in str(info.value)
    assert "DataLoader" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"y": "labels.csv"}, "y"),
        ({"sample_weight": "weights.csv"}, "sample_weight"),
        ({"validation_data": "val.csv"}, "validation_data"),
        ({"validation_data": ("val_x.csv", "val_y.csv")}, "validation_data"),
    ],
)
def test_a_file_path_given_for_other_data_is_refused(
    data, take_snapshot, assert_unchanged, kwargs, name
):
    x, y, _ = data
    kwargs = {"y": y, **kwargs}
    model = _model("mse")
    before = take_snapshot(model)

    with pytest.raises(TypeError, match=rf"`{name}` is a str .*taken for a file path"):
        model.fit(x, verbose=0, **kwargs)

    assert_unchanged(model, before)


def test_a_list_of_strings_is_not_taken_for_a_path():
    with pytest.raises(TypeError, match=r"`x\[0\]` must hold numbers"):
        _model("mse").predict(["some text", "more text"], verbose=0)


# --------------------------------------------------------------------------- a full disk


class _FullDisk:
    """A file whose writes fail with ENOSPC once `capacity` bytes are written."""

    def __init__(self, file, capacity: int):
        self._file, self._capacity, self._written = file, capacity, 0

    def write(self, data) -> int:
        self._written += len(data)
        if self._written > self._capacity:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._file.write(data)

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._file.close()


@pytest.fixture
def full_disk(monkeypatch):
    """After `full_disk()`, every file kfit writes atomically runs out of space at 100 bytes."""
    real = os.fdopen

    def fill() -> None:
        monkeypatch.setattr(os, "fdopen", lambda *a, **k: _FullDisk(real(*a, **k), 100))

    return fill


def _big_model() -> kfit.Model:
    return _model("mse", nn.Sequential(nn.Linear(3, 64), nn.Linear(64, 2)))


@pytest.mark.parametrize(
    ("method", "name"),
    [("save", "model.pt"), ("save_weights", "w.pt"), ("save_weights", "w.safetensors")],
)
def test_a_full_disk_raises_oserror_naming_the_file_and_keeps_the_previous_one(
    tmp_path, full_disk, method, name
):
    pytest.importorskip("safetensors") if name.endswith(".safetensors") else None
    model = _big_model()
    path = tmp_path / name
    getattr(model, method)(path)
    previous = path.read_bytes()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    full_disk()

    with pytest.raises(OSError, match="No space left on device") as info:
        getattr(model, method)(path)

    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(path)
    assert path.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left


def test_a_full_disk_during_a_checkpoint_names_the_checkpoint(tmp_path, data, full_disk):
    x, y, _ = data
    full_disk()
    checkpoint = ModelCheckpoint(tmp_path / "ck.pt")

    with pytest.raises(OSError, match="No space left on device") as info:
        _big_model().fit(x, y, epochs=1, verbose=0, callbacks=[checkpoint])

    assert info.value.filename == str(tmp_path / "ck.pt")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_written_names_the_file(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / ".x.tmp"))

    monkeypatch.setattr(kfit.saving.tempfile, "mkstemp", refuse)
    with pytest.raises(OSError, match="Permission denied") as info:
        _model("mse").save_weights(tmp_path / "w.pt")
    assert info.value.filename == str(tmp_path / "w.pt")


def test_a_full_disk_while_logging_names_the_csv_file(tmp_path, data):
    x, y, _ = data
    logger = CSVLogger(tmp_path / "log.csv")

    class FillDisk(Callback):
        def on_train_begin(self, logs=None):
            logger.csv_file = _FullDisk(logger.csv_file, 0)

    with pytest.raises(OSError, match="No space left on device") as info:
        _model("mse").fit(x, y, epochs=1, verbose=0, callbacks=[logger, FillDisk()])

    assert info.value.filename == str(tmp_path / "log.csv")


# --------------------------------------------------------------------------- cleanup on errors


class _FailsAtTrainBegin(Callback):
    def on_train_begin(self, logs=None):
        raise RuntimeError("boom")


class _FailsAtEpochEnd(Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("boom")


@pytest.mark.parametrize("failing", [_FailsAtTrainBegin, _FailsAtEpochEnd])
def test_csv_logger_file_is_closed_when_fit_raises(tmp_path, data, failing):
    x, y, _ = data
    logger = CSVLogger(tmp_path / "log.csv")
    with pytest.raises(RuntimeError, match="boom"):
        _model("mse").fit(x, y, epochs=2, verbose=0, callbacks=[logger, failing()])
    assert logger.csv_file.closed


def test_csv_logger_opens_nothing_when_the_first_batch_fails(tmp_path, data):
    x, y, _ = data
    logger = CSVLogger(tmp_path / "log.csv")
    with pytest.raises(TypeError, match="returned None"):
        _model(lambda t, p: None).fit(x, y, verbose=0, callbacks=[logger])
    assert logger.csv_file is None


# --------------------------------------------------------------------------- torch errors


def test_a_loss_without_gradient_is_named_before_any_step(data, take_snapshot, assert_unchanged):
    x, y, _ = data
    model = _model(lambda t, p: torch.as_tensor(np.square(t.numpy() - p.detach().numpy()).mean()))
    before = take_snapshot(model)

    with pytest.raises(ValueError, match="The loss has no gradient"):
        model.fit(x, y, verbose=0)

    assert_unchanged(model, before)


def test_a_torch_error_on_the_first_batch_notes_what_the_batch_held(data):
    x, y, _ = data
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied") as info:
        _model("mse").fit(np.zeros((N, 5), np.float32), y, batch_size=4, verbose=0)
    assert "kfit: raised by the first batch, x: float32 (4, 5); y: float32 (4, 2)." in (
        info.value.__notes__
    )


def test_integer_inputs_that_fail_get_a_hint_to_cast_them(data):
    _, y, _ = data
    with pytest.raises(RuntimeError) as info:
        _model("mse").fit(np.arange(3 * N).reshape(N, 3), y, verbose=0)
    assert "cast it to float32" in info.value.__notes__[-1]
