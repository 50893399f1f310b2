"""A resumed fit loses nothing: History of every epoch, and the callbacks' memory restored."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import kfit
from kfit.callbacks import (
    BackupAndRestore,
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
    TorchScheduler,
)

EPOCHS = 6


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3)).astype(np.float32)
    return x, x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)


def _model(**compile_kwargs) -> kfit.Model:
    torch.manual_seed(0)
    model = kfit.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    model.compile(**{"optimizer": "sgd", "loss": "mse", "device": "cpu", **compile_kwargs})
    return model


class _Scores(Callback):
    """Logs `score` = `values[epoch]` at each epoch's end (before the callbacks after it)."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.values[epoch]


class _CrashAt(Callback):
    """Raises `error` at the start of epoch `epoch` (once the epochs before it are backed up)."""

    def __init__(self, epoch: int, error: BaseException | None = None):
        super().__init__()
        self.epoch = epoch
        self.error = error or RuntimeError("simulated crash")

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise self.error


def _fit(model, data, callbacks, epochs=EPOCHS):
    return model.fit(*data, epochs=epochs, batch_size=4, verbose=0, callbacks=callbacks)


def _interrupted_then_resumed(data, make_callbacks, crash_epoch, tmp_path, **compile_kwargs):
    """Runs with a crash at `crash_epoch`, then resumes; returns (model, History, callbacks)."""
    backup = BackupAndRestore(tmp_path / "backup")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(_model(**compile_kwargs), data, [*make_callbacks(), backup, _CrashAt(crash_epoch)])
    callbacks = make_callbacks()
    model = _model(**compile_kwargs)
    history = _fit(model, data, [*callbacks, backup])
    return model, history, callbacks


def _assert_same_history(actual: kfit.History, expected: kfit.History) -> None:
    assert actual.epoch == expected.epoch
    assert list(actual.history) == list(expected.history)
    for key, values in expected.history.items():
        np.testing.assert_allclose(actual.history[key], values, rtol=1e-6, err_msg=key)


# --------------------------------------------------------------------------- History


def test_resumed_history_equals_an_uninterrupted_one(tmp_path, data):
    def callbacks():
        return [ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5)]

    reference_model = _model(metrics=["mae"])
    reference = _fit(reference_model, data, callbacks())
    model, history, _ = _interrupted_then_resumed(data, callbacks, 3, tmp_path, metrics=["mae"])
    _assert_same_history(history, reference)
    assert model.history is history
    assert history.to_dataframe().index.tolist() == [1, 2, 3, 4, 5, 6]
    for key, value in reference_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_each_backup_holds_its_own_epoch_in_history(tmp_path, data):
    backup = BackupAndRestore(tmp_path / "backup", delete_checkpoint=False)
    _fit(_model(), data, [backup], epochs=3)
    saved = _model()
    saved.load(tmp_path / "backup" / "latest.pt")
    assert saved.history.epoch == [0, 1, 2]
    assert len(saved.history.history["loss"]) == 3


def test_a_first_epoch_interruption_resumes_from_the_starting_state(tmp_path, data):
    reference = _model()
    reference_history = _fit(reference, data, [])

    class CrashInFirstEpoch(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                raise KeyboardInterrupt

    backup = BackupAndRestore(tmp_path / "backup")
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        _fit(model, data, [backup, CrashInFirstEpoch()])
    history = _fit(model, data, [backup])  # the same model: its weights moved two steps
    _assert_same_history(history, reference_history)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)


# --------------------------------------------------------------------------- callbacks' memory


def test_resumed_checkpoint_does_not_overwrite_a_better_best_file(tmp_path, data):
    best = tmp_path / "best.pt"

    def callbacks():
        return [
            _Scores([0.5, 0.1, 0.3, 0.2, 0.4, 0.6]),
            ModelCheckpoint(best, monitor="score", mode="min", save_best_only=True),
        ]

    _, _, (_, checkpoint) = _interrupted_then_resumed(data, callbacks, 2, tmp_path)
    assert checkpoint.best == pytest.approx(0.1)
    saved = _model()
    saved.load(best)
    assert saved.epochs_completed == 2  # the file of epoch 2 (score 0.1) was kept


def test_resumed_early_stopping_stops_where_an_uninterrupted_run_stops(tmp_path, data):
    scores = [0.5, 0.4, 0.45, 0.46, 0.47, 0.48]

    def callbacks():
        return [
            _Scores(scores),
            EarlyStopping(monitor="score", mode="min", patience=2, restore_best_weights=True),
        ]

    reference_callbacks = callbacks()
    reference_model = _model()
    reference = _fit(reference_model, data, reference_callbacks)
    assert reference.epoch == [0, 1, 2, 3]
    model, history, (_, stopping) = _interrupted_then_resumed(data, callbacks, 3, tmp_path)
    assert history.epoch == reference.epoch
    assert stopping.stopped_epoch == 3
    assert stopping.best_epoch == 1
    for key, value in reference_model.state_dict().items():  # the best epoch's weights
        torch.testing.assert_close(model.state_dict()[key], value)


def test_resumed_reduce_lr_on_plateau_keeps_its_wait_and_cooldown(tmp_path, data):
    scores = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]

    def callbacks():
        return [
            _Scores(scores),
            ReduceLROnPlateau(monitor="score", mode="min", patience=2, cooldown=1, factor=0.5),
        ]

    reference = _fit(_model(), data, callbacks())
    _, history, (_, reduce) = _interrupted_then_resumed(data, callbacks, 2, tmp_path)
    assert history.history["learning_rate"] == reference.history["learning_rate"]
    assert reduce.wait == 1
    assert reduce.best == 0.5


def test_resumed_compile_lr_scheduler_continues_its_schedule(tmp_path, data):
    def step_lr(optimizer):
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)

    reference = _fit(_model(lr_scheduler=step_lr), data, [])
    _, history, _ = _interrupted_then_resumed(data, list, 3, tmp_path, lr_scheduler=step_lr)
    expected = [0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025]
    assert reference.history["learning_rate"] == pytest.approx(expected)
    assert history.history["learning_rate"] == pytest.approx(expected)


# --------------------------------------------------------------------------- NaN


def test_a_nan_stop_keeps_the_backup_and_the_resumed_run_matches(tmp_path, data):
    class Poison(Callback):
        """Turns the first layer's weights NaN at the start of epoch 2 of the first run."""

        armed = True

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2 and self.armed:
                with torch.no_grad():
                    self.model.module[0].weight.fill_(math.nan)

    reference = _fit(_model(), data, [])
    backup, poison, model = BackupAndRestore(tmp_path / "backup"), Poison(), _model()
    stopped = _fit(model, data, [poison, TerminateOnNaN(), backup])
    assert math.isnan(stopped.history["loss"][-1])
    assert (tmp_path / "backup" / "latest.pt").exists()
    poison.armed = False
    history = _fit(model, data, [poison, TerminateOnNaN(), backup])
    _assert_same_history(history, reference)
    assert not (tmp_path / "backup").exists()  # a clean finish deletes it


def test_a_batch_save_after_a_nan_batch_is_skipped(tmp_path, data):
    class PoisonAtStep(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0 and self.model.epochs_completed == 1:
                with torch.no_grad():
                    self.model.module[0].weight.fill_(math.nan)

    backup = BackupAndRestore(tmp_path / "backup", save_freq=1)
    model = _model()
    _fit(model, data, [PoisonAtStep(), TerminateOnNaN(), backup])
    saved = _model()
    saved.load(tmp_path / "backup" / "latest.pt")
    assert all(torch.isfinite(v).all() for v in saved.state_dict().values())


# --------------------------------------------------------------------------- state_dict


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: ModelCheckpoint(tmp / "m.pt", "loss", save_best_only=True, save_freq=2),
        lambda tmp: EarlyStopping(monitor="loss", restore_best_weights=True),
        lambda tmp: ReduceLROnPlateau(monitor="loss"),
    ],
    ids=["ModelCheckpoint", "EarlyStopping", "ReduceLROnPlateau"],
)
def test_state_dict_round_trips_through_a_saved_file(tmp_path, data, make):
    model = _model()
    trained = make(tmp_path)
    _fit(model, data, [_Scores([0.3, 0.2, 0.4]), trained], epochs=3)
    model.save(tmp_path / "state.pt", callbacks=[trained])
    fresh = make(tmp_path)
    fresh.set_model(model)
    model.load(tmp_path / "state.pt", callbacks=[fresh])
    expected, actual = trained.state_dict(), fresh.state_dict()
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, dict):
            for name, tensor in value.items():
                torch.testing.assert_close(actual[key][name], tensor)
        else:
            assert actual[key] == value, key


def test_torch_scheduler_state_round_trips(tmp_path, data):
    model = _model()
    scheduler = TorchScheduler(lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1, 0.5))
    _fit(model, data, [scheduler], epochs=3)
    model.save(tmp_path / "state.pt", callbacks=[scheduler])
    fresh = TorchScheduler(lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1, 0.5))
    model.load(tmp_path / "state.pt", callbacks=[fresh])  # built at the next on_train_begin
    assert fresh.state_dict()["scheduler"]["last_epoch"] == 3
    history = _fit(model, data, [fresh], epochs=4)
    assert fresh.scheduler.last_epoch == 7
    assert history.history["learning_rate"][0] == pytest.approx(0.01 * 0.5**3)


def test_a_state_that_does_not_fit_changes_nothing(tmp_path, data):
    model = _model()
    checkpoint = ModelCheckpoint(tmp_path / "m.pt", monitor="loss", save_best_only=True)
    stopping = EarlyStopping(monitor="loss")
    _fit(model, data, [checkpoint, stopping], epochs=2)
    model.save(tmp_path / "state.pt", callbacks=[checkpoint, stopping])
    fresh_checkpoint = ModelCheckpoint(tmp_path / "m.pt", monitor="loss", save_best_only=True)
    fresh_checkpoint.best = 123.0
    # A ReduceLROnPlateau under EarlyStopping's key: its state does not fit.
    other = _model()
    before = {k: v.clone() for k, v in other.state_dict().items()}
    impostor = ReduceLROnPlateau(monitor="loss")
    impostor.wait = 7
    saved = kfit.saving.load_tensors(tmp_path / "state.pt")
    saved["callbacks"]["ReduceLROnPlateau"] = saved["callbacks"].pop("EarlyStopping")
    saved["callbacks"]["ReduceLROnPlateau"].pop("wait")
    torch.save(saved, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt.*ReduceLROnPlateau.*'wait'"):
        other.load(tmp_path / "bad.pt", callbacks=[fresh_checkpoint, impostor])
    assert fresh_checkpoint.best == 123.0  # loaded first, then put back
    assert impostor.wait == 7
    for key, value in before.items():
        assert torch.equal(other.state_dict()[key], value)


def test_a_callback_without_saved_state_starts_afresh_with_a_warning(tmp_path, data):
    model = _model()
    _fit(model, data, [], epochs=1)
    model.save(tmp_path / "state.pt")
    with pytest.warns(UserWarning, match=r"no saved state for the callbacks \['EarlyStopping'\]"):
        model.load(tmp_path / "state.pt", callbacks=[EarlyStopping(monitor="loss")])


def test_backup_and_restore_runs_after_the_other_callbacks(tmp_path, data):
    order = []

    class Record(Callback):
        def on_epoch_end(self, epoch, logs=None):
            order.append("record")

    class RecordingBackup(BackupAndRestore):
        def on_epoch_end(self, epoch, logs=None):
            order.append("backup")
            super().on_epoch_end(epoch, logs)

    _fit(_model(), data, [RecordingBackup(tmp_path / "b"), Record()], epochs=1)
    assert order == ["record", "backup"]
