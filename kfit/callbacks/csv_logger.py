"""`CSVLogger`: writes each epoch's logged values as a row of a CSV file."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from typing import IO, Any

from kfit.callbacks.callback import Callback


def _cell(value: Any) -> Any:
    """A log value as a CSV cell: vectors as `[a, b, ...]`, anything else as it is."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        return value
    return "[" + ", ".join(map(str, value)) + "]"


class CSVLogger(Callback):
    r"""Streams the results of each epoch to a CSV file (Keras's columns and layout).

    The columns are `epoch` (0-based) and the log keys of the first epoch, sorted. When the
    first epoch has no `val_` keys, a `val_<key>` column is added for every key, holding `NA`
    until a validated epoch fills it. The file is flushed after every row, so it can be read
    while training runs. It is written with the `csv` module (quoted where needed, `\r\n`
    line ends).

    Args:
        filename: the path of the CSV file, e.g. `'run/log.csv'`.
        separator: the one-character string between the cells of a row.
        append: True to add to an existing file (to continue training; the header is then
            written only if the file is new or empty); False to overwrite it.

    Raises:
        ValueError: if `separator` is not a one-character string.

    Example:
        >>> csv_logger = kfit.callbacks.CSVLogger("training.log")
        >>> history = model.fit(x, y, epochs=2, callbacks=[csv_logger], verbose=0)
        >>> print(open("training.log").read())
        epoch,loss,val_loss
        0,0.33123862743377686,NA
        1,0.2870163917541504,NA
    """

    rank_zero_only = True  # torchrun: one process prints / writes

    def __init__(
        self, filename: str | os.PathLike[str], separator: str = ",", append: bool = False
    ):
        super().__init__()
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"`separator` must be a one-character string; got {separator!r}.")
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.keys: list[str] | None = None
        self.csv_file: IO[str] | None = None
        self.writer: csv.DictWriter | None = None
        self._write_header = True

    def on_train_begin(self, logs=None):
        if self.append:
            self._write_header = not _has_content(self.filename)
        self._close()
        self.csv_file = open(  # noqa: SIM115 - kept open across epochs, closed at train end
            self.filename, "a" if self.append else "w", newline="", encoding="utf-8"
        )
        self.keys = None
        self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys += [f"val_{key}" for key in self.keys]
        row = {"epoch": epoch, **{k: _cell(logs.get(k, "NA")) for k in self.keys}}
        csv_file = self.csv_file
        if csv_file is None:
            raise RuntimeError("CSVLogger writes only after `on_train_begin` opened its file.")
        try:
            if self.writer is None:
                self.writer = csv.DictWriter(
                    csv_file, fieldnames=["epoch", *self.keys], delimiter=self.sep
                )
                if self._write_header:
                    self.writer.writeheader()
            self.writer.writerow(row)
            csv_file.flush()
        except OSError as err:  # a full disk: name the file, which a bare write error doesn't
            raise OSError(
                err.errno, f"Cannot write the log ({err.strerror})", self.filename
            ) from err

    def on_train_end(self, logs=None):
        self._close()
        self.writer = None

    def _close(self) -> None:
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()


def _has_content(filename: str) -> bool:
    """Whether the file exists and its first line is not empty."""
    if not os.path.exists(filename):
        return False
    with open(filename, encoding="utf-8") as file:
        return bool(file.readline())
