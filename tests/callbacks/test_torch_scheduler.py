from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler

import kfit
from kfit.callbacks import (
    CallbackList,
    EarlyStopping,
    LambdaCallback,
    TorchScheduler,
    as_callback,
)
from kfit.optimizers import get_learning_rate

X = np.linspace(-1.0, 1.0, 24, dtype=np.float32).reshape(8, 3)
Y = X[:, :1] * 0.5


def _model(learning_rate: float = 0.1) -> kfit.Model:
    model = kfit.Sequential(nn.Linear(3, 1))
    model.compile(optimizer=kfit.optimizers.SGD(learning_rate=learning_rate), loss="mse")
    return model


def _reference_rates(make_scheduler, steps: int, learning_rate: float = 0.1) -> list[float]:
    """The rate before each of `steps` scheduler steps, in a plain PyTorch loop."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=learning_rate)
    scheduler = make_scheduler(optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def _step_lr(optimizer):
    return lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)


def _one_cycle(optimizer):
    return lr_scheduler.OneCycleLR(optimizer, max_lr=0.5, total_steps=12)


def test_epoch_interval_steps_once_per_epoch_and_logs_the_epoch_rate():
    model = _model()
    scheduler = _step_lr(model.optimizer)
    history = model.fit(
        X, Y, batch_size=4, epochs=5, callbacks=[TorchScheduler(scheduler)], verbose=0
    )
    assert history.history["learning_rate"] == pytest.approx(_reference_rates(_step_lr, 5))
    assert scheduler.last_epoch == 5


def test_step_interval_steps_after_every_batch():
    model = _model()
    rates = []
    record = LambdaCallback(
        on_train_batch_begin=lambda batch, logs: rates.append(get_learning_rate(model.optimizer))
    )
    callback = TorchScheduler(_one_cycle(model.optimizer), interval="step")
    history = model.fit(X, Y, batch_size=2, epochs=3, callbacks=[record, callback], verbose=0)
    expected = _reference_rates(_one_cycle, 12)
    assert rates == pytest.approx(expected)
    # Each epoch logs the rate of its last step.
    assert history.history["learning_rate"] == pytest.approx(expected[3::4])


def test_epoch_interval_adds_no_batch_hook():
    callback = TorchScheduler(_step_lr(_model().optimizer))
    callbacks = CallbackList([callback], None, {})
    assert not callbacks.wants("on_train_batch_end")


def test_a_function_builds_the_scheduler_on_the_compiled_optimizer():
    model = _model()
    callback = TorchScheduler(_step_lr)
    history = model.fit(X, Y, batch_size=4, epochs=4, callbacks=[callback], verbose=0)
    assert callback.scheduler.optimizer is model.optimizer
    assert history.history["learning_rate"] == pytest.approx(_reference_rates(_step_lr, 4))


def test_a_function_is_called_again_after_a_new_compile():
    model = _model()
    callback = TorchScheduler(_step_lr)
    model.fit(X, Y, epochs=1, callbacks=[callback], verbose=0)
    first = callback.scheduler
    model.fit(X, Y, epochs=1, callbacks=[callback], verbose=0)
    assert callback.scheduler is first
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, Y, epochs=1, callbacks=[callback], verbose=0)
    assert callback.scheduler is not first
    assert callback.scheduler.optimizer is model.optimizer


def test_plateau_scheduler_is_stepped_with_the_monitored_value():
    # A frozen model: the loss never improves after the first epoch.
    model = _model(learning_rate=0.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model.compile(optimizer=optimizer, loss="mse")
    plateau = lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    stepped_with = []
    plateau_step = plateau.step
    plateau.step = lambda value: (stepped_with.append(value), plateau_step(value))
    history = model.fit(
        X, Y, epochs=4, validation_data=(X, Y), callbacks=[TorchScheduler(plateau)], verbose=0
    )
    assert stepped_with == history.history["val_loss"]
    assert history.history["learning_rate"][0] == 1.0
    assert get_learning_rate(optimizer) < 1.0


def test_plateau_scheduler_with_a_missing_monitor_warns_and_does_not_step():
    model = _model()
    plateau = lr_scheduler.ReduceLROnPlateau(model.optimizer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, Y, epochs=2, callbacks=[TorchScheduler(plateau)], verbose=0)
    assert any("`val_loss` which is not available" in str(w.message) for w in caught)
    assert plateau.last_epoch == 0


def test_scheduler_of_another_optimizer_is_rejected():
    model = _model()
    other = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="optimizer other than `model.optimizer`"):
        model.fit(X, Y, epochs=1, callbacks=[TorchScheduler(_step_lr(other))], verbose=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"interval": "batch"}, ValueError, "`interval`.*'batch'"),
        ({"monitor": "loss"}, ValueError, "`monitor`.*StepLR"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        TorchScheduler(_step_lr(_model().optimizer), **kwargs)


def test_a_scheduler_argument_that_is_no_scheduler_is_a_type_error():
    with pytest.raises(TypeError, match="`scheduler`.*int"):
        TorchScheduler(3)


def test_a_function_that_returns_no_scheduler_is_a_type_error():
    with pytest.raises(TypeError, match="must return a torch.optim.lr_scheduler"):
        _model().fit(X, Y, epochs=1, callbacks=[TorchScheduler(lambda opt: opt)], verbose=0)


def test_as_callback_keeps_callbacks_and_wraps_schedulers():
    model = _model()
    stopper = EarlyStopping()
    assert as_callback(stopper) is stopper
    for scheduler in (_step_lr(model.optimizer), lr_scheduler.ReduceLROnPlateau(model.optimizer)):
        wrapped = as_callback(scheduler)
        assert isinstance(wrapped, TorchScheduler)
        assert wrapped.scheduler is scheduler
        assert wrapped.interval == "epoch"
    with pytest.raises(TypeError, match="`lr_scheduler` must hold .* got 'step'"):
        as_callback("step", argument="lr_scheduler")
