"""`compile(jit_compile=True)` (`kfit.training.jit`): the compiled graphs, fallbacks and references.

The whole training step's equivalence with eager is in `test_jit_whole_step.py`.
"""

from __future__ import annotations

import copy
import gc
import pickle
import warnings
import weakref

import numpy as np
import pytest
import torch
from torch import nn

import kfit
import kfit.training.jit


def _regression(n: int = 40):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype("float32")
    return x, x.sum(1, keepdims=True)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))


@pytest.fixture
def graphs(monkeypatch):
    """Compiles with a recording backend (no code generation: fast) and returns its graphs."""
    recorded: list[torch.fx.GraphModule] = []

    def recording_backend(graph_module, example_inputs):
        recorded.append(graph_module)
        return graph_module.forward

    real_compile = torch.compile

    def recording_compile(fn, mode=None, **options):
        return real_compile(fn, backend=recording_backend, **options)

    monkeypatch.setattr(kfit.training.jit, "_compiled", {})
    monkeypatch.setattr(kfit.training.jit, "_compiled_steps", {})
    monkeypatch.setattr(torch, "compile", recording_compile)
    torch._dynamo.reset()
    yield recorded
    torch._dynamo.reset()


def _ops(graph_module: torch.fx.GraphModule) -> str:
    return " ".join(str(node.target) for node in graph_module.graph.nodes)


def test_forward_and_loss_are_one_graph_and_training_matches_eager(graphs):
    x, y = _regression()
    eager, jitted = kfit.Model(_mlp()), kfit.Model(_mlp())
    eager.compile("sgd", "mse", metrics=["mae"], device="cpu")
    jitted.compile("sgd", "mse", metrics=["mae"], device="cpu", jit_compile=True)
    eager_history = eager.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    jitted_history = jitted.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    for key in ("loss", "mae"):
        assert jitted_history.history[key] == pytest.approx(eager_history.history[key], rel=1e-5)
    for ours, theirs in zip(jitted.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs)
    assert graphs, "nothing went through torch.compile"
    assert any("linear" in _ops(g) and "mse_loss" in _ops(g) for g in graphs)
    assert jitted.compile_state.jit.enabled


def test_the_first_batch_check_runs_eagerly(graphs):
    model = kfit.Model(_mlp())
    model.compile("sgd", "mse", device="cpu", jit_compile=True)
    model.evaluate(*_regression(), verbose=0)  # evaluate has no first-batch check
    compiled_for_evaluate = len(graphs)
    # One check and two steps: the first step runs eagerly, the second compiles.
    model.fit(*_regression(), batch_size=40, epochs=2, verbose=0)
    assert compiled_for_evaluate >= 1
    # Training compiles its own graph (the whole step); the no-grad check added none.
    assert len(graphs) == compiled_for_evaluate + 1


def test_predict_goes_through_the_compiled_forward(graphs):
    model = kfit.Model(_mlp())
    model.compile("sgd", "mse", device="cpu", jit_compile=True)
    x, _ = _regression()
    predictions = model.predict(x, verbose=0)
    np.testing.assert_allclose(predictions, model.module(torch.from_numpy(x)).detach().numpy())
    assert any("linear" in _ops(g) and "mse_loss" not in _ops(g) for g in graphs)


def test_per_output_losses_compile_the_forward_and_track_each_loss_eagerly(graphs):
    class TwoHeads(kfit.Model):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.a, self.b = nn.Linear(3, 1), nn.Linear(3, 1)

        def forward(self, x):
            return {"a": self.a(x), "b": self.b(x)}

    x, y = _regression()
    histories = []
    for jit_compile in (False, True):
        model = TwoHeads()
        model.compile("sgd", {"a": "mse", "b": "mae"}, device="cpu", jit_compile=jit_compile)
        histories.append(model.fit(x, {"a": y, "b": y}, epochs=2, shuffle=False, verbose=0))
    assert set(histories[1].history) == {"loss", "a_loss", "b_loss"}
    for key, values in histories[0].history.items():
        assert histories[1].history[key] == pytest.approx(values, rel=1e-5)
    assert graphs


def test_a_failing_compiler_warns_once_and_the_model_trains_eagerly(monkeypatch):
    def failing_backend(graph_module, example_inputs):
        raise RuntimeError("no C++ compiler here")

    real_compile = torch.compile
    monkeypatch.setattr(kfit.training.jit, "_compiled", {})
    monkeypatch.setattr(kfit.training.jit, "_compiled_steps", {})
    monkeypatch.setattr(
        torch,
        "compile",
        lambda fn, mode=None, **kw: real_compile(fn, backend=failing_backend, **kw),
    )
    torch._dynamo.reset()
    x, y = _regression()
    eager, jitted = kfit.Model(_mlp()), kfit.Model(_mlp())
    eager.compile("sgd", "mse", device="cpu")
    jitted.compile("sgd", "mse", device="cpu", jit_compile=True)
    with pytest.warns(UserWarning, match="torch.compile failed") as warned:
        history = jitted.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert len([w for w in warned if "torch.compile failed" in str(w.message)]) == 1
    assert not jitted.compile_state.jit.enabled
    expected = eager.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert history.history["loss"] == pytest.approx(expected.history["loss"], rel=1e-6)
    torch._dynamo.reset()


def test_an_error_of_the_model_itself_is_raised_not_taken_for_a_compile_failure(graphs):
    class FailsOnSmallBatches(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(3, 1)

        def forward(self, x):
            if x.shape[0] < 16:
                raise ValueError("batch too small for this model")
            return self.layer(x)

    model = kfit.Model(FailsOnSmallBatches())
    model.compile("sgd", "mse", device="cpu", jit_compile=True)
    x, y = _regression(40)  # batches of 16, 16 and 8
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="batch too small"):
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert model.compile_state.jit.enabled  # not mistaken for a compiler failure
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_torch_compile_unavailable_warns_at_compile_and_runs_eagerly(monkeypatch):
    def unavailable(*args, **kwargs):
        raise RuntimeError("torch.compile is not supported on this Python")

    monkeypatch.setattr(kfit.training.jit, "_compiled", {})
    monkeypatch.setattr(torch, "compile", unavailable)
    model = kfit.Model(nn.Linear(3, 1))
    with pytest.warns(UserWarning, match="torch.compile is unavailable"):
        model.compile("sgd", "mse", device="cpu", jit_compile=True)
    assert model.compile_state.jit is None
    assert len(model.fit(*_regression(), epochs=1, verbose=0).history["loss"]) == 1


def test_a_jit_model_is_freed_when_deleted_and_its_copies_train_on_their_own(graphs):
    x, y = _regression()
    # The first compile in a process leaves dynamo's tracer state (which holds the model) in
    # a reference cycle, freed by the next garbage collection: compile once beforehand, so the
    # check below is about kfit's references alone, whatever test ran first.
    warm_up = kfit.Model(_mlp())
    warm_up.compile("sgd", "mse", device="cpu", jit_compile=True)
    warm_up.fit(x, y, epochs=1, verbose=0)
    del warm_up
    gc.collect()
    model = kfit.Model(_mlp())
    model.compile("sgd", "mse", device="cpu", jit_compile=True)
    model.fit(x, y, epochs=1, verbose=0)
    for copied in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert copied.compile_state.jit is not model.compile_state.jit
        weights = [p.detach().clone() for p in model.parameters()]
        copied.fit(x, y, epochs=1, verbose=0)
        assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True))
    reference = weakref.ref(model)
    gc.disable()
    try:
        del model
        assert reference() is None  # no reference cycle through the compiled function
    finally:
        gc.enable()


def test_inductor_end_to_end_matches_eager():
    # The real backend (C++ code generation on the CPU): seconds, so run once.
    x, y = _regression()
    eager, jitted = kfit.Model(_mlp()), kfit.Model(_mlp())
    eager.compile("rmsprop", "mse", device="cpu")
    jitted.compile("rmsprop", "mse", device="cpu", jit_compile=True)
    expected = eager.fit(x, y, batch_size=20, epochs=2, shuffle=False, verbose=0)
    history = jitted.fit(x, y, batch_size=20, epochs=2, shuffle=False, verbose=0)
    assert history.history["loss"] == pytest.approx(expected.history["loss"], rel=1e-5)
    assert jitted.compile_state.jit.enabled


def test_a_frame_dynamo_leaves_untraced_runs_eagerly_without_recursion(graphs):
    # Past dynamo's recompile limit, or with dynamo disabled, the compiled function runs as
    # plain Python: the model's call inside must take the eager path, not come back.
    # dynamo's own patch: monkeypatch deletes a config entry on undo under pytest >= 9.2.
    model = kfit.Model(_mlp())
    model.compile("sgd", "mse", device="cpu", jit_compile=True)
    with torch._dynamo.config.patch(disable=True), warnings.catch_warnings():
        warnings.simplefilter("error")  # no "torch.compile failed" fallback warning
        history = model.fit(*_regression(), batch_size=16, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert model.compile_state.jit.enabled
    assert graphs == []


def test_an_overridden_compute_loss_with_a_tracker_compiles_the_forward_alone(graphs):
    # Keras's pattern: compute_loss updates a tracker. Its host counters must stay out of the
    # graph, or every step would recompile.
    class Tracked(kfit.Model):
        def __init__(self):
            super().__init__(_mlp())
            self.penalty_tracker = kfit.metrics.Mean(name="penalty")

        def compute_loss(self, x, y, y_pred, sample_weight=None):
            loss = super().compute_loss(x, y, y_pred, sample_weight)
            self.penalty_tracker.update(loss.detach())
            return loss

    histories = []
    for jit_compile in (False, True):
        model = Tracked()
        model.compile("sgd", "mse", device="cpu", jit_compile=jit_compile)
        histories.append(model.fit(*_regression(), batch_size=16, epochs=3, verbose=0))
    assert histories[1].history["penalty"] == pytest.approx(histories[0].history["penalty"])
    assert 1 <= len(graphs) <= 3  # the forward, once per batch shape (and not per step)
    assert all("mse_loss" not in _ops(g) for g in graphs)
