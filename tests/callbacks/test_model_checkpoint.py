"""ModelCheckpoint: Keras 3's file names, save decisions and messages; kfit's file formats."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import kfit
from kfit.callbacks.callback import Callback
from kfit.callbacks.model_checkpoint import ModelCheckpoint

needs_safetensors = pytest.mark.skipif(
    importlib.util.find_spec("safetensors") is None, reason="safetensors is not installed"
)


def _model() -> kfit.Model:
    model = kfit.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    model.compile(optimizer="adam", loss="mse", metrics=["mae"], device="cpu")
    return model


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    """Sixteen samples: with validation_split=0.25, three batches of four per epoch."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True)


def _fit(model: kfit.Model, data, callbacks: list[Callback], epochs: int = 3) -> kfit.History:
    return model.fit(
        *data, epochs=epochs, batch_size=4, validation_split=0.25, verbose=0, callbacks=callbacks
    )


# --------------------------------------------------------------------------- against Keras

VAL_LOSS = [0.5, 0.6, 0.4, 0.4, 0.45, 0.3]
VAL_ACCURACY = [0.6, 0.7, 0.65, 0.8, 0.8, 0.9]
BATCH_LOSS = [[0.9, 0.8, 0.85], [0.7, 0.95, 0.75], [0.72, 0.6, 0.9], [0.6, 0.65, 0.5]] * 2
EPOCHS = [
    (
        [{"loss": loss} for loss in BATCH_LOSS[epoch]],
        {"loss": BATCH_LOSS[epoch][-1], "val_loss": val_loss, "val_accuracy": val_accuracy},
    )
    for epoch, (val_loss, val_accuracy) in enumerate(zip(VAL_LOSS, VAL_ACCURACY, strict=True))
]
EPOCH_TEMPLATE = "ckpt-{epoch:02d}-{val_loss:.4f}"
BATCH_TEMPLATE = "ckpt-{epoch:02d}-{batch:02d}-{loss:.3f}"

# name: (template, ModelCheckpoint arguments)
KERAS_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "every_epoch": (EPOCH_TEMPLATE, {}),
    "best_val_loss": (EPOCH_TEMPLATE, {"save_best_only": True}),
    "best_val_accuracy_max": (
        EPOCH_TEMPLATE,
        {"save_best_only": True, "monitor": "val_accuracy", "mode": "max"},
    ),
    "val_accuracy_in_min_mode": (
        EPOCH_TEMPLATE,
        {"save_best_only": True, "monitor": "val_accuracy", "mode": "min"},
    ),
    "threshold_min": (EPOCH_TEMPLATE, {"save_best_only": True, "initial_value_threshold": 0.45}),
    "threshold_max": (
        EPOCH_TEMPLATE,
        {
            "save_best_only": True,
            "monitor": "val_accuracy",
            "mode": "max",
            "initial_value_threshold": 0.75,
        },
    ),
    "threshold_never_beaten": (
        EPOCH_TEMPLATE,
        {"save_best_only": True, "initial_value_threshold": 0.1},
    ),
    "missing_monitor": (
        EPOCH_TEMPLATE,
        {"save_best_only": True, "monitor": "val_missing", "mode": "min"},
    ),
    "fixed_name_best_only": ("best", {"save_best_only": True}),
    "every_two_batches": (BATCH_TEMPLATE, {"save_freq": 2}),
    "every_two_batches_best_loss": (
        BATCH_TEMPLATE,
        {"save_freq": 2, "save_best_only": True, "monitor": "loss"},
    ),
}


def _drive(callback: Any, model: Any) -> None:
    """Runs `callback` through the scripted batches and epochs of `EPOCHS`, as `fit` does."""
    callback.set_model(model)
    callback.set_params({"verbose": 0, "epochs": len(EPOCHS), "steps": 3})
    callback.on_train_begin({})
    for epoch, (batches, logs) in enumerate(EPOCHS):
        callback.on_epoch_begin(epoch, {})
        for batch, batch_logs in enumerate(batches):
            callback.on_train_batch_begin(batch, {})
            callback.on_train_batch_end(batch, dict(batch_logs))
        callback.on_epoch_end(epoch, dict(logs))
    callback.on_train_end(dict(EPOCHS[-1][1]))


def _run(callback: Any, model: Any, folder: Path, capsys, monkeypatch):
    """Drives `callback` in `folder`; returns the files written and what was printed."""
    folder.mkdir()
    monkeypatch.chdir(folder)
    capsys.readouterr()
    _drive(callback, model)
    return sorted(os.listdir(folder)), capsys.readouterr().out


@pytest.mark.keras_compat
@pytest.mark.filterwarnings("ignore:Can save best model only")
# Keras's torch backend converts tensors with np.array(x), which NumPy 2 warns about.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")
@pytest.mark.parametrize("case", KERAS_CASES.values(), ids=KERAS_CASES.keys())
def test_files_and_messages_match_keras(keras, tmp_path, capsys, monkeypatch, case):
    template, kwargs = case
    keras_model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    keras_model.compile(optimizer="sgd", loss="mse")
    keras_callback = keras.callbacks.ModelCheckpoint(
        f"{template}.weights.h5", save_weights_only=True, verbose=1, **kwargs
    )
    kfit_callback = ModelCheckpoint(f"{template}.pt", save_weights_only=True, verbose=1, **kwargs)

    keras_files, keras_out = _run(
        keras_callback, keras_model, tmp_path / "keras", capsys, monkeypatch
    )
    kfit_files, kfit_out = _run(kfit_callback, _model(), tmp_path / "kfit", capsys, monkeypatch)
    assert [f.removesuffix(".pt") for f in kfit_files] == [
        f.removesuffix(".weights.h5") for f in keras_files
    ]
    assert kfit_out == keras_out.replace(".weights.h5", ".pt")
    assert kfit_callback.best == keras_callback.best


# --------------------------------------------------------------------------- messages


def test_verbose_messages(tmp_path, capsys):
    callback = ModelCheckpoint(tmp_path / "best.pt", save_best_only=True, verbose=1)
    callback.set_model(_model())
    for epoch, val_loss in enumerate([0.5, 0.7]):
        callback.on_epoch_end(epoch, {"val_loss": val_loss})
    path = tmp_path / "best.pt"
    assert capsys.readouterr().out == (
        f"\nEpoch 1: val_loss improved from None to 0.50000, saving model to {path}\n"
        f"\nEpoch 1: finished saving model to {path}\n"
        "\nEpoch 2: val_loss did not improve from 0.50000\n"
    )


def test_silent_by_default(tmp_path, capsys):
    callback = ModelCheckpoint(tmp_path / "model.pt")
    callback.set_model(_model())
    callback.on_epoch_end(0, {"val_loss": 0.5})
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------- during fit


def test_full_checkpoint_is_a_training_state_that_load_restores(tmp_path, data):
    model = _model()
    _fit(model, data, [ModelCheckpoint(tmp_path / "ckpt-{epoch}.pt")])
    restored = _model()
    restored.load(tmp_path / "ckpt-3.pt")
    assert restored.epochs_completed == 3
    for key, value in model.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key


@pytest.mark.parametrize("suffix", [".pt", pytest.param(".safetensors", marks=needs_safetensors)])
def test_weights_only_checkpoint_loads_with_load_weights(tmp_path, data, suffix):
    model = _model()
    path = tmp_path / f"weights{suffix}"
    _fit(model, data, [ModelCheckpoint(path, save_weights_only=True)])
    restored = _model()
    restored.load_weights(path)
    for key, value in model.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key


def test_save_freq_counts_batches_across_epochs(tmp_path, data):
    callback = ModelCheckpoint(tmp_path / "{epoch}-{batch}.pt", save_freq=2, save_weights_only=True)
    _fit(_model(), data, [callback])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1-2.pt", "2-1.pt", "2-3.pt", "3-2.pt"]


def test_best_only_file_holds_the_weights_of_the_best_epoch(tmp_path):
    model, path = _model(), tmp_path / "best.pt"
    callback = ModelCheckpoint(path, save_best_only=True)
    callback.set_model(model)
    for epoch, val_loss in enumerate([0.5, 0.3, 0.4]):
        with torch.no_grad():
            for tensor in model.state_dict().values():
                tensor.fill_(epoch)  # the weights say which epoch they come from
        callback.on_epoch_end(epoch, {"val_loss": val_loss})
    restored = _model()
    restored.load(path)
    assert all(torch.all(t == 1) for t in restored.state_dict().values())


def test_unknown_monitor_is_fine_when_every_epoch_is_saved(tmp_path, data):
    _fit(_model(), data, [ModelCheckpoint(tmp_path / "m.pt", monitor="val_custom")])
    assert (tmp_path / "m.pt").exists()


def test_unknown_monitor_direction_raises_with_save_best_only(tmp_path, data):
    callback = ModelCheckpoint(tmp_path / "m.pt", monitor="custom", save_best_only=True)
    callback.set_model(_model())
    with pytest.raises(ValueError, match="pass mode='min' or mode='max'"):
        callback.on_epoch_end(0, {"custom": 1.0})


def test_missing_monitor_warns_and_saves(tmp_path):
    callback = ModelCheckpoint(tmp_path / "m.pt", monitor="val_loss", save_best_only=True)
    callback.set_model(_model())
    with pytest.warns(UserWarning, match="Can save best model only with val_loss available"):
        callback.on_epoch_end(0, {"loss": 1.0})
    assert (tmp_path / "m.pt").exists()


# --------------------------------------------------------------------------- errors


def test_filepath_key_missing_from_logs_raises_key_error(tmp_path):
    callback = ModelCheckpoint(tmp_path / "{val_acc:.2f}.pt")
    callback.set_model(_model())
    with pytest.raises(KeyError, match="no value for 'val_acc'"):
        callback.on_epoch_end(0, {"val_loss": 0.5})


def test_filepath_naming_a_directory_raises_before_training(tmp_path):
    with pytest.raises(IsADirectoryError, match="must name a file"):
        ModelCheckpoint(tmp_path)


def test_filepath_formatted_into_a_directory_raises(tmp_path):
    (tmp_path / "ck-1").mkdir()
    callback = ModelCheckpoint(str(tmp_path / "ck-{epoch}"))
    callback.set_model(_model())
    with pytest.raises(IsADirectoryError, match="must name a file"):
        callback.on_epoch_end(0, {"val_loss": 0.5})


@pytest.mark.parametrize("save_freq", ["batch", 0, -2, True, 1.5])
def test_invalid_save_freq_raises(save_freq):
    with pytest.raises(ValueError, match="`save_freq` must be 'epoch' or an integer"):
        ModelCheckpoint("m.pt", save_freq=save_freq)


def test_invalid_mode_raises():
    with pytest.raises(ValueError, match="`mode` must be 'auto', 'min' or 'max'"):
        ModelCheckpoint("m.pt", mode="maximum")


@pytest.mark.parametrize(("save_freq", "per_batch"), [("epoch", False), (3, True)])
def test_batch_hook_is_dispatched_only_for_batch_frequency_saves(tmp_path, save_freq, per_batch):
    from kfit.callbacks.callback_list import CallbackList

    for callback in (
        kfit.callbacks.ModelCheckpoint(str(tmp_path / "m.pt"), save_freq=save_freq),
        kfit.callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=save_freq),
    ):
        assert CallbackList([callback], None, {}).wants("on_train_batch_end") is per_batch
