"""Fixes from the adversarial review of the issue 18/20/21 work."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import kfit

pytestmark = pytest.mark.usefixtures("one_thread")


def _data():
    torch.manual_seed(0)
    return torch.randn(96, 8), torch.randn(96, 1)


def _model(jit: bool) -> kfit.Model:
    torch.manual_seed(1)
    model = kfit.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"], device="cpu", jit_compile=jit)
    return model


class _Evaluates(kfit.callbacks.Callback):
    def __init__(self, hook: str, x: torch.Tensor, y: torch.Tensor):
        super().__init__()
        self.hook, self.x, self.y, self.results = hook, x, y, []

    def _evaluate(self) -> None:
        self.results.append(self.model.evaluate(self.x, self.y, verbose=0, return_dict=True))

    def on_train_batch_begin(self, batch, logs=None):
        if self.hook == "begin":
            self._evaluate()

    def on_train_batch_end(self, batch, logs=None):
        if self.hook == "end":
            self._evaluate()


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("hook", ["begin", "end"])
def test_evaluate_in_a_batch_callback_leaves_the_epoch_numbers_alone(hook, jit):
    x, y = _data()
    plain = _model(jit).fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=False)
    callback = _Evaluates(hook, x[:10], y[:10])
    model = _model(jit)
    history = model.fit(
        x, y, batch_size=32, epochs=2, verbose=0, shuffle=False, callbacks=[callback]
    )
    assert history.history.keys() == plain.history.keys()
    for name, values in plain.history.items():
        assert history.history[name] == pytest.approx(values, rel=1e-6), name
    # The evaluations themselves are right: the last one matches one on the final weights.
    if hook == "end":
        assert callback.results[-1] == pytest.approx(
            model.evaluate(x[:10], y[:10], verbose=0, return_dict=True), rel=1e-6
        )
