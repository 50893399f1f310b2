from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import kfit
from kfit.callbacks import ReduceLROnPlateau

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")

FLAT = [1.0] * 8

# name: (initial learning rate, ReduceLROnPlateau arguments, the monitored value per epoch)
CASES = {
    "patience": (0.5, {"patience": 2, "factor": 0.5, "verbose": 1}, FLAT),
    "patience_0": (0.5, {"patience": 0, "factor": 0.5, "verbose": 1}, FLAT[:4]),
    "improvements_reset_the_wait": (
        0.5,
        {"patience": 2, "factor": 0.5, "verbose": 1},
        [1.0, 1.0, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8],
    ),
    "cooldown": (1.0, {"patience": 1, "factor": 0.5, "cooldown": 2, "verbose": 1}, FLAT),
    "min_lr": (1.0, {"patience": 1, "factor": 0.5, "min_lr": 0.25, "verbose": 1}, FLAT),
    "min_delta": (
        0.5,
        {"patience": 1, "factor": 0.5, "min_delta": 0.1},
        [1.0, 0.95, 0.85, 0.8, 0.75, 0.6],
    ),
    "mode_max": (
        0.5,
        {"monitor": "val_accuracy", "mode": "max", "patience": 1, "factor": 0.5},
        [0.5, 0.6, 0.55, 0.7, 0.7, 0.7],
    ),
    "factor_0.1": (0.01, {"patience": 1, "verbose": 1}, FLAT),
    "nan_is_no_improvement": (0.5, {"patience": 1, "factor": 0.5}, [1.0, float("nan"), 0.5]),
}


def _run(side, drive, capsys, learning_rate, options, values):
    monitor = options.get("monitor", "val_loss")
    model = side.model(learning_rate)
    callback = side.callbacks.ReduceLROnPlateau(**options)
    seen = drive(callback, model, [{"loss": 1.0, monitor: v} for v in values])
    return (
        [logs["learning_rate"] for logs in seen] + [side.learning_rate(model)],
        (callback.wait, callback.cooldown_counter, callback.best),
        capsys.readouterr().out,
    )


def _rounded(text: str) -> str:
    """The message with each learning rate rounded (Keras keeps it in float32)."""
    return re.sub(r"to ([-+.\de]+)\.", lambda m: f"to {float(m.group(1)):.6g}.", text)


@pytest.mark.keras_compat
@pytest.mark.parametrize("case", CASES)
def test_learning_rate_trajectory_matches_keras(case, kfit_side, keras_side, drive, capsys):
    learning_rate, options, values = CASES[case]
    ours = _run(kfit_side, drive, capsys, learning_rate, options, values)
    theirs = _run(keras_side, drive, capsys, learning_rate, options, values)
    assert ours[0] == pytest.approx(theirs[0], rel=1e-6)
    np.testing.assert_equal(ours[1], theirs[1])
    if learning_rate in (0.5, 1.0):  # binary fractions: Keras's float32 prints the same
        assert ours[2] == theirs[2]
    else:
        assert _rounded(ours[2]) == _rounded(theirs[2])


@pytest.mark.keras_compat
def test_missing_monitor_warns_like_keras(kfit_side, keras_side, drive):
    messages = []
    for side in (kfit_side, keras_side):
        callback = side.callbacks.ReduceLROnPlateau(patience=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            seen = drive(callback, side.model(), [{"loss": 1.0}, {"loss": 1.0}])
        assert [logs["learning_rate"] for logs in seen] == [0.5, 0.5]
        messages.append([str(w.message) for w in caught if "not available" in str(w.message)])
    assert messages[0] == messages[1]
    assert "learning_rate" in messages[0][0]


@pytest.mark.keras_compat
@pytest.mark.parametrize("factor", [1.0, 2.5])
def test_factor_of_one_or_more_is_rejected_like_keras(factor, keras):
    with pytest.raises(ValueError, match="factor"):
        keras.callbacks.ReduceLROnPlateau(factor=factor)
    with pytest.raises(ValueError, match=f"`factor`.*{factor}"):
        ReduceLROnPlateau(factor=factor)


@pytest.mark.parametrize(
    ("argument", "value"),
    [("patience", -1), ("cooldown", 0.5), ("min_lr", -1e-3), ("mode", "lowest")],
)
def test_invalid_argument_is_a_value_error_naming_it(argument, value):
    with pytest.raises(ValueError, match=f"`{argument}`.*{value}"):
        ReduceLROnPlateau(**{argument: value})


def test_unknown_keyword_arguments_are_ignored_with_a_warning():
    with pytest.warns(UserWarning, match="epsilon"):
        callback = ReduceLROnPlateau(epsilon=1e-3)
    assert callback.min_delta == 1e-4


def test_one_instance_is_reset_by_each_fit(kfit_side, drive):
    model = kfit_side.model(0.5)
    callback = ReduceLROnPlateau(patience=2, factor=0.5, cooldown=3)
    drive(callback, model, [{"val_loss": 1.0}] * 3)
    assert callback.cooldown_counter == 3
    drive(callback, model, [{"val_loss": 2.0}])
    assert (callback.cooldown_counter, callback.wait, callback.best) == (0, 0, 2.0)


def test_parameter_groups_keep_their_ratios(drive):
    model = kfit.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    first, second = model.module
    optimizer = torch.optim.SGD(
        [{"params": first.parameters(), "lr": 0.5}, {"params": second.parameters(), "lr": 0.05}]
    )
    model.compile(optimizer=optimizer, loss="mse")
    drive(ReduceLROnPlateau(patience=0, factor=0.5), model, [{"val_loss": 1.0}] * 2)
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.25, 0.025])


def test_fit_logs_the_learning_rate_of_each_epoch(capsys):
    # Zero inputs and targets: the loss stays 0, so every epoch after the first is a plateau.
    model = kfit.Sequential(nn.Linear(3, 1))
    nn.init.zeros_(model.module[0].weight)
    nn.init.zeros_(model.module[0].bias)
    model.compile(optimizer=kfit.optimizers.SGD(learning_rate=0.5), loss="mse")
    zeros = np.zeros((4, 3), dtype=np.float32)
    callback = ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5)
    history = model.fit(zeros, zeros[:, :1], epochs=4, callbacks=[callback], verbose=2)
    assert history.history["learning_rate"] == [0.5, 0.5, 0.25, 0.125]
    assert kfit.optimizers.get_learning_rate(model.optimizer) == 0.0625
    assert "learning_rate: 0.1250" in capsys.readouterr().out
