"""`fit` / `evaluate` / `predict` / `*_on_batch`: batching, validation, History, callbacks.

Most values are checked with the `frozen_model` fixture, which always outputs 0 and never
changes, so its `'mse'` loss per sample is `y**2` and its `'mae'` is `|y|`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import kfit
from kfit.callbacks import Callback
from kfit.callbacks.callback_list import RunningLogs

# Eight samples with target 1 and two with target 3: with batches of 4 the batch mean losses
# are 1, 1 and 9, so the size-weighted mean (2.6) differs from the mean of batch means (3.67).
Y_SKEWED = np.array([[1.0]] * 8 + [[3.0]] * 2, dtype=np.float32)
X_TEN = np.arange(30, dtype=np.float32).reshape(10, 3)
SKEWED_LOSS = float(np.mean(Y_SKEWED**2))  # 2.6
SKEWED_MAE = float(np.mean(np.abs(Y_SKEWED)))  # 1.4


def _column(n: int) -> np.ndarray:
    """`[[0], [1], ..., [n-1]]` as float32: each sample says which it is."""
    return np.arange(n, dtype=np.float32).reshape(n, 1)


def _ids(batches: list[torch.Tensor]) -> list[int]:
    """The sample ids a `Recorder` over `_column` inputs saw, in order."""
    return [int(v) for batch in batches for v in batch[:, 0].tolist()]


class HookRecorder(Callback):
    """Records every hook call as `(hook, index or None, sorted log keys or None)`."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, int | None, list[str] | None]] = []

    def _record(self, hook: str, index: int | None, logs: Any) -> None:
        self.calls.append((hook, index, sorted(logs) if logs else None))

    def on_train_begin(self, logs=None):
        self._record("on_train_begin", None, logs)

    def on_train_end(self, logs=None):
        self._record("on_train_end", None, logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._record("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._record("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._record("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._record("on_train_batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._record("on_test_begin", None, logs)

    def on_test_end(self, logs=None):
        self._record("on_test_end", None, logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._record("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._record("on_test_batch_end", batch, logs)

    def on_predict_begin(self, logs=None):
        self._record("on_predict_begin", None, logs)

    def on_predict_end(self, logs=None):
        self._record("on_predict_end", None, logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._record("on_predict_batch_begin", batch, None)

    def on_predict_batch_end(self, batch, logs=None):
        self._record("on_predict_batch_end", batch, logs)


def _recorder_model(recorder: nn.Module) -> kfit.Model:
    model = kfit.Model(recorder)
    model.compile(optimizer="sgd", loss="mse")
    return model


# --------------------------------------------------------------------------- batching


def test_batch_size_defaults_to_32_and_keeps_the_last_partial_batch(recorder):
    model = _recorder_model(recorder)
    x, y = np.random.rand(70, 3), np.random.rand(70, 1)

    history = model.fit(x, y, verbose=0)

    assert [len(batch) for batch in recorder.seen] == [32, 32, 6]
    assert history.params["steps"] == 3


@pytest.mark.parametrize(
    ("samples", "batch_size", "steps"),
    [(70, None, 3), (64, None, 2), (10, 4, 3), (10, 10, 1), (10, 100, 1), (1, None, 1)],
)
def test_history_params_steps_is_samples_over_batch_size_rounded_up(
    compiled_model, samples, batch_size, steps
):
    x, y = np.random.rand(samples, 3), np.random.rand(samples, 1)

    history = compiled_model.fit(x, y, batch_size=batch_size, verbose=0)

    assert history.params["steps"] == steps


def test_shuffle_false_keeps_the_sample_order(column_recorder):
    model = _recorder_model(column_recorder)

    model.fit(_column(10), _column(10), batch_size=4, shuffle=False, epochs=2, verbose=0)

    assert _ids(column_recorder.seen) == list(range(10)) * 2


def test_shuffle_visits_each_sample_once_per_epoch_in_a_new_order(column_recorder):
    model = _recorder_model(column_recorder)

    model.fit(_column(20), _column(20), batch_size=8, epochs=2, verbose=0)

    first, second = _ids(column_recorder.seen[:3]), _ids(column_recorder.seen[3:])
    assert sorted(first) == sorted(second) == list(range(20))
    assert first != list(range(20))
    assert first != second


# --------------------------------------------------------------------------- reported values


def test_epoch_loss_is_the_batch_size_weighted_mean_of_batch_losses(frozen_model):
    model = frozen_model()
    batch_means = [np.mean(Y_SKEWED[i : i + 4] ** 2) for i in range(0, 10, 4)]
    assert not math.isclose(np.mean(batch_means), SKEWED_LOSS)  # the two rules differ here

    history = model.fit(X_TEN, Y_SKEWED, batch_size=4, shuffle=False, verbose=0)

    assert history.history["loss"] == [pytest.approx(SKEWED_LOSS)]


@pytest.mark.parametrize("batch_size", [1, 3, 4, 7, 10, 32])
def test_metrics_are_exact_sample_means_for_any_batch_size(frozen_model, batch_size):
    history = frozen_model().fit(X_TEN, Y_SKEWED, batch_size=batch_size, verbose=0)

    assert history.history["mae"] == [pytest.approx(SKEWED_MAE)]
    assert history.history["loss"] == [pytest.approx(SKEWED_LOSS)]


def test_sample_weight_scales_the_loss_over_all_samples(frozen_model):
    weights = np.linspace(0.0, 2.0, 10, dtype=np.float32)

    history = frozen_model().fit(X_TEN, Y_SKEWED, sample_weight=weights, batch_size=3, verbose=0)

    expected = float(np.sum(weights * Y_SKEWED[:, 0] ** 2) / 10)  # Keras: sum(w * l) / N
    assert history.history["loss"] == [pytest.approx(expected)]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("samples", "split", "held_out"),
    # Keras keeps N - floor(N * (1 - split)) samples, which can be more than int(N * split).
    [(10, 0.25, 3), (10, 0.33, 4), (10, 0.5, 5), (7, 0.2, 2), (3, 0.1, 1)],
)
def test_validation_split_holds_out_the_last_samples_before_shuffling(
    frozen_model, samples, split, held_out
):
    y = _column(samples) + 1
    train, val = y[: samples - held_out], y[samples - held_out :]

    history = frozen_model(in_features=1).fit(
        _column(samples), y, validation_split=split, shuffle=True, verbose=0
    )

    assert history.history["loss"] == [pytest.approx(float(np.mean(train**2)))]
    assert history.history["val_loss"] == [pytest.approx(float(np.mean(val**2)))]
    assert history.history["val_mae"] == [pytest.approx(float(np.mean(val)))]


def test_validation_split_matches_evaluate_on_the_tail(compiled_model, xy):
    x, y = xy

    history = compiled_model.fit(x, y, validation_split=0.3, epochs=2, verbose=0)

    val_loss, val_mae = compiled_model.evaluate(x[-3:], y[-3:], verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-6)
    assert history.history["val_mae"][-1] == pytest.approx(val_mae, rel=1e-6)


def test_validation_split_that_leaves_no_training_samples_raises(compiled_model, xy):
    with pytest.raises(ValueError, match="validation_split"):
        compiled_model.fit(*xy, validation_split=0.95, verbose=0)


def test_validation_data_pair_gives_val_values(frozen_model):
    y_val = np.array([[2.0], [4.0]], dtype=np.float32)

    history = frozen_model().fit(X_TEN, Y_SKEWED, validation_data=(X_TEN[:2], y_val), verbose=0)

    assert history.history["val_loss"] == [pytest.approx(10.0)]
    assert history.history["val_mae"] == [pytest.approx(3.0)]


def test_validation_data_triple_weights_the_val_loss(frozen_model):
    y_val = np.array([[2.0], [4.0]], dtype=np.float32)
    weights = np.array([1.0, 0.5], dtype=np.float32)

    history = frozen_model().fit(
        X_TEN, Y_SKEWED, validation_data=(X_TEN[:2], y_val, weights), verbose=0
    )

    assert history.history["val_loss"] == [pytest.approx((4.0 + 0.5 * 16.0) / 2)]


def test_validation_data_can_be_a_data_loader(frozen_model):
    loader = DataLoader(TensorDataset(torch.zeros(4, 3), torch.full((4, 1), 2.0)), batch_size=3)

    history = frozen_model().fit(X_TEN, Y_SKEWED, validation_data=loader, verbose=0)

    assert history.history["val_loss"] == [pytest.approx(4.0)]


@pytest.mark.parametrize(
    ("validation_freq", "epochs", "validated"),
    [(1, 3, [0, 1, 2]), (2, 4, [1, 3]), (3, 4, [2]), ([1, 4], 4, [0, 3]), ((2,), 3, [1])],
)
def test_validation_freq_picks_the_validated_epochs(
    frozen_model, validation_freq, epochs, validated
):
    class ValEpochs(Callback):
        def __init__(self):
            super().__init__()
            self.epochs: list[int] = []

        def on_epoch_end(self, epoch, logs=None):
            if "val_loss" in logs:
                self.epochs.append(epoch)

    callback = ValEpochs()

    history = frozen_model().fit(
        X_TEN,
        Y_SKEWED,
        epochs=epochs,
        validation_data=(X_TEN, Y_SKEWED),
        validation_freq=validation_freq,
        callbacks=[callback],
        verbose=0,
    )

    assert callback.epochs == validated
    assert len(history.history["val_loss"]) == len(validated)


# --------------------------------------------------------------------------- epochs and steps


def test_initial_epoch_starts_the_epoch_count(compiled_model, xy):
    history = compiled_model.fit(*xy, initial_epoch=1, epochs=3, verbose=0)

    assert history.epoch == [1, 2]
    assert len(history.history["loss"]) == 2


def test_epochs_zero_trains_nothing(compiled_model, xy, take_snapshot, assert_unchanged):
    before = take_snapshot(compiled_model)

    history = compiled_model.fit(*xy, epochs=0, verbose=0)

    assert history.epoch == []
    assert_unchanged(compiled_model, before)


def test_steps_per_epoch_sets_the_steps_of_each_epoch(column_recorder):
    model = _recorder_model(column_recorder)

    history = model.fit(
        _column(10),
        _column(10),
        batch_size=4,
        steps_per_epoch=2,
        epochs=2,
        shuffle=False,
        verbose=0,
    )

    assert history.params["steps"] == 2
    assert len(column_recorder.seen) == 4


def test_steps_per_epoch_continues_the_data_across_epochs(column_recorder):
    model = _recorder_model(column_recorder)

    model.fit(
        _column(10),
        _column(10),
        batch_size=4,
        steps_per_epoch=2,
        epochs=2,
        shuffle=False,
        verbose=0,
    )

    assert _ids(column_recorder.seen) == [*range(8), 8, 9, 0, 1, 2, 3]


def test_generator_that_runs_out_stops_training_with_a_warning(compiled_model):
    def three_batches():
        for _ in range(3):
            yield np.random.rand(4, 3), np.random.rand(4, 1)

    with pytest.warns(UserWarning, match="ran out of data"):
        history = compiled_model.fit(three_batches(), steps_per_epoch=2, epochs=5, verbose=0)

    assert history.epoch == [0, 1]


@pytest.mark.parametrize("verbose", [3, -1, "yes", True])
def test_invalid_verbose_raises_naming_verbose(compiled_model, xy, verbose):
    with pytest.raises(ValueError, match="`verbose`"):
        compiled_model.fit(*xy, verbose=verbose)


# --------------------------------------------------------------------------- evaluate


def test_evaluate_without_metrics_returns_the_loss(frozen_model):
    result = frozen_model(metrics=()).evaluate(X_TEN, Y_SKEWED, verbose=0)

    assert isinstance(result, float)
    assert result == pytest.approx(SKEWED_LOSS)


def test_evaluate_with_metrics_returns_loss_then_metrics(frozen_model):
    result = frozen_model().evaluate(X_TEN, Y_SKEWED, batch_size=3, verbose=0)

    assert result == [pytest.approx(SKEWED_LOSS), pytest.approx(SKEWED_MAE)]


def test_evaluate_return_dict_names_each_value(frozen_model):
    result = frozen_model(metrics=("mae", "mse")).evaluate(
        X_TEN, Y_SKEWED, verbose=0, return_dict=True
    )

    assert list(result) == ["loss", "mae", "mse"]
    assert result["mse"] == pytest.approx(SKEWED_LOSS)


def test_evaluate_steps_limits_the_batches(frozen_model):
    result = frozen_model().evaluate(X_TEN, Y_SKEWED, batch_size=4, steps=2, verbose=0)

    assert result == [pytest.approx(1.0), pytest.approx(1.0)]  # only the first 8 samples


def test_evaluate_leaves_the_weights_and_mode_alone(
    compiled_model, xy, take_snapshot, assert_unchanged
):
    before = take_snapshot(compiled_model)
    compiled_model.train()

    compiled_model.evaluate(*xy, verbose=0)

    assert_unchanged(compiled_model, before)
    assert compiled_model.training


def test_evaluate_before_compile_raises():
    with pytest.raises(ValueError, match="compile"):
        kfit.Sequential(nn.Linear(3, 1)).evaluate(X_TEN, Y_SKEWED, verbose=0)


# --------------------------------------------------------------------------- predict


class TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x):
        out = self.linear(x)
        return out, out.sum(-1)


class DictOut(TupleOut):
    def forward(self, x):
        out = self.linear(x)
        return {"scores": out, "total": out.sum(-1)}


def test_predict_returns_a_numpy_array_for_a_tensor_output():
    module = nn.Linear(3, 2)

    result = kfit.Model(module).predict(X_TEN, batch_size=3, verbose=0)

    assert isinstance(result, np.ndarray)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, module(torch.from_numpy(X_TEN)).detach().numpy(), rtol=1e-6)


def test_predict_returns_a_tuple_for_a_tuple_output():
    result = kfit.Model(TupleOut()).predict(X_TEN, batch_size=3, verbose=0)

    assert isinstance(result, tuple)
    assert [type(r) for r in result] == [np.ndarray, np.ndarray]
    assert [r.shape for r in result] == [(10, 2), (10,)]


def test_predict_returns_a_dict_for_a_dict_output():
    result = kfit.Model(DictOut()).predict(X_TEN, batch_size=3, verbose=0)

    assert set(result) == {"scores", "total"}
    assert result["scores"].shape == (10, 2)
    assert isinstance(result["total"], np.ndarray)


def test_predict_steps_limits_the_batches():
    result = kfit.Model(nn.Linear(3, 2)).predict(X_TEN, batch_size=4, steps=2, verbose=0)

    assert result.shape == (8, 2)


def test_predict_runs_in_eval_mode_and_restores_training_mode():
    module = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.99))
    model = kfit.Model(module).train()

    first = model.predict(X_TEN, verbose=0)

    np.testing.assert_array_equal(first, model.predict(X_TEN, verbose=0))
    assert model.training


def test_predict_on_batch_returns_numpy_outputs():
    module = nn.Linear(3, 2)

    result = kfit.Model(module).predict_on_batch(X_TEN)

    np.testing.assert_allclose(result, module(torch.from_numpy(X_TEN)).detach().numpy(), rtol=1e-6)


# --------------------------------------------------------------------------- *_on_batch


def test_test_on_batch_reports_that_batch_only(frozen_model):
    model = frozen_model()
    model.fit(X_TEN, Y_SKEWED, verbose=0)

    result = model.test_on_batch(X_TEN[8:], Y_SKEWED[8:])

    assert result == [pytest.approx(9.0), pytest.approx(3.0)]


def test_train_on_batch_reports_that_batch_only(frozen_model):
    model = frozen_model()
    model.evaluate(X_TEN, Y_SKEWED, verbose=0)

    result = model.train_on_batch(X_TEN[8:], Y_SKEWED[8:], return_dict=True)

    assert result == {"loss": pytest.approx(9.0), "mae": pytest.approx(3.0)}


def test_train_on_batch_takes_one_optimizer_step(xy):
    x, y = xy
    layer = nn.Linear(3, 1)
    weight = layer.weight.detach().clone().requires_grad_()
    bias = layer.bias.detach().clone().requires_grad_()
    F.mse_loss(torch.from_numpy(x) @ weight.T + bias, torch.from_numpy(y)).backward()
    model = kfit.Model(layer)
    model.compile(optimizer=kfit.optimizers.SGD(learning_rate=0.1), loss="mse")

    model.train_on_batch(x, y)

    torch.testing.assert_close(layer.weight.detach().cpu(), (weight - 0.1 * weight.grad).detach())


def test_test_on_batch_leaves_the_weights_alone(
    compiled_model, xy, take_snapshot, assert_unchanged
):
    before = take_snapshot(compiled_model)

    compiled_model.test_on_batch(*xy)

    assert_unchanged(compiled_model, before)


# --------------------------------------------------------------------------- History


def test_history_records_each_epoch(compiled_model, xy):
    history = compiled_model.fit(*xy, epochs=3, validation_split=0.2, verbose=0)

    assert history.epoch == [0, 1, 2]
    assert list(history.history) == ["loss", "mae", "val_loss", "val_mae"]
    assert all(len(values) == 3 for values in history.history.values())
    assert all(isinstance(v, float) for values in history.history.values() for v in values)


def test_history_params_are_verbose_epochs_and_steps(compiled_model, xy):
    history = compiled_model.fit(*xy, epochs=3, batch_size=4, verbose=0)

    assert history.params == {"verbose": 0, "epochs": 3, "steps": 3}


def test_history_model_is_the_trained_model(compiled_model, xy):
    history = compiled_model.fit(*xy, verbose=0)

    assert history.model is compiled_model
    assert compiled_model.history is history


def test_each_fit_returns_a_new_history(compiled_model, xy):
    first = compiled_model.fit(*xy, epochs=3, verbose=0)

    second = compiled_model.fit(*xy, epochs=2, verbose=0)

    assert second is not first
    assert compiled_model.history is second
    assert len(first.history["loss"]) == 3
    assert len(second.history["loss"]) == 2


# --------------------------------------------------------------------------- callbacks


def test_fit_calls_the_hooks_in_keras_order(frozen_model):
    callback = HookRecorder()

    frozen_model().fit(
        X_TEN,
        Y_SKEWED,
        batch_size=5,
        epochs=2,
        validation_data=(X_TEN, Y_SKEWED),
        validation_batch_size=10,
        callbacks=[callback],
        verbose=0,
    )

    train, val = ["loss", "mae"], ["loss", "mae", "val_loss", "val_mae"]
    epoch = [
        ("on_train_batch_begin", 0, None),
        ("on_train_batch_end", 0, train),
        ("on_train_batch_begin", 1, None),
        ("on_train_batch_end", 1, train),
        ("on_test_begin", None, None),
        ("on_test_batch_begin", 0, None),
        ("on_test_batch_end", 0, train),
        ("on_test_end", None, train),  # validation runs the evaluate hooks, without val_
    ]
    assert callback.calls == [
        ("on_train_begin", None, None),
        ("on_epoch_begin", 0, None),
        *epoch,
        ("on_epoch_end", 0, val),
        ("on_epoch_begin", 1, None),
        *epoch,
        ("on_epoch_end", 1, val),
        ("on_train_end", None, val),
    ]


def test_evaluate_calls_the_test_hooks(frozen_model):
    callback = HookRecorder()

    frozen_model().evaluate(X_TEN, Y_SKEWED, batch_size=5, callbacks=[callback], verbose=0)

    assert [hook for hook, _, _ in callback.calls] == [
        "on_test_begin",
        "on_test_batch_begin",
        "on_test_batch_end",
        "on_test_batch_begin",
        "on_test_batch_end",
        "on_test_end",
    ]


def test_predict_calls_the_predict_hooks():
    callback = HookRecorder()

    kfit.Model(nn.Linear(3, 1)).predict(X_TEN, batch_size=5, callbacks=[callback], verbose=0)

    assert [(hook, index) for hook, index, _ in callback.calls] == [
        ("on_predict_begin", None),
        ("on_predict_batch_begin", 0),
        ("on_predict_batch_end", 0),
        ("on_predict_batch_begin", 1),
        ("on_predict_batch_end", 1),
        ("on_predict_end", None),
    ]


def test_on_batch_end_is_called_for_training_batches(frozen_model):
    class Legacy(Callback):
        def __init__(self):
            super().__init__()
            self.batches: list[int] = []

        def on_batch_end(self, batch, logs=None):
            self.batches.append(batch)

    callback = Legacy()

    frozen_model().fit(X_TEN, Y_SKEWED, batch_size=4, callbacks=[callback], verbose=0)

    assert callback.batches == [0, 1, 2]


def test_callbacks_get_the_model_and_params(frozen_model):
    callback = HookRecorder()
    model = frozen_model()

    model.fit(X_TEN, Y_SKEWED, epochs=2, batch_size=4, callbacks=[callback], verbose=0)

    assert callback.model is model
    assert callback.params == {"verbose": 0, "epochs": 2, "steps": 3}


def test_user_callbacks_run_before_history(frozen_model):
    class AddKey(Callback):
        def __init__(self):
            super().__init__()
            self.recorded_before: list[int] = []

        def on_epoch_end(self, epoch, logs=None):
            self.recorded_before.append(len(self.model.history.epoch))
            logs["doubled_loss"] = 2 * logs["loss"]

    callback = AddKey()

    history = frozen_model().fit(X_TEN, Y_SKEWED, epochs=2, callbacks=[callback], verbose=0)

    assert callback.recorded_before == [0, 1]  # History had not yet recorded this epoch
    assert history.history["doubled_loss"] == [pytest.approx(2 * SKEWED_LOSS)] * 2


def test_stop_training_in_on_epoch_end_stops_after_that_epoch(frozen_model):
    class StopAfterSecond(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    history = frozen_model().fit(
        X_TEN, Y_SKEWED, epochs=5, callbacks=[StopAfterSecond()], verbose=0
    )

    assert history.epoch == [0, 1]


def test_stop_training_in_on_train_batch_end_stops_after_that_batch(recorder):
    class StopAfterSecondBatch(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    model = _recorder_model(recorder)

    history = model.fit(
        X_TEN, Y_SKEWED, batch_size=2, epochs=3, callbacks=[StopAfterSecondBatch()], verbose=0
    )

    assert len(recorder.seen) == 2
    assert history.epoch == [0]


def test_a_new_fit_clears_stop_training(frozen_model):
    model = frozen_model()
    model.stop_training = True

    history = model.fit(X_TEN, Y_SKEWED, epochs=2, verbose=0)

    assert history.epoch == [0, 1]


def test_callbacks_must_be_callback_objects(compiled_model, xy):
    with pytest.raises(TypeError, match="callbacks"):
        compiled_model.fit(*xy, callbacks=[lambda epoch: None], verbose=0)


# --------------------------------------------------------------------------- lazy batch logs


def test_batch_logs_read_by_a_callback_are_running_floats(frozen_model):
    class ReadLoss(Callback):
        def __init__(self):
            super().__init__()
            self.losses: list[Any] = []

        def on_train_batch_end(self, batch, logs=None):
            self.losses.append(logs["loss"])

    callback = ReadLoss()

    frozen_model().fit(
        X_TEN, Y_SKEWED, batch_size=4, shuffle=False, callbacks=[callback], verbose=0
    )

    assert all(type(loss) is float for loss in callback.losses)
    assert callback.losses == [pytest.approx(1.0), pytest.approx(1.0), pytest.approx(SKEWED_LOSS)]


@pytest.mark.parametrize(("reads_logs", "reads"), [(False, 1), (True, 1 + 3)])
def test_fit_reads_values_only_at_epoch_end_and_when_a_callback_reads_batch_logs(
    frozen_model, monkeypatch, reads_logs, reads
):
    class BatchEnd(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if reads_logs:
                logs["loss"]

    model = frozen_model()
    calls: list[int] = []
    read = model.get_metrics_result
    monkeypatch.setattr(model, "get_metrics_result", lambda: calls.append(1) or read())

    model.fit(X_TEN, Y_SKEWED, batch_size=4, callbacks=[BatchEnd()], verbose=0)

    assert len(calls) == reads


def test_running_logs_read_nothing_until_accessed():
    reads: list[int] = []

    def read() -> dict[str, float]:
        reads.append(1)
        return {"loss": 0.5}

    logs = RunningLogs(read)
    assert reads == []

    assert logs["loss"] == 0.5
    assert dict(logs) == {"loss": 0.5}
    assert reads == [1]  # read once, then kept


def test_running_logs_accept_new_keys():
    logs = RunningLogs(lambda: {"loss": 0.5})

    logs["extra"] = 1.0

    assert dict(logs) == {"loss": 0.5, "extra": 1.0}


# --------------------------------------------------------------------------- bad arguments


def _generator():
    yield np.random.rand(4, 3), np.random.rand(4, 1)


def _loader():
    return DataLoader(TensorDataset(torch.rand(10, 3), torch.rand(10, 1)), batch_size=4)


Y_CLASSES = (np.arange(10) % 3).reshape(10, 1).astype(np.float32)

BAD_FIT_ARGUMENTS = {
    "x_y_length_mismatch": ({"y": Y_SKEWED[:9]}, ValueError, r"x: 10, y: 9"),
    "empty_x": ({"x": X_TEN[:0], "y": Y_SKEWED[:0]}, ValueError, r"`x` is empty"),
    "string_x": ({"x": np.array([["a", "b", "c"]] * 10)}, TypeError, r"`x` must hold numbers"),
    "object_x": (
        {"x": np.array([[1, None, 2]] * 10, dtype=object)},
        TypeError,
        r"`x` must hold numbers",
    ),
    "string_y": ({"y": np.array(["a"] * 10)}, TypeError, r"`y` must hold numbers"),
    "batch_size_0": ({"batch_size": 0}, ValueError, r"`batch_size`"),
    "batch_size_negative": ({"batch_size": -1}, ValueError, r"`batch_size`"),
    "batch_size_float": ({"batch_size": 2.5}, ValueError, r"`batch_size`"),
    "epochs_negative": ({"epochs": -1}, ValueError, r"`epochs`"),
    "validation_split_above_1": ({"validation_split": 1.5}, ValueError, r"`validation_split`"),
    "validation_split_with_loader": (
        {"x": _loader(), "y": None, "validation_split": 0.2},
        ValueError,
        r"`validation_split`",
    ),
    "validation_split_with_generator": (
        {"x": _generator(), "y": None, "validation_split": 0.2},
        ValueError,
        r"`validation_split`",
    ),
    "validation_data_1_tuple": ({"validation_data": (X_TEN,)}, ValueError, r"`validation_data`"),
    "validation_data_4_tuple": (
        {"validation_data": (X_TEN, Y_SKEWED, Y_SKEWED, Y_SKEWED)},
        ValueError,
        r"`validation_data`",
    ),
    "sample_weight_length": ({"sample_weight": np.ones(9)}, ValueError, r"sample_weight: 9"),
    "class_weight_missing_class": (
        {"y": Y_CLASSES, "class_weight": {0: 1.0, 1: 2.0}},
        ValueError,
        r"`class_weight`.*\[2\]",
    ),
    "y_with_a_data_loader": ({"x": _loader()}, ValueError, r"`y` must be None"),
}


@pytest.mark.parametrize(
    ("overrides", "error", "match"), BAD_FIT_ARGUMENTS.values(), ids=BAD_FIT_ARGUMENTS.keys()
)
def test_bad_fit_argument_raises_before_any_weight_moves(
    compiled_model, take_snapshot, assert_unchanged, overrides, error, match
):
    kwargs = {"x": X_TEN, "y": Y_SKEWED, "verbose": 0, **overrides}
    before = take_snapshot(compiled_model)

    with pytest.raises(error, match=match):
        compiled_model.fit(**kwargs)

    assert_unchanged(compiled_model, before)


def test_fit_before_compile_raises_naming_compile():
    with pytest.raises(ValueError, match=r"compile\(\)"):
        kfit.Sequential(nn.Linear(3, 1)).fit(X_TEN, Y_SKEWED, verbose=0)


@pytest.mark.parametrize(
    "compile_kwargs",
    [
        {"optimizer": "sgd", "loss": "mean_squared_eror"},
        {"optimizer": "sgd", "loss": "mse", "metrics": ["maee"]},
        {"optimizer": "adma", "loss": "mse"},
    ],
    ids=["loss", "metric", "optimizer"],
)
def test_misspelt_id_in_compile_raises_before_any_weight_moves(
    compiled_model, take_snapshot, assert_unchanged, compile_kwargs
):
    before = take_snapshot(compiled_model)

    with pytest.raises(ValueError, match="Did you mean"):
        compiled_model.compile(**compile_kwargs)

    assert_unchanged(compiled_model, before)
