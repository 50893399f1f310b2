"""The Keras log: number formats, the line per epoch when piped, redraws on a terminal."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import struct
import termios
import tty

import numpy as np
import pytest

from kfit.progress import format_eta, format_logs, format_step_time, format_value

X = np.arange(30, dtype=np.float32).reshape(10, 3) / 30
Y = np.array([[1.0]] * 8 + [[3.0]] * 2, dtype=np.float32)

NUMBER = r"-?\d+\.\d{4}(e[+-]\d{2})?"
STEP_TIME = r"\d+(s|ms|us)/step"
FULL_BAR = r"\[={30}\]"


def _values(*names: str) -> str:
    return "".join(rf" - {name}: {NUMBER}" for name in names)


def _lines(text: str) -> list[str]:
    assert text.endswith("\n")
    return text[:-1].split("\n")


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1234, "0.1234"),
        (0.12345678, "0.1235"),
        (1.5, "1.5000"),
        (1234.5, "1234.5000"),
        (-0.5, "-0.5000"),
        (0.002, "0.0020"),
        (0.001, "1.0000e-03"),  # not above 1e-3
        (1e-4, "1.0000e-04"),
        (-1e-4, "-1.0000e-04"),  # |v| decides, whatever the sign
        (0.0, "0.0000e+00"),
        (1, "1.0000"),
        (np.float32(0.25), "0.2500"),
        ([0.5, 1e-5], "[0.5000, 1.0000e-05]"),
        ("text", "text"),
    ],
)
def test_format_value_uses_4_decimals_or_scientific_below_1e_3(value, text):
    assert format_value(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (2.0, "2s"),
        (1.0, "1s"),
        (12.4, "12s"),
        (0.035, "35ms"),
        (0.001, "1ms"),
        (0.00083, "830us"),
        (0.0000004, "0us"),
        (0.0, "0s"),
    ],
)
def test_format_step_time_picks_s_ms_or_us(seconds, text):
    assert format_step_time(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(5.7, "5s"), (59, "59s"), (65, "1:05"), (3665, "1:01:05")]
)
def test_format_eta_picks_seconds_minutes_or_hours(seconds, text):
    assert format_eta(seconds) == text


def test_format_logs_joins_values_in_order():
    assert format_logs({"loss": 0.5, "mae": 1e-4}) == " - loss: 0.5000 - mae: 1.0000e-04"


# --------------------------------------------------------------------------- piped output


def test_fit_writes_one_line_per_epoch_when_not_a_terminal(frozen_model, capsys):
    frozen_model().fit(X, Y, epochs=2, batch_size=4, validation_split=0.2, verbose=1)

    out = capsys.readouterr().out
    assert "\r" not in out
    lines = _lines(out)
    assert lines[0::2] == ["Epoch 1/2", "Epoch 2/2"]
    pattern = rf"2/2 {FULL_BAR} - \d+s {STEP_TIME}" + _values("loss", "mae", "val_loss", "val_mae")
    for line in lines[1::2]:
        assert re.fullmatch(pattern, line), line


def test_fit_line_shows_the_logged_values(frozen_model, capsys):
    history = frozen_model().fit(X, Y, batch_size=4, verbose=1)

    line = _lines(capsys.readouterr().out)[-1]
    assert line.endswith(" - loss: 2.6000 - mae: 1.4000")
    assert history.history["loss"] == [pytest.approx(2.6)]


def test_fit_line_lists_loss_then_metrics_in_compile_order_then_val(frozen_model, capsys):
    frozen_model(metrics=("mse", "mae")).fit(X, Y, validation_data=(X, Y), verbose=1)

    line = _lines(capsys.readouterr().out)[-1]
    assert re.search(_values("loss", "mse", "mae", "val_loss", "val_mse", "val_mae") + "$", line)


def test_fit_line_prints_small_values_in_scientific_notation(frozen_model, capsys):
    frozen_model().fit(X, np.full((10, 1), 5e-4, np.float32), verbose=1)

    line = _lines(capsys.readouterr().out)[-1]
    assert line.endswith(" - loss: 2.5000e-07 - mae: 5.0000e-04")


def test_fit_prints_the_epoch_header_for_a_single_epoch(frozen_model, capsys):
    frozen_model().fit(X, Y, epochs=1, verbose=1)

    assert _lines(capsys.readouterr().out)[0] == "Epoch 1/1"


def test_fit_header_counts_from_initial_epoch(frozen_model, capsys):
    frozen_model().fit(X, Y, initial_epoch=1, epochs=3, verbose=1)

    assert _lines(capsys.readouterr().out)[0::2] == ["Epoch 2/3", "Epoch 3/3"]


def test_verbose_auto_is_the_progress_bar(frozen_model, capsys):
    frozen_model().fit(X, Y, batch_size=4, verbose="auto")

    assert re.fullmatch(rf"3/3 {FULL_BAR} - .*", _lines(capsys.readouterr().out)[1])


def test_verbose_2_writes_one_line_without_a_bar(frozen_model, capsys):
    frozen_model().fit(X, Y, epochs=2, batch_size=4, verbose=2)

    lines = _lines(capsys.readouterr().out)
    assert lines[0::2] == ["Epoch 1/2", "Epoch 2/2"]
    for line in lines[1::2]:
        assert re.fullmatch(rf"3/3 - \d+s - {STEP_TIME}" + _values("loss", "mae"), line), line


def test_verbose_0_prints_nothing(frozen_model, capsys):
    model = frozen_model()

    model.fit(X, Y, epochs=2, validation_split=0.2, verbose=0)
    model.evaluate(X, Y, verbose=0)
    model.predict(X, verbose=0)

    assert capsys.readouterr().out == ""


def test_unknown_number_of_steps_ends_with_the_steps_seen(frozen_model, capsys):
    batches = ((X[i : i + 4], Y[i : i + 4]) for i in range(0, 10, 4))

    frozen_model().fit(batches, verbose=1)

    assert re.fullmatch(rf"3/3 {FULL_BAR} - .*", _lines(capsys.readouterr().out)[1])


def test_exhausted_generator_warns_with_the_real_count_and_closes_the_epoch_line(
    frozen_model, capsys
):
    batches = ((X[i : i + 2], Y[i : i + 2]) for i in range(0, 10, 2))

    with pytest.warns(UserWarning, match="ran out of data after 0 of 5 steps"):
        history = frozen_model().fit(batches, epochs=3, verbose=1)

    lines = _lines(capsys.readouterr().out)
    assert lines[0] == "Epoch 1/3"
    assert re.fullmatch(rf"5/5 {FULL_BAR} - .*", lines[1])
    assert lines[2:] == ["Epoch 2/3", "0/5 - interrupted"]
    assert history.epoch == [0]


def test_evaluate_prints_its_own_line(frozen_model, capsys):
    frozen_model().evaluate(X, Y, batch_size=4, verbose=1)

    lines = _lines(capsys.readouterr().out)
    assert len(lines) == 1
    assert re.fullmatch(rf"3/3 {FULL_BAR} - \d+s {STEP_TIME}" + _values("loss", "mae"), lines[0])


def test_evaluate_verbose_2_prints_a_line_without_a_bar(frozen_model, capsys):
    frozen_model().evaluate(X, Y, batch_size=4, verbose=2)

    lines = _lines(capsys.readouterr().out)
    assert re.fullmatch(rf"3/3 - \d+s - {STEP_TIME}" + _values("loss", "mae"), lines[0])


def test_predict_prints_its_own_line_without_values(frozen_model, capsys):
    frozen_model().predict(X, batch_size=4, verbose=1)

    lines = _lines(capsys.readouterr().out)
    assert len(lines) == 1
    assert re.fullmatch(rf"3/3 {FULL_BAR} - \d+s {STEP_TIME}", lines[0])


# --------------------------------------------------------------------------- terminal


class PseudoTerminal:
    """A fresh raw pseudo-terminal: `stream` writes to it, `read()` returns what was written.

    Raw mode turns off the "\\n" → "\\r\\n" translation, so every "\\r" read is kfit's. A new
    pty reports a 0x0 screen, which kfit must cope with.
    """

    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.stream = open(self.slave, "w", closefd=False)  # noqa: SIM115 - closed in close()

    def size(self) -> tuple[int, int]:
        rows, columns = struct.unpack(
            "HHHH", fcntl.ioctl(self.slave, termios.TIOCGWINSZ, bytes(8))
        )[:2]
        return rows, columns

    def read(self) -> str:
        self.stream.flush()
        chunks = []
        while select.select([self.master], [], [], 0)[0]:
            chunks.append(os.read(self.master, 65536))
        return b"".join(chunks).decode()

    def close(self) -> None:
        self.stream.close()
        os.close(self.slave)
        os.close(self.master)


@pytest.fixture
def terminal():
    """A `PseudoTerminal`; point `sys.stdout` at its `stream` inside the test body."""
    if not hasattr(os, "openpty"):
        pytest.skip("needs a POSIX pseudo-terminal")
    pty = PseudoTerminal()
    yield pty
    pty.close()


def test_a_new_pseudo_terminal_reports_a_0x0_screen(terminal):
    assert terminal.size() == (0, 0)


def test_terminal_output_redraws_and_ends_each_epoch_with_a_full_bar(frozen_model, terminal):
    model = frozen_model()

    with contextlib.redirect_stdout(terminal.stream):
        model.fit(X, Y, epochs=2, batch_size=4, validation_split=0.2, verbose=1)

    lines = _lines(terminal.read())
    assert lines[0::2] == ["Epoch 1/2", "Epoch 2/2"]
    final = rf"2/2 {FULL_BAR} - \d+s {STEP_TIME}" + _values("loss", "mae", "val_loss", "val_mae")
    for line in lines[1::2]:
        assert line.startswith("\r")  # the bar is drawn, then redrawn in place
        redraws = line.split("\r")[1:]
        assert all(re.match(r"[12]/2 \[[=>.]{30}\]", redraw) for redraw in redraws), redraws
        assert redraws[0].startswith("1/2 [===============...............] - ETA: ")
        assert re.fullmatch(final + " *", redraws[-1]), redraws[-1]


def test_terminal_output_of_evaluate_ends_with_a_full_bar(frozen_model, terminal):
    model = frozen_model()

    with contextlib.redirect_stdout(terminal.stream):
        model.evaluate(X, Y, batch_size=4, verbose=1)

    lines = _lines(terminal.read())
    assert len(lines) == 1
    final = rf"3/3 {FULL_BAR} - \d+s {STEP_TIME}" + _values("loss", "mae")
    assert re.fullmatch(final + " *", lines[0].split("\r")[-1])


def test_the_first_update_draws_on_a_machine_just_booted(terminal, monkeypatch):
    """perf_counter counts from boot: a fresh machine reads less than any interval."""
    import kfit.progress

    monkeypatch.setattr(kfit.progress, "TERMINAL_INTERVAL", 3600)
    monkeypatch.setattr(kfit.progress.time, "perf_counter", lambda: 10.0)
    bar = kfit.progress.Progbar(target=5, stream=terminal.stream)

    assert bar.wants_draw()
    bar.update(1)
    assert "1/5 [" in terminal.read()
    assert not bar.wants_draw()  # and then not again within the interval
