from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import kfit
from kfit.callbacks import Callback, EarlyStopping

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")

# name: (EarlyStopping arguments, the monitored value per epoch)
CASES = {
    "stops_at_first_worse_epoch": ({"patience": 0, "verbose": 1}, [1.0, 0.9, 0.95, 0.8]),
    "never_stops_after_epoch_0": ({"patience": 0, "verbose": 1}, [1.0, 1.1]),
    "patience": ({"patience": 2, "verbose": 1}, [1.0, 0.9, 0.91, 0.92, 0.93, 0.5]),
    "min_delta": ({"patience": 1, "min_delta": 0.05}, [1.0, 0.97, 0.96, 0.9, 0.89, 0.88]),
    "negative_min_delta_is_its_size": ({"patience": 1, "min_delta": -0.05}, [1.0, 0.97, 0.96]),
    "mode_max": (
        {"monitor": "val_accuracy", "mode": "max", "patience": 1},
        [0.5, 0.6, 0.55, 0.58, 0.7],
    ),
    "baseline_not_beaten": ({"patience": 3, "baseline": 0.5}, [1.0, 0.9, 0.95, 0.96, 0.97]),
    "baseline_beaten": ({"patience": 3, "baseline": 0.5}, [1.0, 0.4, 0.45, 0.46, 0.47]),
    "start_from_epoch": ({"patience": 0, "start_from_epoch": 2}, [1.0, 2.0, 3.0, 2.5, 2.6]),
    "nan_is_no_improvement": ({"patience": 1}, [1.0, math.nan, math.nan, 0.5]),
    "restore_without_stopping": (
        {"patience": 10, "restore_best_weights": True, "verbose": 1},
        [1.0, 0.5, 0.7, 0.8],
    ),
    "restore_after_stopping": (
        {"patience": 1, "restore_best_weights": True, "verbose": 1},
        [1.0, 0.4, 0.6, 0.7, 0.3],
    ),
    "restore_epoch_0": ({"patience": 1, "restore_best_weights": True}, [0.5, 0.6, 0.7]),
    "restore_after_warm_up": (
        {"patience": 1, "restore_best_weights": True, "start_from_epoch": 2, "verbose": 1},
        [0.1, 0.2, 0.9, 0.8, 0.85, 0.86],
    ),
}


def _run(side, drive, capsys, options, values):
    monitor = options.get("monitor", "val_loss")
    model = side.model()
    callback = side.callbacks.EarlyStopping(**options)
    seen = drive(callback, model, [{"loss": 1.0, monitor: v} for v in values], side.label)
    return {
        "epochs_run": len(seen),
        "stop_training": model.stop_training,
        "stopped_epoch": callback.stopped_epoch,
        "best_epoch": callback.best_epoch,
        "wait": callback.wait,
        "weights_from_epoch": side.label_of(model),
        "printed": capsys.readouterr().out,
    }


@pytest.mark.keras_compat
@pytest.mark.parametrize("case", CASES)
def test_stops_and_restores_like_keras(case, kfit_side, keras_side, drive, capsys):
    options, values = CASES[case]
    ours = _run(kfit_side, drive, capsys, options, values)
    theirs = _run(keras_side, drive, capsys, options, values)
    assert ours == theirs


@pytest.mark.keras_compat
@pytest.mark.parametrize(
    ("monitor", "values"),
    [("val_mae", [1.0, 0.9, 0.95, 0.96]), ("val_accuracy", [0.5, 0.6, 0.55, 0.54])],
)
def test_auto_mode_takes_the_metric_direction_like_keras(
    monitor, values, kfit_side, keras_side, drive
):
    stopped = []
    for side in (kfit_side, keras_side):
        model = side.model(metrics=["mae", "accuracy"])
        side.build_metrics(model)
        callback = side.callbacks.EarlyStopping(monitor=monitor, patience=1)
        seen = drive(callback, model, [{"loss": 1.0, monitor: v} for v in values])
        stopped.append((len(seen), callback.best_epoch))
    assert stopped[0] == stopped[1] == (3, 1)


@pytest.mark.keras_compat
def test_missing_monitor_warns_like_keras_and_never_stops(kfit_side, keras_side, drive):
    messages = []
    for side in (kfit_side, keras_side):
        model = side.model()
        callback = side.callbacks.EarlyStopping(patience=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            seen = drive(callback, model, [{"loss": 1.0}, {"loss": 2.0}, {"loss": 3.0}])
        assert len(seen) == 3
        messages.append([str(w.message) for w in caught if "not available" in str(w.message)])
    assert messages[0] == messages[1]
    assert len(messages[0]) == 3


def test_best_weights_are_detached_copies_on_the_model_device(kfit_side, drive):
    model = kfit_side.model()
    callback = EarlyStopping(monitor="loss", restore_best_weights=True, patience=5)
    drive(callback, model, [{"loss": 1.0}])
    state = model.state_dict()
    for name, saved in callback.best_weights.items():
        assert saved.device == state[name].device
        assert not saved.requires_grad
        assert saved.data_ptr() != state[name].data_ptr()
        assert torch.equal(saved, state[name])


def test_one_instance_is_reset_by_each_fit(kfit_side, drive):
    model = kfit_side.model()
    callback = EarlyStopping(monitor="loss", patience=0)
    assert len(drive(callback, model, [{"loss": v} for v in [1.0, 2.0, 3.0]])) == 2
    assert len(drive(callback, model, [{"loss": v} for v in [5.0, 4.0, 3.0]])) == 3
    assert (callback.stopped_epoch, callback.best, callback.best_epoch) == (0, 3.0, 2)


@pytest.mark.parametrize(
    ("argument", "value"),
    [("patience", -1), ("patience", 1.5), ("start_from_epoch", -2), ("mode", "best")],
)
def test_invalid_argument_is_a_value_error_naming_it(argument, value):
    with pytest.raises(ValueError, match=f"`{argument}`.*{value}"):
        EarlyStopping(**{argument: value})


def test_auto_mode_on_a_key_of_unknown_direction_raises(kfit_side, drive):
    callback = EarlyStopping(monitor="val_custom")
    with pytest.raises(ValueError, match="val_custom"):
        drive(callback, kfit_side.model(), [{"val_custom": 1.0}])


def test_fit_stops_and_restores_the_weights_of_the_best_epoch(take_snapshot):
    # Trained towards y = 2x but validated on y = x: val_loss falls, then rises.
    x = np.linspace(-1.0, 1.0, 32, dtype=np.float32).reshape(-1, 1)
    model = kfit.Sequential(nn.Linear(1, 1, bias=False))
    nn.init.zeros_(model.module[0].weight)
    model.compile(optimizer=kfit.optimizers.SGD(learning_rate=0.1), loss="mse")
    snapshots = []

    class Snapshots(Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(take_snapshot(self.model))

    stopper = EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(
        x,
        2 * x,
        batch_size=32,
        epochs=100,
        validation_data=(x, x),
        callbacks=[stopper, Snapshots()],
        verbose=0,
    )
    val_loss = history.history["val_loss"]
    best = int(np.argmin(val_loss))
    assert best > 0
    assert len(val_loss) == best + 3
    assert stopper.best_epoch == best
    restored = model.state_dict()
    assert torch.equal(restored["module.0.weight"], snapshots[best]["module.0.weight"])
    assert not torch.equal(restored["module.0.weight"], snapshots[-1]["module.0.weight"])


def test_fit_prints_keras_messages(capsys):
    model = kfit.Sequential(nn.Linear(1, 1))
    model.compile(optimizer=kfit.optimizers.SGD(learning_rate=0.0), loss="mse")
    stopper = EarlyStopping(monitor="loss", patience=1, restore_best_weights=True, verbose=1)
    x = np.ones((4, 1), dtype=np.float32)
    model.fit(x, x, epochs=10, callbacks=[stopper], verbose=0)
    assert capsys.readouterr().out == (
        "Epoch 2: early stopping\nRestoring model weights from the end of the best epoch: 1.\n"
    )
