"""`History`: every epoch's logged values, kept by `fit` and returned from it."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kfit.callbacks.callback import Callback
from kfit.callbacks.diagnosis import Diagnostic
from kfit.progress import format_value

if TYPE_CHECKING:
    import pandas
    from matplotlib.axes import Axes

_VAL = "val_"


class History(Callback):
    """Records each epoch's `logs` (added by `fit` automatically; one per `fit` call).

    In a notebook a `History` displays as a table, one row per epoch.

    Attributes:
        history: `{key: [value per epoch]}`; keys in log order: `loss`, the metrics, then
            their `val_` versions, then keys that callbacks add.
        epoch: the 0-based indices of the epochs that ran.
        params: `{'verbose', 'epochs', 'steps'}` as `fit` set them.
        model: the model that was trained.
        diagnostics: the notes of the training diagnosis (`kfit.callbacks.diagnosis.Diagnostic`, in
            the order printed); empty at `verbose=0` or with `fit(diagnose=False)`.

    Example:
        >>> history = model.fit(x, y, epochs=3)
        >>> history.history["loss"]
        [0.71, 0.52, 0.44]
        >>> history.to_dataframe()  # doctest: +SKIP
        >>> history.plot()  # doctest: +SKIP
    """

    holds_model_weakly = True  # the model keeps it as `model.history`

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[Any]] = {}
        self.epoch: list[int] = []
        self.diagnostics: list[Diagnostic] = []
        # The epochs each key was logged at: `val_` keys skip epochs under `validation_freq`,
        # and a callback may start logging a key part-way.
        self._key_epochs: dict[str, list[int]] = {}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.epoch = []

    def continue_from(self, earlier: History) -> None:
        """Takes the epochs of `earlier` as this History's first ones (a kfit addition).

        `BackupAndRestore` calls it when `fit` resumes from a backup, so that the History `fit`
        returns holds every epoch, the restored ones included, as an uninterrupted run's would.

        Args:
            earlier: the History of the run that wrote the backup (restored by `Model.load`).
        """
        self.history = {key: list(values) for key, values in earlier.history.items()}
        self.epoch = list(earlier.epoch)
        self._key_epochs = {
            key: list(epochs)
            for key, epochs in earlier._key_epochs.items()
            if len(epochs) == len(self.history.get(key, ()))
        }
        self.diagnostics = list(earlier.diagnostics)

    def saved_state(self) -> dict[str, Any]:
        """This History as plain values, for `Model.save` (a kfit addition).

        Returns:
            `history`, `epoch`, `key_epochs` (which epochs each key was logged at),
            `diagnostics` (as dicts) and the plain-valued `params`.
        """
        return {
            "history": self.history,
            "epoch": self.epoch,
            "key_epochs": self._key_epochs,
            "diagnostics": [note.as_dict() for note in self.diagnostics],
            "params": {
                k: v
                for k, v in self.params.items()
                if isinstance(v, int | float | str | type(None))
            },
        }

    @classmethod
    def from_saved_state(cls, state: dict[str, Any]) -> History:
        """The History `saved_state` described (files from before `key_epochs` load too)."""
        history = cls()
        history.history = state["history"]
        history.epoch = state["epoch"]
        history.params = state["params"]
        history._key_epochs = state.get("key_epochs", {})
        history.diagnostics = [Diagnostic(**note) for note in state.get("diagnostics", [])]
        return history

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
            self._key_epochs.setdefault(key, []).append(epoch)
        # The model's `history` attribute is this object from the first epoch on.
        self.model.history = self

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"

    # ------------------------------------------------------------------ views

    def _epochs_of(self, key: str) -> list[int]:
        """The 1-based epochs at which `key` was logged.

        A History restored by `Model.load` keeps only `history` and `epoch`; a key logged at
        fewer epochs than ran is then taken to be the last ones.
        """
        values = self.history[key]
        recorded = self._key_epochs.get(key)
        if recorded is None or len(recorded) != len(values):
            recorded = self.epoch[len(self.epoch) - len(values) :]
        return [epoch + 1 for epoch in recorded]

    def to_dataframe(self) -> pandas.DataFrame:
        """The history as a pandas DataFrame: one row per epoch, one column per key.

        Returns:
            A DataFrame indexed by the 1-based epoch (index named `epoch`), columns in log
            order; an epoch at which a key was not logged (validation skipped by
            `validation_freq`) holds NaN.

        Raises:
            ImportError: pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError as error:
            raise ImportError(
                "History.to_dataframe() needs pandas: `pip install pandas`."
            ) from error
        index = pd.Index([epoch + 1 for epoch in self.epoch], name="epoch")
        frame = pd.DataFrame(index=index)
        for key, values in self.history.items():
            frame[key] = pd.Series(values, index=self._epochs_of(key)).reindex(index)
        return frame

    def _quantities(self) -> list[str]:
        """The plotted quantities in log order: every key without its `val_` prefix, once."""
        names: list[str] = []
        for key in self.history:
            name = key.removeprefix(_VAL)
            if name not in names:
                names.append(name)
        return names

    def plot(
        self,
        metrics: str | Sequence[str] | None = None,
        ax: Axes | Sequence[Axes] | None = None,
        figsize: tuple[float, float] | None = None,
    ) -> list[Axes]:
        """Plots each quantity per epoch, its `val_` curve on the same panel.

        As pandas' `DataFrame.plot` does, this returns the Axes, not the Figure: as the last
        line of a notebook cell the plot then shows once (a returned Figure would be shown a
        second time as the cell's value). End the line with `;` to hide the Axes' text.

        Args:
            metrics: the quantities to plot (`'loss'`, a metric's name, a callback's key);
                all of them when None. A `val_` curve goes with its quantity.
            ax: Axes to draw on, one per quantity; a new figure when None.
            figsize: the new figure's size in inches; ignored when `ax` is given.

        Returns:
            The matplotlib Axes drawn on, one per quantity (`axes[0].figure` is the Figure).

        Raises:
            ImportError: matplotlib is not installed.
            ValueError: a name in `metrics` was never logged, the history is empty, or `ax`
                does not hold one Axes per quantity.
        """
        try:
            import matplotlib.pyplot as plt
            from matplotlib.ticker import MaxNLocator
        except ImportError as error:
            raise ImportError(
                "History.plot() needs matplotlib: `pip install kfit[plot]`."
            ) from error
        available = self._quantities()
        if metrics is None:
            names = available
        else:
            names = [metrics] if isinstance(metrics, str) else list(metrics)
            unknown = [name for name in names if name not in available]
            if unknown:
                raise ValueError(
                    f"`metrics` names {unknown} that this History does not hold; "
                    f"available: {available}."
                )
        if not names:
            raise ValueError("History.plot(): nothing to plot, no epoch was recorded.")
        if ax is None:
            columns = min(len(names), 3)
            rows = math.ceil(len(names) / columns)
            figure, grid = plt.subplots(
                rows, columns, figsize=figsize or (4.5 * columns, 3.5 * rows), squeeze=False
            )
            axes = list(grid.flat)
            for unused in axes[len(names) :]:
                figure.delaxes(unused)
        else:
            axes = [ax] if not isinstance(ax, Sequence) else list(ax)
            if len(axes) != len(names):
                raise ValueError(
                    f"`ax` must hold one Axes per quantity ({len(names)}: {names}); "
                    f"got {len(axes)}."
                )
            figure = axes[0].figure
        for axis, name in zip(axes, names, strict=False):
            for key, label in ((name, "train"), (_VAL + name, "validation")):
                if key in self.history:
                    axis.plot(self._epochs_of(key), self.history[key], marker=".", label=label)
            axis.set_title(name)
            axis.set_xlabel("epoch")
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs only
            axis.legend()
        figure.tight_layout()
        return axes[: len(names)]

    def _repr_html_(self) -> str:
        """An HTML table for notebooks: epochs as rows, keys as columns, Keras's number format."""
        rows: dict[int, dict[str, str]] = {epoch + 1: {} for epoch in self.epoch}
        for key, values in self.history.items():
            for epoch, value in zip(self._epochs_of(key), values, strict=True):
                rows.setdefault(epoch, {})[key] = html.escape(format_value(value))
        header = "".join(f"<th>{html.escape(key)}</th>" for key in self.history)
        body = "".join(
            f"<tr><th>{epoch}</th>"
            + "".join(f"<td>{cells.get(key, '')}</td>" for key in self.history)
            + "</tr>"
            for epoch, cells in rows.items()
        )
        return (
            '<table class="kfit-history">'
            f"<thead><tr><th>epoch</th>{header}</tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )
