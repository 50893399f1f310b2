"""`compile(jit_compile=True)` compiles the whole training step: same numbers as eager.

Each case trains one model eagerly and one with `jit_compile=True` from the same weights on the
same batches, then compares the epoch logs (loss and metrics) and the weights. The matrix runs
with dynamo's `aot_eager` backend (dynamo's graph and AOTAutograd's functionalisation, eager
kernels: no C++ code generation, so seconds per case); `test_inductor_*` run the real backend.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import kfit
import kfit.training.jit


def _regression(n: int = 70, features: int = 3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, features)).astype("float32")
    y = (x.sum(1, keepdims=True) + 0.1 * rng.normal(size=(n, 1))).astype("float32")
    return x, y


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))


@pytest.fixture
def graphs(monkeypatch):
    """Compiles with `aot_eager`, counting the graphs dynamo hands to the backend."""
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.aot_autograd import make_boxed_func

    recorded: list[torch.fx.GraphModule] = []

    def boxed(graph_module, example_inputs):
        return make_boxed_func(graph_module.forward)

    aot = aot_autograd(fw_compiler=boxed)

    def counting_backend(graph_module, example_inputs):
        recorded.append(graph_module)
        return aot(graph_module, example_inputs)

    real_compile = torch.compile

    def compile_with_backend(fn, mode=None, **options):
        return real_compile(fn, backend=counting_backend, **options)

    monkeypatch.setattr(kfit.training.jit, "_compiled", {})
    monkeypatch.setattr(kfit.training.jit, "_compiled_steps", {})
    monkeypatch.setattr(torch, "compile", compile_with_backend)
    torch._dynamo.reset()
    yield recorded
    torch._dynamo.reset()


def _train_both(build, compile_kwargs, fit_kwargs, epochs=3):
    """Trains an eager and a jit model alike; returns both models and histories."""
    models, histories = [], []
    for jit_compile in (False, True):
        model = build()
        kwargs = copy.deepcopy(compile_kwargs)
        model.compile(device="cpu", jit_compile=jit_compile, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback warning in the supported cases
            history = model.fit(epochs=epochs, shuffle=False, verbose=0, **fit_kwargs)
        models.append(model)
        histories.append(history.history)
    return models, histories


def _assert_same(models, histories, rtol=1e-5, atol=1e-6):
    eager_logs, jit_logs = histories
    assert set(jit_logs) == set(eager_logs)
    for key, values in eager_logs.items():
        np.testing.assert_allclose(jit_logs[key], values, rtol=rtol, atol=atol, err_msg=key)
    eager, jitted = models
    for (name, ours), theirs in zip(jitted.named_parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=rtol, atol=atol, msg=name)


def _whole_step_graphs(graphs):
    """The graphs holding a training step (the optimizer's update among their operations)."""
    return [g for g in graphs if any("foreach" in str(n.target) for n in g.graph.nodes)]


OPTIMIZERS = {
    "sgd": "sgd",
    "sgd_momentum": kfit.optimizers.SGD(0.05, momentum=0.9),
    "sgd_nesterov": kfit.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "adam": kfit.optimizers.Adam(0.01),
    "adamw": kfit.optimizers.AdamW(0.01, weight_decay=0.05),
    "rmsprop": kfit.optimizers.RMSprop(0.01),
    "rmsprop_momentum": kfit.optimizers.RMSprop(0.01, momentum=0.5),
    "torch_adam_amsgrad": lambda params: torch.optim.Adam(params, lr=0.01, amsgrad=True),
}


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS), ids=list(OPTIMIZERS))
def test_optimizers_match_eager(graphs, optimizer, weighted):
    x, y = _regression()
    spec = OPTIMIZERS[optimizer]
    fit_kwargs = {"x": x, "y": y, "batch_size": 16}  # 4 full batches and one of 6
    if weighted:
        fit_kwargs["sample_weight"] = np.linspace(0.2, 2.0, len(x)).astype("float32")

    def build():
        model = kfit.Model(_mlp())
        return model

    def compile_kwargs():
        if callable(spec) and not isinstance(spec, kfit.optimizers.Optimizer):
            return None
        return {
            "optimizer": spec,
            "loss": "mse",
            "metrics": ["mae"],
            "weighted_metrics": ["mse"] if weighted else None,
        }

    if compile_kwargs() is None:  # a torch optimizer instance: one per model

        def build():  # noqa: F811 - the optimizer needs the model's own parameters
            module = _mlp()
            model = kfit.Model(module)
            model._test_optimizer = spec(module.parameters())
            return model

        models, histories = [], []
        for jit_compile in (False, True):
            model = build()
            model.compile(
                model.__dict__.pop("_test_optimizer"),
                "mse",
                metrics=["mae"],
                device="cpu",
                jit_compile=jit_compile,
            )
            histories.append(model.fit(epochs=3, shuffle=False, verbose=0, **fit_kwargs).history)
            models.append(model)
    else:
        models, histories = _train_both(build, compile_kwargs(), fit_kwargs)
    _assert_same(models, histories)
    assert len(_whole_step_graphs(graphs)) == 1  # the partial batch ran eagerly
    assert models[1].compile_state.jit.whole_step


@pytest.mark.parametrize(
    "options",
    [
        {"clipnorm": 0.05},
        {"clipvalue": 0.02},
        {"global_clipnorm": 0.05},
        {"weight_decay": 0.1},
        {"gradient_accumulation_steps": 3},
        {"gradient_accumulation_steps": 2, "global_clipnorm": 0.05},
        {"learning_rate": kfit.optimizers.schedules.ExponentialDecay(0.05, 3, 0.5)},
    ],
    ids=[
        "clipnorm",
        "clipvalue",
        "global_clipnorm",
        "decay",
        "accumulate3",
        "accumulate_clip",
        "schedule",
    ],
)
@pytest.mark.parametrize("optimizer", ["SGD", "Adam", "RMSprop"])
def test_keras_optimizer_options_match_eager(graphs, optimizer, options):
    x, y = _regression()
    options = {"learning_rate": 0.05, **options}
    spec = getattr(kfit.optimizers, optimizer)(**options)
    models, histories = _train_both(
        lambda: kfit.Model(_mlp()),
        {"optimizer": spec, "loss": "mse", "metrics": ["mae"]},
        {"x": x, "y": y, "batch_size": 16},
        epochs=4,
    )
    # Adam's bias corrections are tensors in the graph (floats eagerly): with clipped
    # gradients its normalised steps carry the last-bit differences a little further.
    _assert_same(models, histories, rtol=1e-4, atol=1e-5)
    assert models[0].optimizer.iterations == models[1].optimizer.iterations
    accumulation = options.get("gradient_accumulation_steps", 1)
    # One graph per place in the accumulation cycle (first, middle, updating), never per step:
    # a scheduled learning rate is a tensor input of the graph.
    assert len(_whole_step_graphs(graphs)) <= min(accumulation, 3)
    assert len(graphs) <= 3


def test_a_learning_rate_changed_by_a_callback_is_used_without_recompiling(graphs):
    x, y = _regression()

    def halve(epoch, rate):
        return rate / 2 if epoch else rate

    models, histories = _train_both(
        lambda: kfit.Model(_mlp()),
        {"optimizer": kfit.optimizers.Adam(0.05), "loss": "mse"},
        {
            "x": x,
            "y": y,
            "batch_size": 16,
            "callbacks": [kfit.callbacks.LearningRateScheduler(halve)],
        },
        epochs=4,
    )
    _assert_same(models, histories, rtol=1e-4, atol=1e-5)  # Adam: see above
    assert models[1].optimizer.learning_rate == pytest.approx(0.05 / 8)
    assert len(graphs) == 1


def test_add_loss_terms_are_in_the_graph_and_logged(graphs):
    class WithActivityLoss(kfit.Model):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.hidden, self.out = nn.Linear(3, 8), nn.Linear(8, 1)

        def forward(self, x):
            hidden = torch.relu(self.hidden(x))
            kfit.add_loss(0.01 * hidden.pow(2).mean(), name="activity")
            return self.out(hidden)

    def build():
        model = WithActivityLoss()
        model.add_loss(lambda: 0.001 * model.out.weight.pow(2).sum(), name="l2")
        return model

    x, y = _regression()
    models, histories = _train_both(
        build, {"optimizer": "adam", "loss": "mse"}, {"x": x, "y": y, "batch_size": 16}
    )
    assert {"activity", "l2"} <= set(histories[1])
    _assert_same(models, histories)
    assert len(_whole_step_graphs(graphs)) == 1


def test_several_outputs_with_weights_and_their_own_losses_match_eager(graphs):
    class TwoHeads(kfit.Model):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.trunk, self.a, self.b = nn.Linear(3, 8), nn.Linear(8, 1), nn.Linear(8, 3)

        def forward(self, x):
            hidden = torch.relu(self.trunk(x))
            return {"a": self.a(hidden), "b": self.b(hidden)}

    x, y = _regression()
    classes = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64")
    models, histories = _train_both(
        TwoHeads,
        {
            "optimizer": "rmsprop",
            "loss": {"a": "mse", "b": kfit.losses.SparseCategoricalCrossentropy(from_logits=True)},
            "loss_weights": {"a": 1.0, "b": 0.5},
            "metrics": {"a": ["mae"], "b": ["accuracy"]},
        },
        {"x": x, "y": {"a": y, "b": classes}, "batch_size": 16},
    )
    assert {"loss", "a_loss", "b_loss", "a_mae", "b_accuracy"} <= set(histories[1])
    _assert_same(models, histories)
    assert len(_whole_step_graphs(graphs)) == 1


def test_bf16_autocast_on_the_cpu_matches_eager(graphs):
    x, y = _regression()
    models, histories = _train_both(
        lambda: kfit.Model(_mlp()),
        {"optimizer": "adam", "loss": "mse", "metrics": ["mae"], "precision": "bf16-mixed"},
        {"x": x, "y": y, "batch_size": 16},
    )
    # bfloat16 has 8 bits of mantissa: the compiled graph may round differently.
    _assert_same(models, histories, rtol=2e-2, atol=2e-3)
    assert len(_whole_step_graphs(graphs)) == 1


def test_batch_norm_buffers_train_as_eagerly(graphs):
    def build():
        torch.manual_seed(0)
        return kfit.Model(nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Linear(8, 1)))

    x, y = _regression()
    models, histories = _train_both(
        build, {"optimizer": "sgd", "loss": "mse"}, {"x": x, "y": y, "batch_size": 16}
    )
    _assert_same(models, histories)
    eager_bn, jit_bn = models[0].module[1], models[1].module[1]
    torch.testing.assert_close(jit_bn.running_mean, eager_bn.running_mean)
    assert int(jit_bn.num_batches_tracked) == int(eager_bn.num_batches_tracked)


def test_recompiles_are_bounded_over_epochs_and_batch_sizes(graphs):
    model = kfit.Model(_mlp())
    model.compile("adam", "mse", metrics=["mae"], device="cpu", jit_compile=True)
    x, y = _regression(70)
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_split=0.2)
    model.evaluate(x, y, batch_size=16, verbose=0)
    assert len(_whole_step_graphs(graphs)) == 1  # partial batches (6 and 8) ran eagerly
    assert model.jit_compile_seconds > 0


def test_the_compile_time_is_reported_and_zero_without_jit():
    model = kfit.Model(_mlp())
    model.compile("sgd", "mse", device="cpu")
    model.fit(*_regression(), epochs=1, verbose=0)
    assert model.jit_compile_seconds == 0.0


def _lstm_model():
    class LSTMRegressor(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.lstm, self.out = nn.LSTM(1, 4, batch_first=True), nn.Linear(4, 1)

        def forward(self, x):
            return self.out(self.lstm(x.unsqueeze(-1))[0][:, -1])

    return kfit.Model(LSTMRegressor())


@pytest.mark.parametrize(
    ("build", "optimizer", "reason"),
    [
        (_lstm_model, "adam", "LSTM"),
        (lambda: kfit.Model(_mlp()), "adagrad", "Adagrad"),
    ],
    ids=["lstm", "adagrad"],
)
def test_a_step_that_cannot_be_compiled_whole_warns_once_and_matches_eager(
    graphs, build, optimizer, reason
):
    x, y = _regression()
    eager = build()
    eager.compile(optimizer, "mse", device="cpu")
    expected = eager.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0).history
    model = build()
    model.compile(optimizer, "mse", device="cpu", jit_compile=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0).history
    messages = [str(w.message) for w in caught if "whole training step" in str(w.message)]
    assert len(messages) == 1, messages
    assert reason in messages[0]
    assert not model.compile_state.jit.whole_step
    np.testing.assert_allclose(history["loss"], expected["loss"], rtol=1e-5)


def test_a_custom_train_step_warns_once_and_keeps_its_forward_compiled(graphs):
    class Custom(kfit.Model):
        def train_step(self, data):
            x, y = data
            y_pred, loss = self._forward_and_loss(x, y, None)
            self.apply_gradients(loss)
            self.update_metrics(loss, y, y_pred, None, len(x))

    model = Custom(_mlp())
    model.compile("sgd", "mse", device="cpu", jit_compile=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(*_regression(), batch_size=16, epochs=2, verbose=0)
    messages = [str(w.message) for w in caught if "custom train_step" in str(w.message)]
    assert len(messages) == 1
    assert graphs
    assert not _whole_step_graphs(graphs)


def test_reduce_overhead_without_cuda_warns_and_compiles_without_cuda_graphs(graphs):
    model = kfit.Model(_mlp())
    with pytest.warns(UserWarning, match="need a CUDA device"):
        model.compile("sgd", "mse", device="cpu", jit_compile="reduce-overhead")
    assert model.compile_state.jit.mode is None
    model.fit(*_regression(), batch_size=16, epochs=2, verbose=0)
    assert len(_whole_step_graphs(graphs)) == 1


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_jit_compile_takes_a_bool_or_reduce_overhead(value):
    model = kfit.Model(_mlp())
    with pytest.raises(TypeError, match="`jit_compile` must be True, False or 'reduce-overhead'"):
        model.compile("sgd", "mse", device="cpu", jit_compile=value)
    assert model.compile_state is None  # nothing changed


def test_inductor_whole_step_matches_eager_with_accumulation_and_clipping():
    # The real backend (C++ code generation on the CPU): seconds, so one case.
    torch._dynamo.reset()
    x, y = _regression()
    spec = kfit.optimizers.Adam(0.01, global_clipnorm=0.5, gradient_accumulation_steps=2)
    models, histories = _train_both(
        lambda: kfit.Model(_mlp()),
        {"optimizer": spec, "loss": "mse", "metrics": ["mae"]},
        {"x": x, "y": y, "batch_size": 16},
    )
    _assert_same(models, histories)
    assert models[1].compile_state.jit.whole_step
    assert models[1].jit_compile_seconds > 0


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class _NoHostSyncInSteps(kfit.callbacks.Callback):
    """Makes any host-device sync from the first step's start to the last step's end raise."""

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.params["steps"] - 1:
            torch.cuda.set_sync_debug_mode("default")


@needs_cuda
@pytest.mark.parametrize("jit_compile", [True, "reduce-overhead"])
def test_cuda_whole_step_matches_eager_without_host_syncs(jit_compile):
    torch._dynamo.reset()
    x, y = _regression(256)
    models, histories = [], []
    for flag in (False, jit_compile):
        model = kfit.Model(_mlp())
        model.compile(
            kfit.optimizers.Adam(0.01, clipnorm=1.0),
            "mse",
            metrics=["mae"],
            device="cuda",
            jit_compile=flag,
        )
        model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)  # compiles
        try:
            history = model.fit(
                x,
                y,
                batch_size=32,
                epochs=1,
                shuffle=False,
                verbose=0,
                callbacks=[_NoHostSyncInSteps()],
            )
        finally:
            torch.cuda.set_sync_debug_mode("default")
        models.append(model)
        histories.append(history.history)
    _assert_same(models, histories, rtol=1e-4, atol=1e-5)
    assert models[1].compile_state.jit.whole_step
    assert models[1].compile_state.jit.mode == (None if jit_compile is True else "reduce-overhead")


def test_an_optimizer_state_loaded_mid_training_is_the_one_updated(graphs):
    x, y = _regression()
    models = []
    for jit_compile in (False, True):
        model = kfit.Model(_mlp())
        model.compile("adam", "mse", device="cpu", jit_compile=jit_compile)
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        model.optimizer.load_state_dict(copy.deepcopy(model.optimizer.state_dict()))
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        models.append(model)
    eager_state, jit_state = (m.optimizer.state_dict()["state"] for m in models)
    for index, entries in eager_state.items():
        for key, value in entries.items():
            torch.testing.assert_close(jit_state[index][key], value, rtol=1e-5, atol=1e-6)
    assert int(jit_state[0]["step"]) == 4 * 5
