"""Settings and callbacks that cannot work fail before any weight moves; cleanup runs on errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import kfit
from kfit.callbacks import (
    BackupAndRestore,
    Callback,
    CSVLogger,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)


def _model(**compile_args) -> kfit.Model:
    model = kfit.Sequential(nn.Linear(3, 1))
    compile_args.setdefault("optimizer", "sgd")
    model.compile(loss="mse", device="cpu", **compile_args)
    return model


@pytest.mark.parametrize("value", [math.nan, math.inf, -0.1])
def test_optimizer_refuses_a_learning_rate_that_is_not_finite_and_non_negative(value):
    with pytest.raises(ValueError, match="learning_rate"):
        kfit.optimizers.SGD(learning_rate=value)


@pytest.mark.parametrize("key", ["clipnorm", "clipvalue", "global_clipnorm", "weight_decay"])
def test_optimizer_refuses_nan_settings(key):
    with pytest.raises(ValueError, match=key):
        kfit.optimizers.SGD(**{key: math.nan})


@pytest.mark.parametrize("value", [math.nan, math.inf, [math.nan]])
def test_compile_refuses_non_finite_loss_weights(value):
    with pytest.raises(ValueError, match="loss_weights"):
        _model(loss_weights=value)


def test_nan_from_a_learning_rate_schedule_fails_before_the_first_step(xy):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="finite"):
        model.fit(*xy, epochs=2, verbose=0, callbacks=[LearningRateScheduler(lambda e: math.nan)])
    for key, value in before.items():
        assert torch.equal(model.state_dict()[key], value)


def test_model_checkpoint_refuses_full_state_in_safetensors():
    with pytest.raises(ValueError, match="save_weights_only"):
        ModelCheckpoint("ck.safetensors")
    ModelCheckpoint("ck.safetensors", save_weights_only=True)


def test_backup_and_restore_refuses_an_existing_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="existing file"):
        BackupAndRestore(tmp_path / "f")


class _Boom(Callback):
    def on_train_batch_end(self, batch, logs=None):
        raise RuntimeError("boom")


def test_csv_logger_file_is_closed_when_fit_raises(tmp_path, xy):
    logger = CSVLogger(tmp_path / "log.csv")
    with pytest.raises(RuntimeError, match="boom"):
        _model().fit(*xy, epochs=1, verbose=0, callbacks=[logger, _Boom()])
    assert logger.csv_file.closed


def test_backup_survives_an_exception(tmp_path, xy):
    class BoomAtEpoch1(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("boom")

    backup = BackupAndRestore(tmp_path / "b")
    with pytest.raises(RuntimeError):
        _model().fit(*xy, epochs=3, verbose=0, callbacks=[backup, BoomAtEpoch1()])
    assert (tmp_path / "b" / "latest.pt").exists()


def test_a_nan_stop_keeps_the_last_finite_backup(tmp_path, xy):
    model = _model()

    class NanFromEpoch2(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                with torch.no_grad():
                    model.module[0].weight.fill_(math.nan)

    backup = BackupAndRestore(tmp_path / "b")
    model.fit(*xy, epochs=5, verbose=0, callbacks=[NanFromEpoch2(), TerminateOnNaN(), backup])
    fresh = _model()
    fresh.load(tmp_path / "b" / "latest.pt")
    assert fresh.epochs_completed == 2
    assert all(torch.isfinite(v).all() for v in fresh.state_dict().values())
