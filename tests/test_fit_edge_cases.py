"""Edge cases of fit / evaluate / predict found in review, one behaviour per test."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import kfit
from kfit.data import IterableData, class_weight_to_sample_weight


def _data(n: int = 40, features: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    return x, x.sum(1, keepdims=True)


def _model(outputs: int = 1, **compile_kwargs) -> kfit.Model:
    torch.manual_seed(0)
    model = kfit.Model(nn.Linear(3, outputs))
    compile_kwargs.setdefault("loss", "mse")
    model.compile(optimizer="sgd", device="cpu", **compile_kwargs)
    return model


def _weights(model: kfit.Model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_failing_evaluate_restores_training_mode():
    model = _model()
    x, _ = _data()
    model.train()
    with pytest.raises(ValueError, match="shape"):
        model.evaluate(x, np.zeros((40, 3), "float32"), verbose=0)
    assert model.training


def test_failing_predict_restores_training_mode():
    class Broken(kfit.Model):
        def forward(self, x):
            raise RuntimeError("boom")

    model = Broken()
    model.train()
    with pytest.raises(RuntimeError, match="boom"):
        model.predict(np.zeros((4, 3), "float32"), verbose=0)
    assert model.training


def test_class_weight_does_not_weight_the_validation_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = kfit.Model(nn.Sequential(nn.Linear(3, 1), nn.Sigmoid()))
    model.compile("sgd", "binary_crossentropy", device="cpu")
    history = model.fit(
        x, y, epochs=1, validation_split=0.5, class_weight={0: 1.0, 1: 100.0}, verbose=0
    )
    unweighted = model.evaluate(x[30:], y[30:], verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(unweighted, rel=1e-5)


def test_class_weight_handles_negative_labels():
    labels = torch.tensor([-1.0, 1.0, -1.0, 1.0])
    weights = class_weight_to_sample_weight(labels, {-1: 2.0, 1: 5.0})
    assert weights.tolist() == [2.0, 5.0, 2.0, 5.0]


def test_a_failed_first_batch_settles_nothing():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3)).astype("float32")
    model = kfit.Model(nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=-1)))
    model.compile("sgd", "crossentropy", metrics=["accuracy"], device="cpu")
    with pytest.raises(ValueError, match="shape"):
        model.fit(x, np.eye(5, dtype="float32")[rng.integers(0, 5, 20)], verbose=0)
    history = model.fit(x, rng.integers(0, 4, 20), epochs=1, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}


def test_misshapen_validation_data_fails_before_any_weight_changes():
    model = _model()
    x, y = _data()
    before = _weights(model)
    with pytest.raises(ValueError, match="shape"):
        model.fit(x, y, validation_data=(x, np.zeros((40, 2), "float32")), verbose=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.history is None or not model.history.history


def test_used_up_validation_generator_is_an_error_not_nan():
    model = _model()
    x, y = _data()
    batches = ((x[i : i + 10], y[i : i + 10]) for i in range(0, 40, 10))
    with pytest.raises(ValueError, match="no batches"):
        model.fit(x, y, epochs=2, validation_data=batches, verbose=0)


def test_stopping_mid_epoch_with_steps_per_epoch_does_not_warn_of_running_out():
    class StopAtSecondBatch(kfit.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    model = _model()
    x, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(
            x,
            y,
            steps_per_epoch=4,
            batch_size=4,
            epochs=3,
            verbose=0,
            callbacks=[StopAtSecondBatch()],
        )
    assert history.epoch == [0]


def test_pandas_dataframe_and_series_are_arrays():
    pandas = pytest.importorskip("pandas")
    x, y = _data()
    model = _model()
    history = model.fit(pandas.DataFrame(x), pandas.Series(y[:, 0]), epochs=1, verbose=0)
    assert history.params["steps"] == 2


def test_wrapping_a_dataloader_does_not_start_reading_it():
    class Counting(Dataset):
        reads = 0

        def __len__(self):
            return 8

        def __getitem__(self, index):
            Counting.reads += 1
            return torch.zeros(3), torch.zeros(1)

    IterableData(DataLoader(Counting(), batch_size=4))
    assert Counting.reads == 0


def test_one_dimensional_outputs_are_one_value_per_sample():
    class Squeezed(kfit.Model):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 1)

        def forward(self, x):
            return self.linear(x).squeeze(-1)

    torch.manual_seed(0)
    model = Squeezed()
    model.compile("sgd", "mse", metrics=["mse"], device="cpu")
    x, y = _data()
    weights = np.where(np.arange(40) < 20, 0.0, 1.0).astype("float32")
    errors = (model.predict(x, verbose=0) - y[:, 0]) ** 2
    loss, metric = model.evaluate(x, y[:, 0], sample_weight=weights, batch_size=30, verbose=0)
    assert loss == pytest.approx(float((weights * errors).sum() / 40), rel=1e-5)
    assert metric == pytest.approx(float(errors.mean()), rel=1e-5)


def test_dataloader_of_tensor_dataset_trains():
    x, y = _data()
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=8)
    history = _model().fit(loader, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_accuracy_on_one_dimensional_probabilities_is_binary():
    class Squeezed(kfit.Model):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 1)

        def forward(self, x):
            return torch.sigmoid(self.linear(x)).squeeze(-1)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    torch.manual_seed(0)
    model = Squeezed()
    model.compile("sgd", "crossentropy", metrics=["accuracy"], device="cpu")
    model.fit(x, y, epochs=1, verbose=0)
    _, accuracy = model.evaluate(x, y, verbose=0)
    expected = float(((model.predict(x, verbose=0) > 0.5) == (y > 0.5)).mean())
    assert accuracy == pytest.approx(expected)
    assert model.compile_state.loss.terms[0][1].fn.fn is kfit.losses.binary_crossentropy
