"""The Keras training log, drawn with tqdm.

`Progbar` renders; `kfit.callbacks.ProgbarLogger` decides when. Three places it can draw:

- a terminal: one tqdm bar redrawn in place, at most every 0.05 s;
- a Jupyter notebook with ipywidgets: a tqdm widget while the epoch runs, redrawn at most
  every 0.1 s; at the end it is filled and hidden, and the final text line takes its place,
  so a saved notebook shows the log with or without its widget state. A widget left red
  (`bar_style='danger'`) means the epoch really was interrupted (Ctrl-C);
- a Jupyter notebook without ipywidgets: a text bar redrawn with carriage returns at most
  `KERNEL_TEXT_UPDATES` times per epoch (every output is kept in a saved notebook), then
  the final line;
- anything else (a file, a pipe, CI): no redraws, exactly one final line per epoch.

The final line is Keras's:
`38/38 [==============================] - 0s 2ms/step - loss: 0.1760 - val_loss: 0.1901`.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

import tqdm.notebook
import tqdm.std

BAR_WIDTH = 30
TERMINAL_INTERVAL = 0.05
NOTEBOOK_INTERVAL = 0.1
#: Redraws of a text bar per epoch, at most, in a kernel without ipywidgets.
KERNEL_TEXT_UPDATES = 10
#: Seconds between those redraws, at least.
KERNEL_TEXT_INTERVAL = 1.0


def format_value(value: Any) -> str:
    """Keras's number format: `%.4f` when `|v| > 1e-3`, else `%.4e`; vectors item by item."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{number:.4f}" if abs(number) > 1e-3 else f"{number:.4e}"


def format_step_time(seconds: float) -> str:
    """Keras's time per step: `2s`, `35ms` or `830us`."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms"
    return f"{seconds * 1e6:.0f}us"


def format_eta(seconds: float) -> str:
    """Keras's ETA: `5s`, `1:05` or `1:01:05`."""
    if seconds > 3600:
        return f"{int(seconds) // 3600}:{int(seconds) % 3600 // 60:02d}:{int(seconds) % 60:02d}"
    if seconds > 60:
        return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
    return f"{int(seconds)}s"


def format_logs(logs: Mapping[str, Any]) -> str:
    """` - loss: 0.1760 - mae: 0.3001` for the given values, in their order."""
    return "".join(f" - {key}: {format_value(value)}" for key, value in logs.items())


def in_notebook() -> bool:
    """Whether bars are Jupyter widgets: an IPython kernel runs and ipywidgets is installed.

    Decided here rather than by `tqdm.auto`, whose import warns (`IProgress not found`) in a
    kernel without ipywidgets.
    """
    return in_ipython_kernel() and tqdm.notebook.IProgress is not None


def in_ipython_kernel() -> bool:
    """Whether this process is a Jupyter (IPython) kernel, with or without ipywidgets."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class Progbar:
    """One epoch's (or one evaluation's) progress line, in Keras's format.

    Args:
        target: the number of steps, or None when unknown.
        verbose: 1 for a live bar (final line only when not interactive), 2 for one line at
            the end.
        stream: where to write; `sys.stdout` by default.
    """

    def __init__(self, target: int | None, verbose: int = 1, stream: IO[str] | None = None):
        self.target = target
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.start = time.perf_counter()
        # Not 0.0: perf_counter counts from boot, so on a machine up for less than the
        # interval the first redraw would never come.
        self._last_draw = -math.inf
        self._bar: tqdm.std.tqdm | None = None
        notebook = verbose == 1 and in_notebook()
        # A kernel without ipywidgets still renders carriage-return redraws as text.
        text_in_kernel = verbose == 1 and not notebook and in_ipython_kernel()
        interactive = verbose == 1 and (notebook or text_in_kernel or _isatty(self.stream))
        if not interactive:
            self._interval = None
        elif text_in_kernel:
            self._interval = KERNEL_TEXT_INTERVAL
        else:
            self._interval = NOTEBOOK_INTERVAL if notebook else TERMINAL_INTERVAL
        # A kernel keeps every text redraw as an output: at most KERNEL_TEXT_UPDATES per epoch.
        self._redraws_left = KERNEL_TEXT_UPDATES if text_in_kernel else None
        self._notebook = notebook

    @property
    def width(self) -> int:
        return len(str(self.target)) if self.target else 7

    def wants_draw(self) -> bool:
        """Whether an `update` now would redraw (cheap: no values are read)."""
        return (
            self._interval is not None
            and self._redraws_left != 0
            and time.perf_counter() - self._last_draw >= self._interval
        )

    def update(self, current: int, logs: Mapping[str, Any] | None = None) -> None:
        """Redraws the live bar at step `current` if the redraw interval has passed.

        `logs` is read only when the bar redraws: reading it may wait for the device.
        """
        if not self.wants_draw():
            return
        now = time.perf_counter()
        self._last_draw = now
        if self._redraws_left is not None:
            self._redraws_left -= 1
        elapsed = now - self.start
        text = (
            " - ETA: " + format_eta(elapsed / current * (self.target - current))
            if self.target
            else f" - {elapsed:.0f}s"
        )
        self._draw(current, text + format_logs(logs or {}))

    def finish(self, current: int, logs: Mapping[str, Any] | None = None) -> None:
        """Writes the final line for `current` steps (the target, or the steps seen)."""
        self.target = self.target or current
        elapsed = time.perf_counter() - self.start
        per_step = format_step_time(elapsed / max(current, 1))
        values = format_logs(logs or {})
        if self.verbose == 2:
            self.stream.write(
                f"{current:>{self.width}d}/{self.target} - {elapsed:.0f}s - "
                f"{per_step}/step{values}\n"
            )
            self.stream.flush()
            return
        text = f" - {elapsed:.0f}s {per_step}/step{values}"
        if self._bar is not None and not self._notebook:
            self._bar.bar_format = self._bar_format(text)
            self._bar.n = current
            self._bar.close()  # draws the final state once and keeps the line
            self._bar = None
            return
        if self._bar is not None:  # a notebook widget goes; the text line below stays
            # Filled first: tqdm's widget turns red instead of hiding when closed short.
            self._bar.n = self._bar.total or current
            self._bar.close()
            self._bar = None
        line = tqdm.std.tqdm.format_meter(
            current,
            self.target,
            elapsed,
            bar_format=self._bar_format(text, text_only=True),
            ascii=".>=",
        )
        prefix = "\r" if self._interval is not None and not self._notebook else ""
        self.stream.write(prefix + line + "\n")
        self.stream.flush()

    def interrupt(self, current: int) -> None:
        """Ends a bar that will not reach its end (Ctrl-C, data that ran out), marked so.

        A notebook widget stays, red, at `current`; the text line ends with `- interrupted`.
        """
        if self.verbose == 2:
            return
        if self._bar is not None:
            self._bar.n = current
            if self._notebook:
                self._bar.close()  # tqdm marks a widget closed short `bar_style='danger'`
            else:
                self._bar.bar_format = self._bar_format(" - interrupted")
                self._bar.close()
                self._bar = None
                return
            self._bar = None
        target = self.target or "Unknown"
        prefix = "\r" if self._interval is not None and not self._notebook else ""
        self.stream.write(f"{prefix}{current:>{self.width}d}/{target} - interrupted\n")
        self.stream.flush()

    def _bar_format(self, text: str, text_only: bool = False) -> str:
        escaped = text.replace("{", "{{").replace("}", "}}")
        count = f"{{n:>{self.width}d}}/" + ("{total}" if self.target else "Unknown")
        if not self.target:
            return count + escaped
        bar = "{bar}" if self._notebook and not text_only else f"[{{bar:{BAR_WIDTH}}}]"
        return f"{count} {bar}{escaped}"

    def _draw(self, current: int, text: str) -> None:
        if self._bar is None:  # tqdm draws a new bar as it is created
            bar_class = tqdm.notebook.tqdm if self._notebook else tqdm.std.tqdm
            self._bar = bar_class(
                total=self.target,
                file=None if self._notebook else self.stream,
                ascii=".>=",
                mininterval=0,
                miniters=1,
                leave=not self._notebook,
                dynamic_ncols=False,
                # A pseudo-terminal may report a 0x0 screen, which would hide the bar.
                ncols=None if self._notebook else 4096,
                nrows=None if self._notebook else 4096,
                bar_format=self._bar_format(text),
                initial=current,
            )
            return
        self._bar.bar_format = self._bar_format(text)
        self._bar.n = current
        self._bar.refresh()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
