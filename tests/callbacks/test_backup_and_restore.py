"""BackupAndRestore: a killed or interrupted fit resumes exactly where its backup left it."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import kfit
from kfit.callbacks.backup_and_restore import BackupAndRestore
from kfit.callbacks.callback import Callback

REPO_ROOT = Path(kfit.__file__).resolve().parents[1]
EPOCHS = 6


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    """Twelve samples: three batches of four per epoch."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32))


def _model() -> kfit.Model:
    model = kfit.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 1))
    model.compile(optimizer="adam", loss="mse", device="cpu")
    return model


def _fit(model: kfit.Model, data, callbacks, epochs: int = EPOCHS) -> kfit.History:
    return model.fit(*data, epochs=epochs, batch_size=4, verbose=0, callbacks=callbacks)


class _FailAfterEpoch(Callback):
    """Raises once epoch `epoch` (0-based) has ended and been backed up (BackupAndRestore's
    hooks run after every other callback's, so an error in `on_epoch_end` would come first)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch + 1:
            raise RuntimeError("simulated crash")


def _crash_after(data, backup: BackupAndRestore, epoch: int) -> None:
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(_model(), data, [backup, _FailAfterEpoch(epoch)])


def _epochs_in(path: Path) -> int:
    model = _model()
    model.load(path)
    return model.epochs_completed


# --------------------------------------------------------------------------- killed process

_TRAINER = """
import json
import os
import signal
import sys
import traceback

import numpy as np
import torch
from torch import nn

import kfit
from kfit.callbacks.backup_and_restore import BackupAndRestore


class KillAfter(kfit.callbacks.Callback):
    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        if self.epochs and epoch == self.epochs:  # after `epochs` epochs were backed up
            os.kill(os.getpid(), signal.SIGKILL)


def train(backup_dir, out_dir, kill_after):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)
    model = kfit.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 1))
    model.compile(optimizer="adam", loss="mse", metrics=["mae"], device="cpu")
    history = model.fit(
        x,
        y,
        epochs=6,
        batch_size=8,
        shuffle=True,
        validation_split=0.2,
        verbose=0,
        callbacks=[BackupAndRestore(backup_dir), KillAfter(int(kill_after))],
    )
    model.save_weights(os.path.join(out_dir, "weights.pt"))
    with open(os.path.join(out_dir, "epochs.json"), "w") as file:
        json.dump(history.epoch, file)


# Imports once (seconds: torch.optim imports torch._dynamo on first use), then runs each
# request in a fresh forked process.
torch.optim.Adam([torch.zeros(1, requires_grad=True)])
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        try:
            train(*line.split())
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
os._exit(0)  # skips the interpreter's teardown of torch (seconds)
"""


class _Trainer:
    """A Python process that runs the training script above in a new child per request."""

    def __init__(self, tmp_path: Path):
        script = tmp_path / "trainer.py"
        script.write_text(_TRAINER)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *sys.path])}
        self.tmp_path = tmp_path
        self.process = subprocess.Popen(
            [sys.executable, str(script)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, backup: str, out: str, kill_after: int = 0) -> int:
        """Trains in a new process; returns its exit code (-9: killed by SIGKILL)."""
        (self.tmp_path / out).mkdir()
        self.process.stdin.write(f"{self.tmp_path / backup} {self.tmp_path / out} {kill_after}\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


@pytest.fixture
def trainer(tmp_path):
    trainer = _Trainer(tmp_path)
    yield trainer
    trainer.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork and SIGKILL")
def test_killed_fit_resumes_to_the_same_weights_as_an_uninterrupted_fit(tmp_path, trainer):
    assert trainer.run("reference_backup", "reference") == 0
    assert trainer.run("backup", "killed", kill_after=3) == -signal.SIGKILL
    assert not (tmp_path / "killed" / "weights.pt").exists()
    assert _epochs_in(tmp_path / "backup" / "latest.pt") == 3
    assert trainer.run("backup", "resumed") == 0

    # The resumed run's History holds every epoch, the three restored ones included.
    assert json.loads((tmp_path / "resumed" / "epochs.json").read_text()) == [0, 1, 2, 3, 4, 5]
    expected = torch.load(tmp_path / "reference" / "weights.pt", weights_only=True)
    actual = torch.load(tmp_path / "resumed" / "weights.pt", weights_only=True)
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key
    assert not (tmp_path / "backup").exists()  # the resumed run finished: backup deleted


# --------------------------------------------------------------------------- resuming


def test_fit_resumes_after_the_last_backed_up_epoch(tmp_path, data):
    backup = BackupAndRestore(tmp_path / "backup")
    _crash_after(data, backup, epoch=2)
    ran = []

    class Record(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            ran.append(epoch)

    history = _fit(_model(), data, [backup, Record()])
    assert ran == [3, 4, 5]
    assert history.epoch == [0, 1, 2, 3, 4, 5]  # the restored epochs are kept


def test_restore_loads_the_backed_up_weights(tmp_path, data):
    backup = BackupAndRestore(tmp_path / "backup")
    crashed = _model()
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(crashed, data, [backup, _FailAfterEpoch(1)])
    restored = {}

    class Snapshot(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            restored.setdefault(epoch, copy.deepcopy(self.model.state_dict()))

    _fit(_model(), data, [backup, Snapshot()])
    assert list(restored) == [2, 3, 4, 5]
    for key, value in crashed.state_dict().items():
        assert torch.equal(restored[2][key], value), key


def test_backup_holds_the_epochs_completed(tmp_path, data):
    backup = BackupAndRestore(tmp_path / "backup")
    _crash_after(data, backup, epoch=3)
    assert _epochs_in(tmp_path / "backup" / "latest.pt") == 4


# --------------------------------------------------------------------------- deleting


def test_backup_is_deleted_when_fit_finishes(tmp_path, data):
    _fit(_model(), data, [BackupAndRestore(tmp_path / "backup")])
    assert not (tmp_path / "backup").exists()


def test_backup_is_deleted_when_a_callback_stops_training(tmp_path, data):
    class StopAfterTwo(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = epoch == 1

    history = _fit(_model(), data, [BackupAndRestore(tmp_path / "backup"), StopAfterTwo()])
    assert history.epoch == [0, 1]
    assert not (tmp_path / "backup").exists()


def test_backup_is_kept_with_delete_checkpoint_false(tmp_path, data):
    backup = BackupAndRestore(tmp_path / "backup", delete_checkpoint=False)
    _fit(_model(), data, [backup])
    assert _epochs_in(tmp_path / "backup" / "latest.pt") == EPOCHS


def test_only_the_backup_files_are_deleted(tmp_path, data):
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "notes.txt").write_text("keep me")
    _fit(_model(), data, [BackupAndRestore(tmp_path / "backup")])
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["notes.txt"]


def test_backup_is_kept_after_an_exception(tmp_path, data):
    _crash_after(data, BackupAndRestore(tmp_path / "backup"), epoch=1)
    assert (tmp_path / "backup" / "latest.pt").exists()


# --------------------------------------------------------------------------- Ctrl-C


class _CtrlCInEpoch(Callback):
    """Sends SIGINT to this process after the first batch of `epoch`; records what follows."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch
        self.current_epoch = -1
        self.batches_after_signal = 0
        self.signalled = False
        self.train_end_calls = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.batches_after_signal += self.signalled

    def on_train_batch_end(self, batch, logs=None):
        if self.current_epoch == self.epoch and not self.signalled:
            self.signalled = True
            os.kill(os.getpid(), signal.SIGINT)

    def on_train_end(self, logs=None):
        self.train_end_calls += 1


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs SIGINT")
def test_ctrl_c_stops_fit_after_the_current_batch(data):
    model, ctrl_c = _model(), _CtrlCInEpoch(epoch=2)
    with pytest.raises(KeyboardInterrupt):
        _fit(model, data, [ctrl_c])
    assert ctrl_c.signalled
    assert ctrl_c.batches_after_signal == 0
    assert ctrl_c.train_end_calls == 1
    assert model.history.epoch == [0, 1]
    assert all(len(values) == 2 for values in model.history.history.values())
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs SIGINT")
def test_backup_is_kept_after_ctrl_c(tmp_path, data):
    backup = BackupAndRestore(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        _fit(_model(), data, [backup, _CtrlCInEpoch(epoch=2)])
    assert _epochs_in(tmp_path / "backup" / "latest.pt") == 2


# --------------------------------------------------------------------------- double checkpoint


def test_double_checkpoint_keeps_the_previous_backup(tmp_path, data):
    _crash_after(data, BackupAndRestore(tmp_path / "backup", double_checkpoint=True), epoch=3)
    assert _epochs_in(tmp_path / "backup" / "latest.pt") == 4
    assert _epochs_in(tmp_path / "backup" / "previous.pt") == 3


def test_double_checkpoint_restores_the_previous_backup_when_the_latest_is_corrupt(tmp_path, data):
    backup = BackupAndRestore(tmp_path / "backup", double_checkpoint=True)
    _crash_after(data, backup, epoch=3)
    latest = tmp_path / "backup" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:100])
    with pytest.warns(UserWarning, match="restoring the previous backup"):
        history = _fit(_model(), data, [backup])
    assert history.epoch == [0, 1, 2, 3, 4, 5]


def test_double_checkpoint_restores_the_previous_backup_when_the_latest_is_missing(tmp_path, data):
    backup = BackupAndRestore(tmp_path / "backup", double_checkpoint=True)
    _crash_after(data, backup, epoch=3)
    (tmp_path / "backup" / "latest.pt").unlink()
    assert _fit(_model(), data, [backup]).epoch == [0, 1, 2, 3, 4, 5]


def test_corrupt_backup_raises_without_double_checkpoint(tmp_path, data):
    backup = BackupAndRestore(tmp_path / "backup")
    _crash_after(data, backup, epoch=3)
    latest = tmp_path / "backup" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:100])
    with pytest.raises((OSError, EOFError, RuntimeError, ValueError)):  # what torch.load raises
        _fit(_model(), data, [backup])


# --------------------------------------------------------------------------- batch frequency


def test_batch_backup_restarts_the_interrupted_epoch_from_the_last_saved_weights(tmp_path, data):
    saved, restored = {}, {}

    class CrashMidEpoch(Callback):
        """Snapshots the weights at the batch-4 save, then crashes two batches later."""

        def __init__(self):
            super().__init__()
            self.batches = 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if self.batches == 4:
                saved.update(copy.deepcopy(self.model.state_dict()))
            if self.batches == 6:
                raise RuntimeError("simulated crash")

    class Snapshot(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            restored.setdefault(epoch, copy.deepcopy(self.model.state_dict()))

    backup = BackupAndRestore(tmp_path / "backup", save_freq=4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(_model(), data, [backup, CrashMidEpoch()])
    _fit(_model(), data, [backup, Snapshot()])
    assert list(restored) == [1, 2, 3, 4, 5]  # epoch 1 (batches 3 to 5) starts again
    for key, value in saved.items():
        assert torch.equal(restored[1][key], value), key


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backup_dir": ""}, "`backup_dir` must name a folder"),
        ({"backup_dir": "b", "save_freq": "batch"}, "`save_freq` must be 'epoch' or"),
        ({"backup_dir": "b", "save_freq": 0}, "`save_freq` must be 'epoch' or"),
        ({"backup_dir": "b", "save_freq": True}, "`save_freq` must be 'epoch' or"),
    ],
    ids=["empty_dir", "batch_string", "zero", "bool"],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BackupAndRestore(**kwargs)
