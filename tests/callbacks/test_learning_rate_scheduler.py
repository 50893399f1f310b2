from __future__ import annotations

import numpy as np
import pytest
from torch import nn

import kfit
from kfit.callbacks import Callback, LearningRateScheduler
from kfit.optimizers import get_learning_rate

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")

# name: schedule; the rates are binary fractions, so Keras's float32 keeps them exact.
SCHEDULES = {
    "epoch_and_lr": lambda epoch, lr: lr if epoch < 2 else lr * 0.5,
    "epoch_only": lambda epoch: 2.0**-epoch,
    "numpy_float32": lambda epoch, lr: np.float32(lr * 0.25),
    "numpy_float64": lambda epoch: np.float64(0.5 ** (epoch + 1)),
}


def _run(side, drive, capsys, schedule):
    model = side.model(learning_rate=0.5)
    callback = side.callbacks.LearningRateScheduler(schedule, verbose=1)
    seen = drive(callback, model, [{"loss": 1.0}] * 4)
    return [logs["learning_rate"] for logs in seen], capsys.readouterr().out


@pytest.mark.keras_compat
@pytest.mark.parametrize("case", SCHEDULES)
def test_rates_and_messages_match_keras(case, kfit_side, keras_side, drive, capsys):
    ours = _run(kfit_side, drive, capsys, SCHEDULES[case])
    theirs = _run(keras_side, drive, capsys, SCHEDULES[case])
    assert ours == theirs
    assert "LearningRateScheduler setting learning rate to" in ours[1]


@pytest.mark.keras_compat
@pytest.mark.parametrize("result", ["0.1", None, [0.1]])
def test_a_result_that_is_not_a_number_is_rejected_like_keras(result, kfit_side, keras_side, drive):
    for side in (kfit_side, keras_side):
        callback = side.callbacks.LearningRateScheduler(lambda epoch: result)
        with pytest.raises(ValueError, match="should be a float"):
            drive(callback, side.model(), [{"loss": 1.0}])


def test_an_integer_result_is_taken_as_a_rate(kfit_side, drive):
    model = kfit_side.model()
    drive(LearningRateScheduler(lambda epoch: 1), model, [{"loss": 1.0}])
    assert get_learning_rate(model.optimizer) == 1.0


def test_a_negative_result_is_rejected(kfit_side, drive):
    with pytest.raises(ValueError, match="-0.1"):
        drive(LearningRateScheduler(lambda epoch: -0.1), kfit_side.model(), [{"loss": 1.0}])


def test_schedule_must_be_callable():
    with pytest.raises(TypeError, match="`schedule`.*0.1"):
        LearningRateScheduler(0.1)


def test_each_epoch_trains_with_its_scheduled_rate():
    seen_rates = []

    class RateAtStep(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen_rates.append(get_learning_rate(self.model.optimizer))

    model = kfit.Sequential(nn.Linear(3, 1))
    model.compile(optimizer=kfit.optimizers.SGD(learning_rate=0.1), loss="mse")
    x = np.ones((4, 3), dtype=np.float32)
    history = model.fit(
        x,
        x[:, :1],
        batch_size=2,
        epochs=3,
        verbose=0,
        callbacks=[LearningRateScheduler(lambda epoch: 0.1 * (epoch + 1)), RateAtStep()],
    )
    assert seen_rates == pytest.approx([0.1, 0.1, 0.2, 0.2, 0.3, 0.3])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.2, 0.3])
