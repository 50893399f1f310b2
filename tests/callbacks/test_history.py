"""`History`: `to_dataframe`, `plot` and the notebook table."""

from __future__ import annotations

import sys
import types

import matplotlib
import numpy as np
import pytest
from torch import nn

import kfit
from kfit.callbacks.history import History

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def record(epochs: list[dict[str, float]], first_epoch: int = 0) -> History:
    """A History fed `epochs` as `fit` would, starting at the 0-based `first_epoch`."""
    history = History()
    history.set_model(types.SimpleNamespace())
    history.on_train_begin()
    for offset, logs in enumerate(epochs):
        history.on_epoch_end(first_epoch + offset, logs)
    return history


@pytest.fixture
def fitted(xy: tuple[np.ndarray, np.ndarray]) -> History:
    x, y = xy
    model = kfit.Sequential(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return model.fit(x, y, epochs=3, batch_size=4, validation_split=0.2, verbose=0)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_to_dataframe_equals_history(fitted: History):
    frame = fitted.to_dataframe()
    assert list(frame.columns) == list(fitted.history)
    assert frame.index.name == "epoch"
    assert list(frame.index) == [epoch + 1 for epoch in fitted.epoch] == [1, 2, 3]
    for key, values in fitted.history.items():
        assert frame[key].tolist() == values


def test_to_dataframe_indexes_by_epochs_that_ran_after_resuming():
    history = record([{"loss": 0.5}, {"loss": 0.25}], first_epoch=4)
    assert list(history.to_dataframe().index) == [5, 6]


def test_to_dataframe_leaves_skipped_validation_epochs_empty():
    history = record([{"loss": 3.0}, {"loss": 2.0, "val_loss": 2.5}, {"loss": 1.0}])
    frame = history.to_dataframe()
    assert frame["loss"].tolist() == [3.0, 2.0, 1.0]
    assert np.isnan(frame.loc[1, "val_loss"])
    assert frame.loc[2, "val_loss"] == 2.5
    assert np.isnan(frame.loc[3, "val_loss"])


def test_to_dataframe_without_pandas_names_the_install(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        record([{"loss": 1.0}]).to_dataframe()


def test_plot_draws_one_axes_per_quantity_with_train_and_validation(fitted: History):
    axes = fitted.plot()
    assert [axis.get_title() for axis in axes] == ["loss", "mae"]
    assert axes[0].figure.axes == axes  # no empty panels left
    for axis in axes:
        name = axis.get_title()
        train, validation = axis.get_lines()
        assert (train.get_label(), validation.get_label()) == ("train", "validation")
        assert list(train.get_xdata()) == [1, 2, 3]
        assert list(train.get_ydata()) == fitted.history[name]
        assert list(validation.get_ydata()) == fitted.history["val_" + name]
        assert axis.get_xlabel() == "epoch"


def test_plot_draws_one_line_without_validation():
    history = record([{"loss": 1.0, "learning_rate": 0.1}, {"loss": 0.5, "learning_rate": 0.05}])
    axes = history.plot()
    assert len(axes) == 2
    assert [len(axis.get_lines()) for axis in axes] == [1, 1]
    assert list(axes[1].get_lines()[0].get_ydata()) == [0.1, 0.05]


def test_plot_selects_metrics(fitted: History):
    axes = fitted.plot(metrics=["mae"])
    assert [axis.get_title() for axis in axes] == ["mae"]
    assert len(axes[0].get_lines()) == 2


def test_plot_unknown_metric_names_it_and_the_available_ones(fitted: History):
    with pytest.raises(ValueError, match=r"\['acc'\].*available: \['loss', 'mae'\]"):
        fitted.plot(metrics="acc")


def test_plot_draws_on_given_axes(fitted: History):
    _, axes = plt.subplots(1, 2)
    assert fitted.plot(ax=list(axes)) == list(axes)
    assert all(len(axis.get_lines()) == 2 for axis in axes)


def test_plot_ticks_whole_epochs(fitted: History):
    (axis,) = fitted.plot(metrics="loss")
    axis.figure.canvas.draw()
    ticks = [tick for tick in axis.get_xticks() if 1 <= tick <= 3]
    assert ticks
    assert all(float(tick).is_integer() for tick in ticks)


def test_plot_returns_axes_not_a_figure_jupyter_would_show_again(fitted: History):
    from matplotlib.figure import Figure

    result = fitted.plot()
    assert not isinstance(result, Figure)
    assert not hasattr(result, "_repr_png_")


def test_plot_rejects_wrong_number_of_axes(fitted: History):
    _, axis = plt.subplots()
    with pytest.raises(ValueError, match="one Axes per quantity"):
        fitted.plot(ax=axis)


def test_plot_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install kfit\[plot\]"):
        record([{"loss": 1.0}]).plot()


def test_repr_html_formats_values_like_the_log():
    history = record([{"loss": 0.123456, "val_loss": 0.0001234}, {"loss": 2.0, "val_loss": 1.5}])
    table = history._repr_html_()
    for text in ("<th>loss</th>", "<th>val_loss</th>", "0.1235", "1.2340e-04", "2.0000"):
        assert text in table
    assert table.count("<tr>") == 3  # the header and two epochs


def test_repr_html_escapes_keys():
    table = record([{"<b>": 1.0}])._repr_html_()
    assert "&lt;b&gt;" in table
    assert "<b>" not in table


def test_saved_and_loaded_history_keeps_validation_epochs(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype("float32")
    y = x.sum(1, keepdims=True)
    model = kfit.Model(nn.Linear(3, 1))
    model.compile("sgd", "mse", device="cpu")
    model.fit(x, y, epochs=4, validation_split=0.25, validation_freq=2, verbose=0)
    model.save(tmp_path / "state.pt")
    restored = kfit.Model(nn.Linear(3, 1))
    restored.load(tmp_path / "state.pt")
    frame = restored.history.to_dataframe()
    assert frame["val_loss"].isna().tolist() == [True, False, True, False]
