"""Weights and full training state on disk: round trips, refused files and atomic writes."""

from __future__ import annotations

import builtins
import importlib.util
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import kfit
from kfit import saving
from kfit.callbacks.backup_and_restore import BackupAndRestore

needs_safetensors = pytest.mark.skipif(
    importlib.util.find_spec("safetensors") is None, reason="safetensors is not installed"
)
WEIGHT_SUFFIXES = [".pt", pytest.param(".safetensors", marks=needs_safetensors)]


def _model(hidden: int = 4, dropout: float = 0.0) -> kfit.Model:
    model = kfit.Sequential(
        nn.Linear(3, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
    )
    model.compile(optimizer="adam", loss="mse", metrics=["mae"], device="cpu")
    return model


def _assert_same_tensors(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key


@pytest.fixture
def trained(xy) -> kfit.Model:
    """A model trained for two epochs with Adam (so the optimizer has state)."""
    model = _model()
    model.fit(*xy, epochs=2, batch_size=4, verbose=0)
    return model


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize("suffix", WEIGHT_SUFFIXES)
def test_load_weights_restores_what_save_weights_wrote(tmp_path, trained, suffix):
    path = tmp_path / f"weights{suffix}"
    trained.save_weights(path)
    fresh = _model()
    fresh.load_weights(path)
    _assert_same_tensors(fresh.state_dict(), trained.state_dict())


@needs_safetensors
def test_safetensors_suffix_writes_the_safetensors_format(tmp_path, trained):
    from safetensors.torch import load_file

    trained.save_weights(tmp_path / "weights.safetensors")
    _assert_same_tensors(load_file(tmp_path / "weights.safetensors"), trained.module.state_dict())


def test_load_weights_reads_the_weights_of_a_full_training_state(tmp_path, trained):
    trained.save(tmp_path / "state.pt")
    fresh = _model()
    fresh.load_weights(tmp_path / "state.pt")
    _assert_same_tensors(fresh.state_dict(), trained.state_dict())


OTHER_ARCHITECTURE_ERROR = (
    r"2 missing keys \['module.1.bias', 'module.1.weight'\]; "
    r"2 unexpected keys \['module.3.bias', 'module.3.weight'\]; "
    r"2 mismatched shapes \['module.0.bias: file \(4,\) vs model \(5,\)', "
    r"'module.0.weight: file \(4, 3\) vs model \(5, 3\)'\]"
)


@pytest.mark.parametrize(
    ("suffix", "save", "load"),
    [
        (".pt", kfit.Model.save_weights, kfit.Model.load_weights),
        pytest.param(
            ".safetensors",
            kfit.Model.save_weights,
            kfit.Model.load_weights,
            marks=needs_safetensors,
        ),
        (".pt", kfit.Model.save, kfit.Model.load),
    ],
    ids=["load_weights", "load_weights_safetensors", "load"],
)
def test_loading_another_architecture_lists_the_differing_keys(
    tmp_path, trained, suffix, save, load, take_snapshot, assert_unchanged
):
    path = tmp_path / f"other{suffix}"
    save(trained, path)  # module.0: Linear(3, 4), module.3: Linear(4, 1)
    other = kfit.Sequential(nn.Linear(3, 5), nn.Linear(5, 1))
    other.compile(optimizer="adam", loss="mse", device="cpu")
    before = take_snapshot(other)
    with pytest.raises(ValueError, match=OTHER_ARCHITECTURE_ERROR):
        load(other, path)
    assert_unchanged(other, before)


# --------------------------------------------------------------------------- full state


def test_load_restores_weights_and_optimizer_state(tmp_path, trained):
    trained.save(tmp_path / "state.pt")
    fresh = _model()
    fresh.load(tmp_path / "state.pt")
    _assert_same_tensors(fresh.state_dict(), trained.state_dict())
    saved, loaded = trained.optimizer.state_dict(), fresh.optimizer.state_dict()
    assert loaded["param_groups"] == saved["param_groups"]
    assert loaded["state"].keys() == saved["state"].keys()
    for index, state in saved["state"].items():
        _assert_same_tensors(loaded["state"][index], state)


def test_load_restores_epochs_completed_and_history(tmp_path, trained):
    trained.save(tmp_path / "state.pt")
    fresh = _model()
    fresh.load(tmp_path / "state.pt")
    assert fresh.epochs_completed == 2
    assert fresh.history.history == trained.history.history
    assert fresh.history.epoch == [0, 1]


def test_load_restores_the_random_generators(tmp_path, trained):
    trained.save(tmp_path / "state.pt")
    expected = (torch.rand(3), np.random.random(3), [random.random() for _ in range(3)])
    fresh = _model()  # draws its initial weights: the generators move on
    fresh.load(tmp_path / "state.pt")
    assert torch.equal(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.random(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]


def test_fit_after_load_continues_exactly_like_an_uninterrupted_fit(tmp_path, xy):
    def train(model: kfit.Model, epochs: int, initial_epoch: int = 0) -> None:
        model.fit(*xy, epochs=epochs, initial_epoch=initial_epoch, batch_size=4, verbose=0)

    torch.manual_seed(1)
    reference = _model(dropout=0.5)
    train(reference, 4)

    torch.manual_seed(1)
    first = _model(dropout=0.5)
    train(first, 2)
    first.save(tmp_path / "state.pt")
    resumed = _model(dropout=0.5)
    resumed.load(tmp_path / "state.pt")
    train(resumed, 4, initial_epoch=resumed.epochs_completed)
    _assert_same_tensors(resumed.state_dict(), reference.state_dict())


def test_load_rejects_a_weights_only_file(tmp_path, trained):
    trained.save_weights(tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="is not a kfit training state"):
        _model().load(tmp_path / "weights.pt")


# --------------------------------------------------------------------------- hostile files


class _RunsCode:
    """Unpickling this object runs code: it writes a marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('x')",))


def _hostile_state(marker: Path) -> dict:
    return {"format": saving.FORMAT, "weights": {"module.0.weight": _RunsCode(marker)}}


HOSTILE_WRITERS: dict[str, Callable[[object, Path], None]] = {
    "torch_save": lambda obj, path: torch.save(obj, path),
    "pickle_dump": lambda obj, path: path.write_bytes(pickle.dumps(obj)),
}


def _restore_backup(path: Path, xy) -> None:
    _model().fit(*xy, epochs=1, verbose=0, callbacks=[BackupAndRestore(path.parent)])


# (file name inside tmp_path, loader)
HOSTILE_LOADERS: dict[str, tuple[str, Callable[[Path, object], None]]] = {
    "load_weights": ("weights.pt", lambda path, xy: _model().load_weights(path)),
    "load": ("state.pt", lambda path, xy: _model().load(path)),
    "backup_and_restore": ("backup/latest.pt", _restore_backup),
    "load_tensors": ("tensors.pt", lambda path, xy: saving.load_tensors(path)),
}


def test_hostile_file_runs_code_when_unpickled_without_protection(tmp_path):
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(_hostile_state(marker)))
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch on pickle.dumps' files
@pytest.mark.parametrize("writer", HOSTILE_WRITERS.values(), ids=HOSTILE_WRITERS.keys())
@pytest.mark.parametrize("loader", HOSTILE_LOADERS.values(), ids=HOSTILE_LOADERS.keys())
def test_hostile_file_is_refused_without_running_code(tmp_path, xy, writer, loader):
    name, load = loader
    path, marker = tmp_path / name, tmp_path / "marker"
    path.parent.mkdir(exist_ok=True)
    writer(_hostile_state(marker), path)
    with pytest.raises(ValueError, match="Refusing to load"):
        load(path, xy)
    assert not marker.exists()


# --------------------------------------------------------------------------- atomic writes

_SLOW_WRITER = """
import importlib.util
import io
import signal
import sys
from pathlib import Path

import torch

# kfit/saving.py alone: importing the kfit package (torchmetrics) would cost seconds.
spec = importlib.util.spec_from_file_location("kfit_saving", sys.argv[3])
saving = importlib.util.module_from_spec(spec)
sys.modules["kfit_saving"] = saving  # dataclasses look their module up there
spec.loader.exec_module(saving)

target, ready = sys.argv[1], Path(sys.argv[2])
buffer = io.BytesIO()
torch.save({"module.0.weight": torch.ones(2_000_000)}, buffer)
data = buffer.getvalue()


def write_half_then_wait(file):
    file.write(data[: len(data) // 2])
    file.flush()
    ready.touch()
    signal.pause()  # killed here, mid-write


saving.atomic_write(target, write_half_then_wait)
"""


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.01)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_save_killed_mid_write_leaves_the_previous_file_whole(tmp_path, trained):
    target, ready = tmp_path / "weights.pt", tmp_path / "ready"
    trained.save_weights(target)
    before = target.read_bytes()
    script = tmp_path / "slow_writer.py"
    script.write_text(textwrap.dedent(_SLOW_WRITER))
    child = subprocess.Popen(
        [sys.executable, str(script), str(target), str(ready), saving.__file__],
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(ready, child)
        partial = list(tmp_path.glob(".weights.pt.*.tmp"))
        assert len(partial) == 1
        assert partial[0].stat().st_size > 0  # the save was under way
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert target.read_bytes() == before
    fresh = _model()
    fresh.load_weights(target)
    _assert_same_tensors(fresh.state_dict(), trained.state_dict())
