"""What compile builds: the shape-settled ids and the from_logits check."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import kfit


def _fit_once(model_module: nn.Module, x, y, **compile_kwargs) -> kfit.Model:
    torch.manual_seed(0)
    model = kfit.Model(model_module)
    model.compile(optimizer="sgd", device="cpu", **compile_kwargs)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    return model


@pytest.mark.parametrize(
    ("identifier", "labels", "outputs", "expected"),
    [
        ("crossentropy", "binary", 1, kfit.losses.binary_crossentropy),
        ("ce", "sparse", 3, kfit.losses.sparse_categorical_crossentropy),
        ("CE", "onehot", 3, kfit.losses.categorical_crossentropy),
    ],
)
def test_crossentropy_id_is_settled_from_shapes(identifier, labels, outputs, expected):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    classes = rng.integers(0, max(outputs, 2), size=32)
    y = {
        "binary": classes[:, None].astype("float32"),
        "sparse": classes,
        "onehot": np.eye(3, dtype="float32")[classes],
    }[labels]
    head = nn.Sigmoid() if outputs == 1 else nn.Softmax(dim=-1)
    model = _fit_once(nn.Sequential(nn.Linear(4, outputs), head), x, y, loss=identifier)
    assert model.compile_state.loss.terms[0][1].fn.fn is expected


def _logit_model() -> nn.Module:
    layer = nn.Linear(4, 3)
    with torch.no_grad():
        layer.weight.fill_(3.0)  # outputs far outside [0, 1]
    return layer


def test_probabilistic_loss_on_logits_warns_once_naming_the_fix():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = rng.integers(0, 3, size=64)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = _fit_once(_logit_model(), x, y, loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    messages = [str(w.message) for w in record if "from_logits" in str(w.message)]
    assert len(messages) == 1
    assert "SparseCategoricalCrossentropy(from_logits=True)" in messages[0]


def test_probabilities_do_not_warn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = rng.integers(0, 3, size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit_once(
            nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=-1)),
            x,
            y,
            loss="sparse_categorical_crossentropy",
        )


def test_from_logits_loss_class_does_not_warn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = rng.integers(0, 3, size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit_once(
            _logit_model(), x, y, loss=kfit.losses.SparseCategoricalCrossentropy(from_logits=True)
        )


def test_torch_loss_module_is_called_prediction_first():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = rng.integers(0, 3, size=64)
    model = _fit_once(_logit_model(), x, y, loss=nn.CrossEntropyLoss())
    with torch.no_grad():
        expected = nn.CrossEntropyLoss()(model(torch.from_numpy(x)), torch.from_numpy(y))
    assert model.evaluate(x, y, verbose=0, batch_size=64) == pytest.approx(
        float(expected), rel=1e-5
    )


def test_torch_loss_module_with_sample_weight_reduces_like_keras():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    weights = np.where(np.arange(64) < 32, 0.0, 2.0).astype("float32")
    model = _fit_once(nn.Linear(4, 1), x, y, loss=nn.MSELoss())
    per_sample = (model.predict(x, verbose=0) - y)[:, 0] ** 2
    got = model.evaluate(x, y, sample_weight=weights, verbose=0, batch_size=64)
    assert got == pytest.approx(float((weights * per_sample).sum() / 64), rel=1e-5)


def test_torch_mse_module_refuses_silent_broadcasting():
    x = np.zeros((16, 4), dtype="float32")
    y = np.zeros((16, 3), dtype="float32")
    model = kfit.Model(nn.Linear(4, 1))
    model.compile(optimizer="sgd", loss=nn.MSELoss(), device="cpu")
    with pytest.raises(ValueError, match=r"\(16, 3\).*\(16, 1\)"):
        model.fit(x, y, verbose=0)
