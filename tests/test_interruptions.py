"""Property: interrupting a fit anywhere, then resuming it, ends as an uninterrupted fit.

An interruption is an exception, Ctrl-C (KeyboardInterrupt) or a NaN loss stopped by
`TerminateOnNaN`, at a random training step or at the end of a random epoch (in a callback's
`on_epoch_end`, before the backup of that epoch). After each one, `fit` is called again with
the same `BackupAndRestore`, as a restarted script would, until a call finishes. The weights
and the returned History must then equal those of one uninterrupted run: same epochs, same
keys, same values, the restored epochs included.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import kfit
from kfit.callbacks import BackupAndRestore, Callback, ReduceLROnPlateau, TerminateOnNaN

EPOCHS, STEPS = 4, 4  # 16 samples, batches of 4
AT_EPOCH_END = -1


class _Net(nn.Module):
    """A small network with dropout (random numbers each step) and a switch to output NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Dropout(0.2), nn.Linear(6, 1))
        self.poisoned = False  # a plain attribute: not part of the weights or of a backup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return out * math.nan if self.poisoned else out


def _data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3)).astype(np.float32)
    y = np.tanh(x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32))
    return {"x": x[:16], "y": y[:16], "x_val": x[16:], "y_val": y[16:]}


DATA = _data()


def _model() -> kfit.Model:
    torch.manual_seed(0)  # a restarted script builds the same model
    model = kfit.Model(_Net())
    model.compile(optimizer="adam", loss="mse", metrics=["mae"], device="cpu")
    return model


class _Interrupt(Callback):
    """Interrupts the run once, at (`epoch`, `step`); `step` -1 is the end of the epoch."""

    def __init__(self, kind: str, epoch: int, step: int) -> None:
        super().__init__()
        self.kind, self.epoch, self.step = kind, epoch, step
        self.fired = False
        self._current = -1

    def on_epoch_begin(self, epoch, logs=None):
        self._current = epoch

    def _due(self, step: int) -> bool:
        return not self.fired and (self._current, step) == (self.epoch, self.step)

    def on_train_batch_begin(self, batch, logs=None):
        if self.kind == "nan" and self._due(batch):
            self.model.module.poisoned = True

    def on_train_batch_end(self, batch, logs=None):
        self.model.module.poisoned = False
        if self._due(batch):
            self._fire()

    def on_epoch_end(self, epoch, logs=None):
        if self._due(AT_EPOCH_END):
            self._fire()

    def _fire(self) -> None:
        self.fired = True
        if self.kind == "error":
            raise RuntimeError("simulated crash")
        if self.kind == "ctrl_c":
            raise KeyboardInterrupt
        # "nan": the step's loss was NaN; TerminateOnNaN has stopped the run.


def _fit(model: kfit.Model, callbacks: list[Callback]) -> kfit.History:
    return model.fit(
        DATA["x"],
        DATA["y"],
        batch_size=4,
        epochs=EPOCHS,
        shuffle=True,
        validation_data=(DATA["x_val"], DATA["y_val"]),
        verbose=0,
        callbacks=[
            # Halves the rate at epochs 2 and 3: its wait and best must survive a resume.
            ReduceLROnPlateau(monitor="val_loss", patience=1, factor=0.5, min_delta=0.01),
            TerminateOnNaN(),
            *callbacks,
        ],
    )


def _reference() -> tuple[dict[str, torch.Tensor], kfit.History]:
    model = _model()
    history = _fit(model, [])
    return model.state_dict(), history


REFERENCE = _reference()

interruptions = st.lists(
    st.tuples(
        st.sampled_from(["error", "ctrl_c", "nan"]),
        st.integers(0, EPOCHS - 1),
        st.integers(AT_EPOCH_END, STEPS - 1),
    ),
    min_size=1,
    max_size=3,
)


@pytest.mark.filterwarnings("ignore:ReduceLROnPlateau.*NaN:UserWarning")
@settings(max_examples=25, deadline=None)
@given(interruptions)
def test_interrupted_and_resumed_fit_equals_an_uninterrupted_one(points):
    with tempfile.TemporaryDirectory() as folder:
        backup = BackupAndRestore(Path(folder) / "backup")
        history = None
        for kind, epoch, step in points:
            if kind == "nan" and step == AT_EPOCH_END:
                step = 0  # a NaN comes from a step
            interrupt = _Interrupt(kind, epoch, step)
            model = _model()
            try:
                history = _fit(model, [interrupt, backup])
            except (RuntimeError, KeyboardInterrupt):
                assert interrupt.fired
                history = None
                continue
            if not interrupt.fired:  # its point came before where the run resumed
                break
            history = None  # stopped on NaN: to be resumed
        if history is None:
            model = _model()
            history = _fit(model, [backup])
        assert not (Path(folder) / "backup").exists()  # a clean finish deletes the backup

    weights, expected = REFERENCE
    for key, value in weights.items():
        torch.testing.assert_close(model.state_dict()[key], value, msg=key)
    assert history.epoch == expected.epoch
    assert list(history.history) == list(expected.history)
    for key, values in expected.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=1e-6, err_msg=key)
