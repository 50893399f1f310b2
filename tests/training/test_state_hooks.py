"""The model's declared state and the hooks callbacks use: `compiled`, `compile_state`,
`resume_at_epoch` and `ending_with_error`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import kfit


def _model() -> kfit.Model:
    return kfit.Model(nn.Linear(3, 1))


def test_compile_builds_one_state_and_a_failed_compile_keeps_the_old_one(xy):
    model = _model()
    assert not model.compiled
    assert model.compile_state is None
    model.compile("sgd", "mse", metrics=["mae"], device="cpu")
    state = model.compile_state
    assert model.compiled
    assert isinstance(state, kfit.training.state.CompileState)
    assert state.device == torch.device("cpu")
    assert state.loss is not None
    with pytest.raises(ValueError, match="adma"):
        model.compile("adma", "mse", device="cpu")
    assert model.compile_state is state  # nothing changed


class _Probe(kfit.callbacks.Callback):
    def __init__(self, fail_at: int | None = None, resume_at: int | None = None):
        super().__init__()
        self.fail_at, self.resume_at = fail_at, resume_at
        self.ending: list[bool] = []
        self.epochs: list[int] = []

    def on_train_begin(self, logs=None):
        if self.resume_at is not None:
            self.model.resume_at_epoch(self.resume_at)

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)
        if epoch == self.fail_at:
            raise RuntimeError("stop here")

    def on_exception(self, exception):
        self.ending.append(self.model.ending_with_error)

    def on_train_end(self, logs=None):
        self.ending.append(self.model.ending_with_error)


def test_ending_with_error_is_true_only_while_a_failing_fit_ends(xy):
    model = _model()
    model.compile("sgd", "mse", device="cpu")
    clean = _Probe()
    model.fit(*xy, epochs=2, verbose=0, callbacks=[clean])
    assert clean.ending == [False]
    failing = _Probe(fail_at=1)
    with pytest.raises(RuntimeError, match="stop here"):
        model.fit(*xy, epochs=3, verbose=0, callbacks=[failing])
    assert failing.ending == [True, True]  # on_exception, then on_train_end
    assert not model.ending_with_error  # reset once fit has ended


def test_resume_at_epoch_from_on_train_begin_starts_fit_there(xy):
    model = _model()
    model.compile("sgd", "mse", device="cpu")
    probe = _Probe(resume_at=3)
    history = model.fit(*xy, epochs=5, verbose=0, callbacks=[probe])
    assert probe.epochs == [3, 4]
    assert history.epoch == [3, 4]
    again = _Probe()
    model.fit(*xy, epochs=2, verbose=0, callbacks=[again])  # used once, then forgotten
    assert again.epochs == [0, 1]
