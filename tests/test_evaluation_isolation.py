"""evaluate/predict from a callback or another thread leave training and each other untouched."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

import kfit
from kfit.callbacks import Callback


def _data(n: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5], [0.0]], dtype=np.float32)) + seed


def _model() -> kfit.Model:
    torch.manual_seed(0)
    model = kfit.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"], device="cpu")
    return model


def _fit(model, callbacks=(), epochs=2):
    return model.fit(*_data(), batch_size=16, epochs=epochs, verbose=0, callbacks=list(callbacks))


def _modes(model: nn.Module) -> list[bool]:
    return [module.training for module in model.modules()]


# --------------------------------------------------------------------------- from a callback


class _EvaluateEachBatch(Callback):
    def __init__(self, method: str):
        super().__init__()
        self.method = method
        self.modes_after: list[list[bool]] = []

    def on_train_batch_end(self, batch, logs=None):
        x, y = _data(32, seed=1)
        if self.method == "evaluate":
            self.model.evaluate(x, y, verbose=0)
        elif self.method == "test_on_batch":
            self.model.test_on_batch(x, y)
        else:
            self.model.predict(x, verbose=0)
        self.modes_after.append(_modes(self.model))


@pytest.mark.parametrize("method", ["evaluate", "test_on_batch", "predict"])
def test_evaluating_inside_on_train_batch_end_leaves_the_epoch_numbers_alone(method):
    reference_model = _model()
    reference = _fit(reference_model)
    model, callback = _model(), _EvaluateEachBatch(method)
    history = _fit(model, [callback])
    # The example: the logged loss and mae are those of a run without the evaluation.
    assert history.history == reference.history
    for key, value in reference_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert all(all(modes) for modes in callback.modes_after)  # training mode, every module


def test_running_batch_logs_after_a_nested_evaluate_are_the_training_ones():
    seen = []

    class EvaluateThenRead(Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model.evaluate(*_data(32, seed=5), verbose=0)
            seen.append(dict(logs))

    plain = []

    class Read(Callback):
        def on_train_batch_end(self, batch, logs=None):
            plain.append(dict(logs))

    _fit(_model(), [Read()], epochs=1)
    _fit(_model(), [EvaluateThenRead()], epochs=1)
    assert seen == plain


def test_evaluate_after_fit_still_leaves_its_values_in_the_metrics():
    """Outside a fit, Keras's behaviour: `model.metrics` hold the evaluation's values."""
    model = _model()
    _fit(model, epochs=1)
    result = model.evaluate(*_data(32, seed=3), verbose=0, return_dict=True)
    assert model.get_metrics_result() == pytest.approx(result)


# --------------------------------------------------------------------------- exact modes


@pytest.mark.parametrize(
    "run",
    [
        lambda m, x, y: m.evaluate(x, y, verbose=0),
        lambda m, x, y: m.predict(x, verbose=0),
        lambda m, x, y: m.test_on_batch(x, y),
        lambda m, x, y: m.predict_on_batch(x),
    ],
    ids=["evaluate", "predict", "test_on_batch", "predict_on_batch"],
)
@pytest.mark.parametrize("top_training", [True, False])
def test_every_submodule_gets_its_own_mode_back(run, top_training):
    model = _model()
    model.train(top_training)
    model.module[1].eval()  # a frozen BatchNorm inside a training model (or the reverse)
    model.module[3].train()
    before = _modes(model)
    run(model, *_data(32))
    assert _modes(model) == before


def test_modes_come_back_when_evaluate_raises():
    model = _model()
    model.module[1].eval()
    before = _modes(model)

    class Boom(Callback):
        def on_test_batch_end(self, batch, logs=None):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model.evaluate(*_data(32), verbose=0, callbacks=[Boom()])
    assert _modes(model) == before


# --------------------------------------------------------------------------- threads


def test_concurrent_evaluates_each_give_their_own_value():
    model = _model()
    _fit(model, epochs=1)
    sets = {seed: _data(512, seed=seed) for seed in (1, 2)}
    expected = {seed: model.evaluate(*xy, batch_size=8, verbose=0) for seed, xy in sets.items()}
    results: dict[int, list] = {1: [], 2: []}
    start = threading.Barrier(2)

    def worker(seed: int) -> None:
        start.wait()
        for _ in range(5):
            results[seed].append(model.evaluate(*sets[seed], batch_size=8, verbose=0))

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in sets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed, values in results.items():
        assert len(values) == 5
        for value in values:
            np.testing.assert_allclose(value, expected[seed], rtol=1e-6)


@pytest.mark.parametrize("method", ["predict", "evaluate"])
def test_another_threads_calls_during_fit_leave_training_alone(method):
    reference = _fit(_model(), epochs=3)
    model = _model()
    x, y = _data(64, seed=7)
    ready, done = threading.Event(), threading.Event()
    calls = {"during_fit": 0}
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            while not done.is_set():
                if method == "predict":
                    model.predict(x, verbose=0)
                else:
                    model.evaluate(x, y, verbose=0)
                calls["during_fit"] += fitting.is_set()
                ready.set()
        except BaseException as error:  # reported by the main thread
            errors.append(error)
            ready.set()

    fitting = threading.Event()
    modes_seen: list[bool] = []

    class Watch(Callback):
        def on_train_begin(self, logs=None):
            fitting.set()

        def on_train_batch_begin(self, batch, logs=None):
            modes_seen.append(all(_modes(self.model)))

        def on_train_end(self, logs=None):
            fitting.clear()

    thread = threading.Thread(target=worker)
    thread.start()
    ready.wait(timeout=60)
    try:
        history = _fit(model, [Watch()], epochs=3)
    finally:
        done.set()
        thread.join(timeout=60)
    assert not errors
    assert calls["during_fit"] > 0  # the other thread did run between training steps
    assert all(modes_seen)  # every step ran with every module in training mode
    assert history.history == reference.history
    assert all(_modes(model))
