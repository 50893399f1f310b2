"""TensorBoard: the event files hold Keras's tags with History's values."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from torch import nn

import kfit
from kfit.callbacks.callback import Callback

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

from kfit.callbacks.tensorboard import TensorBoard  # noqa: E402

STEPS = 3  # batches per epoch


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    """Sixteen samples: with validation_split=0.25, three batches of four per epoch."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True)


def _model() -> kfit.Model:
    model = kfit.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    model.compile(
        optimizer=kfit.optimizers.SGD(learning_rate=0.05), loss="mse", metrics=["mae"], device="cpu"
    )
    return model


def _fit(model: kfit.Model, data, callbacks: list[Callback], epochs: int = 3) -> kfit.History:
    return model.fit(
        *data, epochs=epochs, batch_size=4, validation_split=0.25, verbose=0, callbacks=callbacks
    )


def _events(folder: Path) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    return events


def _scalars(events: EventAccumulator, tag: str) -> tuple[list[int], list[float]]:
    points = events.Scalars(tag)
    return [p.step for p in points], [p.value for p in points]


@pytest.fixture
def logged(tmp_path, data) -> tuple[kfit.History, EventAccumulator, EventAccumulator]:
    """A three-epoch fit with the default TensorBoard: History and both event folders."""
    history = _fit(_model(), data, [TensorBoard(tmp_path)])
    return history, _events(tmp_path / "train"), _events(tmp_path / "validation")


# --------------------------------------------------------------------------- epoch values


def test_epoch_tags_are_keras_names(logged):
    _, train, validation = logged
    assert sorted(train.Tags()["scalars"]) == ["epoch_learning_rate", "epoch_loss", "epoch_mae"]
    assert sorted(validation.Tags()["scalars"]) == [
        "epoch_loss",
        "epoch_mae",
        "evaluation_loss_vs_iterations",
        "evaluation_mae_vs_iterations",
    ]


@pytest.mark.parametrize("key", ["loss", "mae", "val_loss", "val_mae"])
def test_epoch_values_equal_history(logged, key):
    history, train, validation = logged
    events = validation if key.startswith("val_") else train
    steps, values = _scalars(events, f"epoch_{key.removeprefix('val_')}")
    assert steps == [0, 1, 2]
    assert values == [np.float32(v) for v in history.history[key]]


def test_learning_rate_is_the_optimizer_s(logged):
    _, train, _ = logged
    assert _scalars(train, "epoch_learning_rate") == ([0, 1, 2], [np.float32(0.05)] * 3)


def test_evaluation_values_are_logged_against_training_batches(logged):
    history, _, validation = logged
    steps, values = _scalars(validation, "evaluation_loss_vs_iterations")
    assert steps == [STEPS, 2 * STEPS, 3 * STEPS]
    assert values == [np.float32(v) for v in history.history["val_loss"]]


def test_graph_is_written_as_the_module_structure(logged):
    _, train, _ = logged
    assert "model/text_summary" in train.Tags()["tensors"]


# --------------------------------------------------------------------------- batch values


class _BatchLogs(Callback):
    def __init__(self):
        super().__init__()
        self.losses: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])


@pytest.mark.parametrize(("update_freq", "every"), [("batch", 1), (2, 2)])
def test_batch_values_every_update_freq_batches(tmp_path, data, update_freq, every):
    batch_logs = _BatchLogs()
    _fit(_model(), data, [TensorBoard(tmp_path, update_freq=update_freq), batch_logs])
    steps, values = _scalars(_events(tmp_path / "train"), "batch_loss")
    assert steps == list(range(every, 3 * STEPS + 1, every))
    assert values == [np.float32(batch_logs.losses[step - 1]) for step in steps]


def test_steps_per_second_is_written(tmp_path, data):
    _fit(_model(), data, [TensorBoard(tmp_path, update_freq=1, write_steps_per_second=True)])
    train = _events(tmp_path / "train")
    for tag, count in [("epoch_steps_per_second", 3), ("batch_steps_per_second", 3 * STEPS)]:
        steps, values = _scalars(train, tag)
        assert len(steps) == count
        assert all(v > 0 for v in values)


# --------------------------------------------------------------------------- weights


def test_histograms_every_histogram_freq_epochs(tmp_path, data):
    model = _model()
    _fit(model, data, [TensorBoard(tmp_path, histogram_freq=2)], epochs=5)
    train = _events(tmp_path / "train")
    names = [name for name, _ in model.named_parameters()]
    assert sorted(train.Tags()["histograms"]) == sorted(f"{n}/histogram" for n in names)
    events = train.Histograms("module.0.weight/histogram")
    assert [e.step for e in events] == [0, 2, 4]
    last = events[-1].histogram_value
    weight = model.state_dict()["module.0.weight"]
    assert (last.num, last.min, last.max) == (weight.numel(), weight.min(), weight.max())


def test_weight_images_with_write_images(tmp_path, data):
    _fit(_model(), data, [TensorBoard(tmp_path, histogram_freq=1, write_images=True)], epochs=1)
    images = _events(tmp_path / "train").Tags()["images"]
    # module.2.bias holds one number: no image, as in Keras (a scalar after squeezing).
    assert sorted(images) == [
        "module.0.bias/image",
        "module.0.weight/image",
        "module.2.weight/image",
    ]


def test_embeddings_are_written_for_the_projector(tmp_path):
    model = kfit.Sequential(nn.Embedding(5, 2), nn.Flatten(), nn.Linear(4, 1))
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    (tmp_path / "labels.tsv").write_text("a\nb\nc\nd\ne\n")
    callback = TensorBoard(
        tmp_path / "logs", embeddings_freq=1, embeddings_metadata=tmp_path / "labels.tsv"
    )
    model.fit(
        np.zeros((4, 2), dtype=np.int64),
        np.zeros((4, 1), np.float32),
        verbose=0,
        callbacks=[callback],
    )
    config = (tmp_path / "logs" / "train" / "projector_config.pbtxt").read_text()
    assert 'tensor_name: "module.0:00000"' in config
    metadata = tmp_path / "logs" / "train" / "00000" / "module.0" / "metadata.tsv"
    assert metadata.read_text().split() == ["a", "b", "c", "d", "e"]


def test_embeddings_metadata_for_an_unknown_module_raises(tmp_path, data):
    callback = TensorBoard(tmp_path, embeddings_freq=1, embeddings_metadata={"nope": "x.tsv"})
    with pytest.raises(ValueError, match=r"not nn.Embedding layers of the model: \['nope'\]"):
        _fit(_model(), data, [callback])


# --------------------------------------------------------------------------- arguments


def test_missing_tensorboard_names_the_package_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match="pip install tensorboard"):
        TensorBoard()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"profile_batch": 2}, "Profiling is not available"),
        ({"update_freq": "step"}, "`update_freq` must be 'epoch', 'batch' or an integer"),
        ({"update_freq": 0}, "`update_freq` must be 'epoch', 'batch' or an integer"),
        ({"histogram_freq": -1}, "`histogram_freq` must be an integer >= 0"),
        ({"embeddings_freq": 1.5}, "`embeddings_freq` must be an integer >= 0"),
    ],
    ids=["profile_batch", "update_freq_name", "update_freq_zero", "histogram_freq", "embeddings"],
)
def test_invalid_arguments_raise(kwargs: dict[str, Any], match: str):
    with pytest.raises(ValueError, match=match):
        TensorBoard(**kwargs)


def test_no_event_files_until_training(tmp_path):
    TensorBoard(tmp_path / "logs")
    assert not (tmp_path / "logs").exists()
