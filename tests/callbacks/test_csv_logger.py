from __future__ import annotations

import csv
import math
import pathlib

import numpy as np
import pytest
from torch import nn

import kfit
from kfit.callbacks import CSVLogger, LambdaCallback

WITH_VAL = [
    {"loss": 0.5, "mae": 0.25, "val_loss": 0.75, "val_mae": 0.375},
    {"loss": 0.4000000059604645, "mae": 0.2, "val_loss": 0.7, "val_mae": 0.3},
]
WITHOUT_VAL = [{"loss": 0.5, "mae": 0.25}, {"loss": 0.3, "mae": 0.2}]
# Validation only from the second epoch (validation_freq=2): its columns are NA, then values.
VAL_LATER = [{"loss": 0.5}, {"loss": 0.4, "val_loss": 0.6}]
# A key that first appears later has no column.
NEW_KEY_LATER = [{"loss": 0.5, "val_loss": 0.6}, {"loss": 0.4, "val_loss": 0.5, "lr": 0.1}]

SEQUENCES = {
    "with_val": WITH_VAL,
    "without_val": WITHOUT_VAL,
    "val_later": VAL_LATER,
    "new_key_later": NEW_KEY_LATER,
    "empty_logs": [{}, {}],
    "nan": [{"loss": math.nan, "val_loss": math.inf}],
}


class _NoModel:
    """CSVLogger needs no model; `drive` only sets `stop_training` on it."""

    stop_training = False


def _write(callbacks_module, path, sequence, drive, **options):
    callback = callbacks_module.CSVLogger(str(path), **options)
    drive(callback, _NoModel(), sequence)
    return path.read_bytes()


@pytest.mark.keras_compat
@pytest.mark.parametrize("case", SEQUENCES)
@pytest.mark.parametrize("separator", [",", ";"])
def test_file_matches_keras_byte_for_byte(case, separator, keras, drive, tmp_path):
    ours = _write(
        kfit.callbacks, tmp_path / "kfit.csv", SEQUENCES[case], drive, separator=separator
    )
    theirs = _write(
        keras.callbacks, tmp_path / "keras.csv", SEQUENCES[case], drive, separator=separator
    )
    assert ours == theirs


@pytest.mark.keras_compat
@pytest.mark.parametrize("existing", [None, "", "epoch,loss\r\n0,0.1\r\n"])
def test_append_matches_keras(existing, keras, drive, tmp_path):
    files = {}
    for name, module in (("kfit", kfit.callbacks), ("keras", keras.callbacks)):
        path = tmp_path / f"{name}.csv"
        if existing is not None:
            path.write_bytes(existing.encode())
        files[name] = _write(module, path, WITHOUT_VAL, drive, append=True)
    assert files["kfit"] == files["keras"]


@pytest.mark.keras_compat
def test_a_second_fit_overwrites_like_keras(keras, drive, tmp_path):
    files = {}
    for name, module in (("kfit", kfit.callbacks), ("keras", keras.callbacks)):
        path = tmp_path / f"{name}.csv"
        callback = module.CSVLogger(str(path))
        drive(callback, _NoModel(), WITH_VAL)
        drive(callback, _NoModel(), WITHOUT_VAL)
        files[name] = path.read_bytes()
    assert files["kfit"] == files["keras"]


def test_header_and_na_columns(drive, tmp_path):
    path = tmp_path / "log.csv"
    drive(CSVLogger(path), _NoModel(), WITHOUT_VAL)
    assert path.read_text().splitlines() == [
        "epoch,loss,mae,val_loss,val_mae",
        "0,0.5,0.25,NA,NA",
        "1,0.3,0.2,NA,NA",
    ]


def test_vector_values_are_written_as_bracketed_lists(drive, tmp_path):
    path = tmp_path / "log.csv"
    drive(CSVLogger(path), _NoModel(), [{"loss": 0.5, "f1": [0.25, 0.75], "val_loss": 0.5}])
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert rows == [{"epoch": "0", "f1": "[0.25, 0.75]", "loss": "0.5", "val_loss": "0.5"}]


@pytest.mark.parametrize("separator", ["", ";;", 1])
def test_separator_must_be_one_character(separator, tmp_path):
    with pytest.raises(ValueError, match=f"`separator`.*{separator!r}"):
        CSVLogger(tmp_path / "log.csv", separator=separator)


def test_fit_writes_every_epoch_and_flushes_it(tmp_path):
    path = tmp_path / "log.csv"
    lines_at_epoch_start = []
    peek = LambdaCallback(
        on_epoch_begin=lambda epoch, logs: lines_at_epoch_start.append(
            len(path.read_text().splitlines()) if path.exists() else None
        )
    )
    model = kfit.Sequential(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x = np.linspace(-1.0, 1.0, 30, dtype=np.float32).reshape(10, 3)
    history = model.fit(
        x,
        x[:, :1],
        epochs=3,
        validation_split=0.2,
        callbacks=[CSVLogger(pathlib.Path(path)), peek],
        verbose=0,
    )
    assert lines_at_epoch_start == [0, 2, 3]
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    for key, values in history.history.items():
        # repr round-trips: the file holds exactly the logged values.
        assert [float(row[key]) for row in rows] == values
