from __future__ import annotations

import math

import numpy as np
import pytest

import kfit
from kfit.callbacks import LambdaCallback, TerminateOnNaN

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")

LOSSES = {
    "nan": [1.0, 2.0, math.nan, 3.0],
    "inf": [1.0, math.inf, 3.0],
    "minus_inf": [-math.inf],
    "finite": [1.0, 2.0, 3.0],
    "no_loss": [None, None],
}


def _run_batches(side, capsys, losses, raise_error=False):
    model = side.model()
    model.stop_training = False
    callback = side.callbacks.TerminateOnNaN(raise_error=raise_error)
    callback.set_model(model)
    batches = 0
    for batch, loss in enumerate(losses):
        # kfit's `fit` calls on_train_batch_end, which calls on_batch_end (Keras's hook).
        callback.on_train_batch_end(batch, {} if loss is None else {"loss": loss})
        batches += 1
        if model.stop_training:
            break
    return batches, model.stop_training, capsys.readouterr().out


@pytest.mark.keras_compat
@pytest.mark.parametrize("case", LOSSES)
def test_stops_at_the_same_batch_as_keras(case, kfit_side, keras_side, capsys):
    ours = _run_batches(kfit_side, capsys, LOSSES[case])
    theirs = _run_batches(keras_side, capsys, LOSSES[case])
    assert ours == theirs


@pytest.mark.keras_compat
def test_raise_error_raises_the_keras_error(kfit_side, keras_side, capsys):
    messages = []
    for side in (kfit_side, keras_side):
        with pytest.raises(RuntimeError) as error:
            _run_batches(side, capsys, LOSSES["nan"], raise_error=True)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith("NaN or Inf loss encountered at batch 2.")


def test_raise_error_must_be_a_bool():
    with pytest.raises(TypeError, match="`raise_error`.*'yes'"):
        TerminateOnNaN(raise_error="yes")


def _nan_from_third_batch(column_recorder):
    """A model, and 10 samples whose third batch of 2 holds a NaN input."""
    x = np.arange(10, dtype=np.float32).reshape(-1, 1)
    x[5] = np.nan
    model = kfit.Model(column_recorder)
    model.compile(optimizer="sgd", loss="mse")
    return model, x


def test_fit_stops_after_the_batch_with_a_nan_loss(column_recorder, capsys):
    model, x = _nan_from_third_batch(column_recorder)
    ended = []
    history = model.fit(
        x,
        np.zeros_like(x),
        batch_size=2,
        epochs=3,
        shuffle=False,
        verbose=0,
        callbacks=[TerminateOnNaN(), LambdaCallback(on_train_end=ended.append)],
    )
    assert len(column_recorder.seen) == 3
    assert len(history.history["loss"]) == 1
    assert math.isnan(history.history["loss"][0])
    assert len(ended) == 1
    assert capsys.readouterr().out == "Batch 2: Invalid loss, terminating training\n"


def test_fit_with_raise_error_raises_after_train_end_cleanup(column_recorder):
    model, x = _nan_from_third_batch(column_recorder)
    ended = []
    with pytest.raises(RuntimeError, match="batch 2"):
        model.fit(
            x,
            np.zeros_like(x),
            batch_size=2,
            shuffle=False,
            verbose=0,
            callbacks=[TerminateOnNaN(raise_error=True), LambdaCallback(on_train_end=ended.append)],
        )
    assert len(column_recorder.seen) == 3
    assert len(ended) == 1  # kfit runs on_train_end on errors too (Keras skips it) to clean up


def test_fit_with_finite_losses_runs_every_epoch(column_recorder):
    model = kfit.Model(column_recorder)
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((4, 1), dtype=np.float32)
    history = model.fit(x, x, batch_size=2, epochs=2, verbose=0, callbacks=[TerminateOnNaN()])
    assert len(history.history["loss"]) == 2
    assert len(column_recorder.seen) == 4
