"""`kfit.Model` and `kfit.Sequential`: wrapping, subclassing, `compile`, devices, optimizers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import kfit

HAS_ACCELERATOR = torch.cuda.is_available() or torch.backends.mps.is_available()


class TwoLayer(kfit.Model):
    """A model in Keras's subclassing style: layers in `__init__`, the computation in `forward`."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(3, 4)
        self.out = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


# --------------------------------------------------------------------------- wrapping


def test_steps_call_the_wrapped_module_directly_unless_the_model_adds_something(monkeypatch):
    # kfit.Model.forward only calls `module`: steps skip that layer (one nn.Module call less),
    # but never skip a forward hook on the model or a subclass's own forward.
    calls = []
    monkeypatch.setattr(kfit.Model, "__call__", lambda self, *a: calls.append(self) or 0)
    plain = kfit.Model(nn.Linear(3, 1))
    plain.call_forward(torch.zeros(2, 3))
    assert calls == []  # the outer model was not called
    hooked = kfit.Model(nn.Linear(3, 1))
    hooked.register_forward_hook(lambda module, args, output: None)
    hooked.call_forward(torch.zeros(2, 3))
    subclassed = TwoLayer()
    subclassed.call_forward(torch.zeros(2, 3))
    assert calls == [hooked, subclassed]


def test_model_keeps_the_wrapped_module_unchanged():
    module = nn.Linear(3, 1)
    weight = module.weight.detach().clone()

    model = kfit.Model(module)

    assert model.module is module
    assert torch.equal(module.weight, weight)


def test_model_calls_the_wrapped_module():
    module = nn.Linear(3, 2)
    x = torch.rand(4, 3)

    assert torch.equal(kfit.Model(module)(x), module(x))


def test_model_is_an_nn_module():
    assert isinstance(kfit.Model(nn.Linear(3, 1)), nn.Module)


def test_model_state_dict_holds_the_module_state_under_module():
    module = nn.Linear(3, 1)

    state = kfit.Model(module).state_dict()

    assert set(state) == {f"module.{key}" for key in module.state_dict()}


def test_model_parameters_are_the_module_parameters():
    module = nn.Linear(3, 1)

    assert list(kfit.Model(module).parameters()) == list(module.parameters())


def test_model_to_converts_the_module():
    module = nn.Linear(3, 1)

    kfit.Model(module).to(torch.float64)

    assert module.weight.dtype == torch.float64


def test_model_rejects_a_non_module():
    with pytest.raises(TypeError, match="module"):
        kfit.Model(lambda x: x)


def test_model_without_module_or_forward_raises_when_called():
    with pytest.raises(NotImplementedError, match="forward"):
        kfit.Model()(torch.rand(2, 3))


def test_subclassed_model_trains_with_its_own_forward(xy):
    x, y = xy
    model = TwoLayer()
    model.compile(optimizer="sgd", loss="mse")

    history = model.fit(x, y, epochs=2, verbose=0)

    assert len(history.history["loss"]) == 2
    assert model.predict(x, verbose=0).shape == (10, 1)


def test_subclassed_model_registers_its_layers():
    names = set(TwoLayer().state_dict())

    assert names == {"hidden.weight", "hidden.bias", "out.weight", "out.bias"}


# --------------------------------------------------------------------------- Sequential


def test_sequential_takes_layers_as_arguments():
    layers = [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)]

    model = kfit.Sequential(*layers)

    assert list(model.module) == layers


def test_sequential_takes_a_list_of_layers():
    layers = [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)]

    model = kfit.Sequential(layers)

    assert list(model.module) == layers


def test_sequential_applies_layers_in_order():
    first, second = nn.Linear(3, 4), nn.Linear(4, 2)
    x = torch.rand(5, 3)

    assert torch.equal(kfit.Sequential(first, second)(x), second(first(x)))


def test_sequential_add_appends_a_layer():
    model = kfit.Sequential(nn.Linear(3, 4))
    last = nn.Linear(4, 1)

    model.add(last)

    assert model.module[-1] is last
    assert model(torch.rand(2, 3)).shape == (2, 1)


@pytest.mark.parametrize("layer", ["relu", 3, None])
def test_sequential_rejects_a_non_module_layer(layer):
    with pytest.raises(TypeError, match="torch.nn.Module"):
        kfit.Sequential(nn.Linear(3, 4), layer)


def test_sequential_add_rejects_a_non_module():
    with pytest.raises(TypeError, match="layer"):
        kfit.Sequential(nn.Linear(3, 4)).add("relu")


# --------------------------------------------------------------------------- devices


@pytest.mark.skipif(HAS_ACCELERATOR, reason="the automatic choice is CPU only without GPUs")
def test_compile_without_device_picks_cpu_here():
    model = kfit.Sequential(nn.Linear(3, 1))

    model.compile(optimizer="sgd", loss="mse")

    assert model.device == torch.device("cpu")


def test_compile_honours_an_explicit_cpu_device():
    model = kfit.Sequential(nn.Linear(3, 1))

    model.compile(optimizer="sgd", loss="mse", device="cpu")

    assert model.device == torch.device("cpu")
    assert model.module[0].weight.device == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_compile_with_unavailable_cuda_raises_naming_the_device():
    model = kfit.Sequential(nn.Linear(3, 1))

    with pytest.raises(ValueError, match="cuda"):
        model.compile(optimizer="sgd", loss="mse", device="cuda")


@pytest.mark.parametrize("device", ["gpu0", "banana", "cpu:x"])
def test_compile_with_a_malformed_device_raises_naming_device(device):
    model = kfit.Sequential(nn.Linear(3, 1))

    with pytest.raises(ValueError, match="`device`"):
        model.compile(optimizer="sgd", loss="mse", device=device)


def test_predict_works_without_compile(xy):
    x, _ = xy
    module = nn.Linear(3, 2)

    predictions = kfit.Model(module).predict(x, verbose=0)

    np.testing.assert_allclose(predictions, module(torch.from_numpy(x)).detach().numpy())


# --------------------------------------------------------------------------- optimizer ids


@pytest.mark.parametrize("identifier", ["adam", "Adam", "ADAM"])
def test_optimizer_ids_ignore_case(identifier):
    model = kfit.Sequential(nn.Linear(3, 1))

    model.compile(optimizer=identifier, loss="mse")

    assert isinstance(model.optimizer, torch.optim.Adam)


def test_sgd_id_builds_torch_sgd_with_keras_learning_rate():
    model = kfit.Sequential(nn.Linear(3, 1))

    model.compile(optimizer="sgd", loss="mse")

    assert isinstance(model.optimizer, torch.optim.SGD)
    assert model.optimizer.param_groups[0]["lr"] == 0.01


def test_rmsprop_id_builds_torch_rmsprop_with_keras_hyper_parameters():
    model = kfit.Sequential(nn.Linear(3, 1))

    model.compile(optimizer="rmsprop", loss="mse")

    group = model.optimizer.param_groups[0]
    assert isinstance(model.optimizer, torch.optim.RMSprop)
    assert (group["lr"], group["alpha"], group["eps"]) == (1e-3, 0.9, 1e-7)


def test_rmsprop_is_the_default_optimizer():
    model = kfit.Sequential(nn.Linear(3, 1))

    model.compile(loss="mse")

    assert isinstance(model.optimizer, torch.optim.RMSprop)


def test_compile_accepts_a_torch_optimizer_class():
    model = kfit.Sequential(nn.Linear(3, 1))

    model.compile(optimizer=torch.optim.Adagrad, loss="mse")

    assert isinstance(model.optimizer, torch.optim.Adagrad)
    assert model.optimizer.param_groups[0]["params"] == list(model.parameters())


def test_compile_uses_a_torch_optimizer_instance_as_is():
    model = kfit.Sequential(nn.Linear(3, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

    model.compile(optimizer=optimizer, loss="mse")

    assert model.optimizer is optimizer


def test_compile_rejects_an_optimizer_instance_over_other_parameters():
    model = kfit.Sequential(nn.Linear(3, 1))
    optimizer = torch.optim.SGD(nn.Linear(3, 1).parameters(), lr=0.5)

    with pytest.raises(ValueError, match="parameters"):
        model.compile(optimizer=optimizer, loss="mse")


def test_compile_accepts_a_kfit_optimizer_with_options():
    model = kfit.Sequential(nn.Linear(3, 1))

    model.compile(optimizer=kfit.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0), loss="mse")

    assert isinstance(model.optimizer, torch.optim.Adam)
    assert model.optimizer.param_groups[0]["lr"] == 1e-3


@pytest.mark.parametrize(
    ("identifier", "closest"),
    [("adma", "adam"), ("sdg", "sgd"), ("rmsprp", "rmsprop"), ("adamww", "adamw")],
)
def test_unknown_optimizer_id_raises_naming_the_closest_id(identifier, closest):
    model = kfit.Sequential(nn.Linear(3, 1))

    with pytest.raises(ValueError, match=f"Did you mean '{closest}'"):
        model.compile(optimizer=identifier, loss="mse")


@pytest.mark.parametrize("optimizer", [3, None, nn.Linear(1, 1)])
def test_compile_rejects_an_optimizer_of_the_wrong_kind(optimizer):
    model = kfit.Sequential(nn.Linear(3, 1))

    with pytest.raises(TypeError, match="optimizer"):
        model.compile(optimizer=optimizer, loss="mse")


@pytest.mark.parametrize(
    "options",
    [
        {"clipnorm": 1.0, "clipvalue": 1.0},
        {"clipnorm": 1.0, "global_clipnorm": 1.0},
        {"clipvalue": 1.0, "global_clipnorm": 1.0},
    ],
)
def test_two_clip_options_together_raise(options):
    with pytest.raises(ValueError, match="Only one of"):
        kfit.optimizers.Adam(**options)


# --------------------------------------------------------------------------- other compile ids


@pytest.mark.parametrize(
    ("kwargs", "closest"),
    [
        ({"loss": "mean_squared_eror"}, "mean_squared_error"),
        ({"loss": "mse", "metrics": ["accuarcy"]}, "accuracy"),
    ],
)
def test_unknown_loss_or_metric_id_raises_naming_the_closest_id(kwargs, closest):
    model = kfit.Sequential(nn.Linear(3, 1))

    with pytest.raises(ValueError, match=f"Did you mean '{closest}'"):
        model.compile(optimizer="sgd", **kwargs)


def test_failed_compile_leaves_the_model_uncompiled(xy):
    x, y = xy
    model = kfit.Sequential(nn.Linear(3, 1))
    with pytest.raises(ValueError, match="loss"):
        model.compile(optimizer="sgd", loss="mean_squared_eror")

    with pytest.raises(ValueError, match="compile"):
        model.fit(x, y, verbose=0)


def test_bare_metric_id_is_taken_as_a_list(xy):
    x, y = xy
    model = kfit.Sequential(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse", metrics="mae")

    logs = model.evaluate(x, y, verbose=0, return_dict=True)

    assert list(logs) == ["loss", "mae"]


def _regression(n: int = 64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype("float32")
    return x, x.sum(1, keepdims=True)


def test_compile_lr_scheduler_factory_steps_each_epoch_and_logs_the_rate():
    model = kfit.Model(nn.Linear(3, 1))
    model.compile(
        "sgd",
        "mse",
        device="cpu",
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
    )
    history = model.fit(*_regression(), epochs=3, verbose=0)
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.005, 0.0025])
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(0.00125)


def test_torch_scheduler_in_callbacks_is_stepped():
    model = kfit.Model(nn.Linear(3, 1))
    model.compile(torch.optim.SGD(model.parameters(), lr=0.1), "mse", device="cpu")
    scheduler = torch.optim.lr_scheduler.ExponentialLR(model.optimizer, gamma=0.1)
    model.fit(*_regression(), epochs=2, verbose=0, callbacks=[scheduler])
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)


def test_invalid_lr_scheduler_is_refused_before_compile_changes_anything():
    model = kfit.Model(nn.Linear(3, 1))
    with pytest.raises(TypeError, match="lr_scheduler"):
        model.compile("sgd", "mse", device="cpu", lr_scheduler=3)
    assert model.optimizer is None
