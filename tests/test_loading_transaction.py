"""Loading is a transaction: a file is read and checked whole before anything is applied."""

from __future__ import annotations

import random
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

import kfit
from kfit import saving


def _model(optimizer: str = "adam") -> kfit.Model:
    model = kfit.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    model.compile(optimizer=optimizer, loss="mse", device="cpu")
    return model


@pytest.fixture
def saved(tmp_path, xy):
    """A trained model and the path of its full training state."""
    model = _model()
    model.fit(*xy, epochs=2, batch_size=4, verbose=0)
    path = tmp_path / "state.pt"
    model.save(path)
    return model, path


def _snapshot(model: kfit.Model) -> dict:
    return {
        "weights": {k: v.clone() for k, v in model.state_dict().items()},
        "optimizer": repr(model.optimizer.state_dict()) if model.optimizer else None,
        "epochs": model.epochs_completed,
        "torch_rng": torch.get_rng_state().clone(),
        "numpy_rng": np.random.get_state()[1].copy(),
        "python_rng": random.getstate(),
    }


def _assert_unchanged(model: kfit.Model, before: dict) -> None:
    after = _snapshot(model)
    for key, value in before["weights"].items():
        assert torch.equal(after["weights"][key], value), key
    assert after["optimizer"] == before["optimizer"]
    assert after["epochs"] == before["epochs"]
    assert torch.equal(after["torch_rng"], before["torch_rng"])
    assert np.array_equal(after["numpy_rng"], before["numpy_rng"])
    assert after["python_rng"] == before["python_rng"]


def _rewrite(path, change) -> None:
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


def _target(xy) -> kfit.Model:
    model = _model()
    model.fit(*xy, epochs=1, batch_size=4, verbose=0)
    return model


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("rng"), "lacks the sections"),
        (lambda s: s.pop("optimizer"), "lacks the sections"),
        (lambda s: s.update(version=99), "version 99"),
        (lambda s: s["weights"].update({"module.0.weight": [1.0]}), "not tensors"),
        (lambda s: s["weights"].update({"module.0.bias": torch.zeros(4).long()}), "dtype"),
        (lambda s: s["weights"].update({"module.0.bias": torch.zeros(5)}), "mismatched shapes"),
        (lambda s: s["optimizer"]["param_groups"].append({"params": []}), "parameter groups"),
        (lambda s: s.update(epochs_completed=-1), "epochs_completed"),
        (lambda s: s["rng"].update(torch=torch.zeros(3)), "random-generator"),
        (lambda s: s["rng"]["numpy"].pop("pos"), "random-generator"),
    ],
)
def test_a_bad_section_changes_nothing(saved, xy, change, message):
    _, path = saved
    _rewrite(path, change)
    model = _target(xy)
    before = _snapshot(model)
    with pytest.raises(ValueError, match=message) as info:
        model.load(path)
    assert str(path) in str(info.value)
    _assert_unchanged(model, before)


def test_adam_state_is_refused_by_an_sgd_model(saved, xy):
    _, path = saved
    model = _model("sgd")
    model.fit(*xy, epochs=1, batch_size=4, verbose=0)
    before = _snapshot(model)
    with pytest.raises(ValueError, match="another kind of optimizer"):
        model.load(path)
    _assert_unchanged(model, before)


def test_optimizer_state_of_the_wrong_shape_is_refused(saved, xy):
    _, path = saved

    def change(state):
        state["optimizer"]["state"][0]["exp_avg"] = torch.zeros(7)

    _rewrite(path, change)
    model = _target(xy)
    before = _snapshot(model)
    with pytest.raises(ValueError, match="exp_avg"):
        model.load(path)
    _assert_unchanged(model, before)


def test_weights_file_with_a_non_tensor_entry_loads_nothing(tmp_path, xy):
    model = _target(xy)
    state = dict(model.state_dict())
    state["module.2.bias"] = "oops"
    torch.save(state, tmp_path / "w.pt")
    before = _snapshot(model)
    with pytest.raises(ValueError, match=r"not tensors.*2\.bias"):
        model.load_weights(tmp_path / "w.pt")
    _assert_unchanged(model, before)


def test_truncated_file_is_a_value_error_naming_the_file(saved, xy):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    model = _target(xy)
    before = _snapshot(model)
    for loader in (model.load, model.load_weights):
        with pytest.raises(ValueError, match="state.pt"):
            loader(path)
    _assert_unchanged(model, before)


def test_flipped_bit_in_tensor_data_fails_the_checksum(saved, xy):
    _, path = saved
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if "/data/" in i.filename)
    data = bytearray(path.read_bytes())
    # The member's data starts after its local header (30 bytes + name + extra field).
    local_extra = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + len(info.filename.encode()) + local_extra
    data[start] ^= 0x01
    path.write_bytes(bytes(data))
    model = _target(xy)
    before = _snapshot(model)
    with pytest.raises(ValueError, match="checksum"):
        model.load(path)
    _assert_unchanged(model, before)


def test_load_into_an_uncompiled_model_restores_its_optimizer(saved):
    trained, path = saved
    fresh = kfit.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    fresh.load(path)
    assert type(fresh.optimizer) is type(trained.optimizer)
    assert (
        fresh.optimizer.state_dict()["state"].keys()
        == trained.optimizer.state_dict()["state"].keys()
    )


def test_load_into_an_uncompiled_model_says_what_it_could_not_restore(tmp_path, xy):
    model = kfit.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    model.compile(optimizer="adam", loss=lambda t, p: (t - p).abs().mean(-1), device="cpu")
    model.fit(*xy, epochs=1, batch_size=4, verbose=0)
    with pytest.warns(UserWarning, match=r"settings \['loss'\] .* not saved"):
        model.save(tmp_path / "s.pt")
    fresh = kfit.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    with pytest.warns(UserWarning, match="optimizer state was not restored"):
        fresh.load(tmp_path / "s.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)


def test_failed_load_into_an_uncompiled_model_leaves_it_uncompiled(saved):
    _, path = saved
    _rewrite(path, lambda s: s["optimizer"]["param_groups"][0].pop("betas"))
    fresh = kfit.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    with pytest.raises(ValueError, match="another kind of optimizer"):
        fresh.load(path)
    assert fresh.optimizer is None
    assert fresh.compile_state is None


def test_check_state_dict_is_usable_on_its_own():
    model = nn.Linear(2, 1)
    saving.check_state_dict(model, model.state_dict(), "'x'")
    with pytest.raises(ValueError, match="missing keys"):
        saving.check_state_dict(model, {"weight": torch.zeros(1, 2)}, "'x'")
