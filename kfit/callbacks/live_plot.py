"""`LivePlot`: redraws the training curves while `fit` runs (in a notebook, or to a PNG)."""

from __future__ import annotations

import io
import math
import os
import types
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kfit.callbacks.callback import Callback
from kfit.callbacks.history import History
from kfit.progress import in_ipython_kernel
from kfit.saving import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_DEFAULT_FILEPATH = "training_curves.png"


def _new_figure() -> Figure:
    """A Figure on its own Agg canvas: no pyplot, so no global backend or figure registry."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("LivePlot needs matplotlib: `pip install kfit[plot]`.") from error
    figure = Figure()
    FigureCanvasAgg(figure)
    return figure


class LivePlot(Callback):
    """Redraws each quantity's train and `val_` curves every `every` epochs.

    In a Jupyter kernel the plot is shown once below the cell and then updated in place.
    Elsewhere it is written, atomically, to a PNG at `filepath`, which then always holds the
    latest complete image; it is drawn once more at the end of training if the last epoch was
    not a multiple of `every`. The curves come from the logs this callback records itself, so
    each drawing includes the epoch that just ended.

    Args:
        metrics: the quantities to plot (`'loss'`, a metric's name, a key a callback logs);
            all logged quantities when None. A `val_` curve goes with its quantity.
        filepath: where to write the PNG; `'training_curves.png'` when None. In a notebook
            the file is written only when `filepath` is given.
        every: draw at the end of every `every`-th epoch.

    Attributes:
        figure: the matplotlib Figure last drawn (None before the first drawing).

    Raises:
        TypeError: `metrics` is not a sequence of strings, or `every` is not an int.
        ValueError: `metrics` is empty or `every` is below 1.

    Example:
        >>> model.fit(x, y, epochs=20, validation_split=0.2,
        ...           callbacks=[kfit.callbacks.LivePlot(every=5)])  # doctest: +SKIP
    """

    rank_zero_only = True  # torchrun: one process prints / writes

    def __init__(
        self,
        metrics: str | Sequence[str] | None = None,
        filepath: str | os.PathLike[str] | None = None,
        every: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(metrics, str):
            metrics = [metrics]
        if metrics is not None:
            if not isinstance(metrics, Sequence) or not all(isinstance(m, str) for m in metrics):
                raise TypeError(f"`metrics` must be a list of str or None; got {metrics!r}.")
            if not metrics:
                raise ValueError("`metrics` must name at least one quantity; got [].")
        if isinstance(every, bool) or not isinstance(every, int):
            raise TypeError(f"`every` must be an int >= 1; got {every!r}.")
        if every < 1:
            raise ValueError(f"`every` must be an int >= 1; got {every}.")
        self.metrics = None if metrics is None else list(metrics)
        self.filepath = filepath
        self.every = every
        self.figure: Figure | None = None
        self._history = History()
        self._drawn_epochs = 0
        self._display_id: str | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        # A History of its own: the fit's History records after user callbacks have run, so
        # it would lag one epoch here. `History.on_epoch_end` points `model.history` at
        # itself, so it gets a stand-in model to leave the real one's attribute alone.
        self._history = History()
        self._history.set_model(types.SimpleNamespace())
        self._drawn_epochs = 0
        self._display_id = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._history.on_epoch_end(epoch, logs)
        if len(self._history.epoch) % self.every == 0:
            self._draw()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if len(self._history.epoch) > self._drawn_epochs:
            self._draw()

    def _draw(self) -> None:
        """Plots the recorded epochs, then shows or writes the image."""
        names = self.metrics or list(
            dict.fromkeys(key.removeprefix("val_") for key in self._history.history)
        )
        if not names:
            return
        if self.figure is None:
            self.figure = _new_figure()
        figure = self.figure
        figure.clear()
        columns = min(len(names), 3)
        rows = math.ceil(len(names) / columns)
        figure.set_size_inches(4.5 * columns, 3.5 * rows)
        axes = list(figure.subplots(rows, columns, squeeze=False).flat)
        for unused in axes[len(names) :]:
            figure.delaxes(unused)
        self._history.plot(names, ax=axes[: len(names)])
        self._drawn_epochs = len(self._history.epoch)
        kernel = in_ipython_kernel()
        if kernel:
            self._show(figure)
        if self.filepath is not None or not kernel:
            atomic_write(
                self.filepath or _DEFAULT_FILEPATH,
                lambda file: figure.savefig(file, format="png"),
            )

    def _show(self, figure: Figure) -> None:
        """Shows the image below the cell the first time, then replaces it in place."""
        import IPython.display

        # A PNG rather than the Figure: it renders the same under any notebook backend, and
        # as the Figure is not pyplot's, no backend shows it a second time at cell end.
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        image = IPython.display.Image(data=buffer.getvalue(), format="png")
        if self._display_id is None:
            self._display_id = uuid.uuid4().hex
            IPython.display.display(image, display_id=self._display_id)
        else:
            IPython.display.update_display(image, display_id=self._display_id)
