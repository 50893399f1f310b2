from __future__ import annotations

import numpy as np
import pytest
from torch import nn

import kfit
from kfit.callbacks import CallbackList, LambdaCallback

X = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(4, 3)
Y = X[:, :1]


@pytest.fixture
def model() -> kfit.Model:
    model = kfit.Sequential(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse")
    return model


def _recording(calls: list, *names: str) -> LambdaCallback:
    """A LambdaCallback whose hooks `names` append `(name, *args)` to `calls`.

    The functions take `logs` positionally or by keyword: `Callback.on_train_batch_end` calls
    `on_batch_end(batch, logs=logs)`, as Keras's does.
    """
    return LambdaCallback(
        **{
            name: (lambda *args, name=name, **kwargs: calls.append((name, *args, *kwargs.values())))
            for name in names
        }
    )


def test_epoch_and_train_hooks_get_keras_arguments(model):
    calls = []
    callback = _recording(calls, "on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_end")
    model.fit(X, Y, batch_size=2, epochs=2, verbose=0, callbacks=[callback])
    assert [call[:2] for call in calls] == [
        ("on_train_begin", {}),
        ("on_epoch_begin", 0),
        ("on_epoch_end", 0),
        ("on_epoch_begin", 1),
        ("on_epoch_end", 1),
        ("on_train_end", calls[-2][2]),
    ]
    assert set(calls[2][2]) == {"loss"}


def test_other_hooks_are_given_by_keyword(model):
    calls = []
    callback = _recording(calls, "on_test_begin", "on_test_end", "on_predict_end")
    model.evaluate(X, Y, verbose=0, callbacks=[callback])
    model.predict(X, verbose=0, callbacks=[callback])
    assert [call[0] for call in calls] == ["on_test_begin", "on_test_end", "on_predict_end"]
    assert set(calls[1][1]) == {"loss"}


def test_train_batch_hooks_are_called_for_every_batch(model):
    calls = []
    callback = _recording(calls, "on_train_batch_begin", "on_train_batch_end")
    model.fit(X, Y, batch_size=2, epochs=1, verbose=0, callbacks=[callback])
    assert [call[:2] for call in calls] == [
        ("on_train_batch_begin", 0),
        ("on_train_batch_end", 0),
        ("on_train_batch_begin", 1),
        ("on_train_batch_end", 1),
    ]
    assert set(calls[-1][2]) == {"loss"}


def test_on_batch_end_by_keyword_is_called_after_each_train_batch(model):
    calls = []
    model.fit(X, Y, batch_size=2, verbose=0, callbacks=[_recording(calls, "on_batch_end")])
    assert [call[:2] for call in calls] == [("on_batch_end", 0), ("on_batch_end", 1)]


def test_hooks_not_given_are_not_dispatched():
    callbacks = CallbackList([LambdaCallback(on_epoch_end=print)], None, {})
    assert not any(
        callbacks.wants(hook)
        for hook in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_end")
    )


def test_unknown_hook_is_a_value_error_naming_it_and_the_closest_hook():
    with pytest.raises(ValueError, match="'on_epoch_ends'.*Did you mean 'on_epoch_end'"):
        LambdaCallback(on_epoch_ends=print)


def test_a_hook_that_is_no_function_is_a_type_error():
    with pytest.raises(TypeError, match="`on_test_end`.*int"):
        LambdaCallback(on_test_end=3)


def test_hooks_given_as_none_keep_the_base_class_no_ops():
    callback = LambdaCallback(on_epoch_end=None, on_test_end=None)
    assert "on_epoch_end" not in vars(callback)
    assert "on_test_end" not in vars(callback)
