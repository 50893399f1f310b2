from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import pytest
from torch import nn

import kfit
from kfit.callbacks import live_plot
from kfit.callbacks.live_plot import LivePlot

pytest.importorskip("matplotlib")

X = np.linspace(-1.0, 1.0, 24, dtype=np.float32).reshape(8, 3)
Y = X.sum(axis=1, keepdims=True)


def _fit(callback: LivePlot, epochs: int = 3) -> kfit.Model:
    model = kfit.Sequential(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"], device="cpu")
    model.fit(
        X, Y, epochs=epochs, batch_size=4, validation_split=0.25, verbose=0, callbacks=[callback]
    )
    return model


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[pathlib.Path]:
    """Records the path of each image write instead of rendering it (rendering is slow)."""
    paths: list[pathlib.Path] = []
    monkeypatch.setattr(live_plot, "atomic_write", lambda path, write: paths.append(path))
    return paths


def test_writes_a_png(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "curves.png"
    _fit(LivePlot(filepath=path), epochs=1)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_rewrites_every_epoch(tmp_path: pathlib.Path, writes: list[pathlib.Path]) -> None:
    path = tmp_path / "curves.png"
    _fit(LivePlot(filepath=path))
    assert writes == [path] * 3


def test_writes_every_nth_epoch_and_at_train_end(
    tmp_path: pathlib.Path, writes: list[pathlib.Path]
) -> None:
    callback = LivePlot(filepath=tmp_path / "curves.png", every=2)
    _fit(callback, epochs=3)
    # Epoch 2, then the end of training for epoch 3.
    assert len(writes) == 2
    assert callback._drawn_epochs == 3


def test_default_filepath(writes: list[pathlib.Path]) -> None:
    _fit(LivePlot(), epochs=1)
    assert writes == ["training_curves.png"]


def test_one_axes_per_quantity_with_val_curve(
    tmp_path: pathlib.Path, writes: list[pathlib.Path]
) -> None:
    callback = LivePlot(filepath=tmp_path / "curves.png")
    _fit(callback)
    axes = callback.figure.axes
    assert [axis.get_title() for axis in axes] == ["loss", "mae"]
    for axis in axes:
        assert [line.get_label() for line in axis.get_lines()] == ["train", "validation"]
        assert list(axis.get_lines()[0].get_xdata()) == [1, 2, 3]


def test_metrics_selects_quantities(tmp_path: pathlib.Path, writes: list[pathlib.Path]) -> None:
    callback = LivePlot(metrics=["mae"], filepath=tmp_path / "curves.png")
    _fit(callback, epochs=1)
    assert [axis.get_title() for axis in callback.figure.axes] == ["mae"]


def test_leaves_the_models_history_alone(
    tmp_path: pathlib.Path, writes: list[pathlib.Path]
) -> None:
    callback = LivePlot(filepath=tmp_path / "curves.png")
    model = _fit(callback)
    assert model.history is not callback._history
    assert model.history.history["loss"] == callback._history.history["loss"]


def test_notebook_displays_once_then_updates(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, writes: list[pathlib.Path]
) -> None:
    display = pytest.importorskip("IPython.display")
    from matplotlib.figure import Figure

    shown: list[str] = []
    updated: list[str] = []
    monkeypatch.setattr(live_plot, "in_ipython_kernel", lambda: True)
    # Rendering is slow and `test_writes_a_png` covers it; only the display calls matter here.
    monkeypatch.setattr(Figure, "savefig", lambda self, file, format: file.write(b"\x89PNG"))
    monkeypatch.setattr(display, "display", lambda obj, display_id: shown.append(display_id))
    monkeypatch.setattr(
        display, "update_display", lambda obj, display_id: updated.append(display_id)
    )
    monkeypatch.chdir(tmp_path)
    _fit(LivePlot())
    assert len(shown) == 1
    assert updated == shown * 2
    assert writes == []


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"every": 0}, ValueError, "`every`"),
        ({"every": 1.5}, TypeError, "`every`"),
        ({"every": True}, TypeError, "`every`"),
        ({"metrics": []}, ValueError, "`metrics`"),
        ({"metrics": [1]}, TypeError, "`metrics`"),
        ({"metrics": 3}, TypeError, "`metrics`"),
    ],
)
def test_invalid_arguments(options: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        LivePlot(**options)
