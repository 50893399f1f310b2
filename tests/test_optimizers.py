"""`kfit.optimizers`: Keras ids and defaults on torch.optim, clipping, weight decay, Lion, Ftrl.

The update rules are checked against numpy transcriptions of Keras 3's `update_step`s
(`keras/src/optimizers/{lion,ftrl}.py`) and of its `BaseOptimizer` clipping and decoupled
weight decay, one or a few steps at a time.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import kfit
from kfit import optimizers

# --------------------------------------------------------------------------- Keras defaults

KERAS_DEFAULTS = [
    ("sgd", torch.optim.SGD, {"lr": 0.01, "momentum": 0.0, "nesterov": False}),
    (
        "rmsprop",
        torch.optim.RMSprop,
        {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7, "momentum": 0.0, "centered": False},
    ),
    (
        "adam",
        torch.optim.Adam,
        {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-7, "amsgrad": False, "weight_decay": 0.0},
    ),
    (
        "adamw",
        torch.optim.AdamW,
        {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-7, "weight_decay": 0.004},
    ),
    (
        "adagrad",
        torch.optim.Adagrad,
        {"lr": 1e-3, "initial_accumulator_value": 0.1, "eps": 1e-7},
    ),
    ("adadelta", torch.optim.Adadelta, {"lr": 1e-3, "rho": 0.95, "eps": 1e-7}),
    ("adamax", torch.optim.Adamax, {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-7}),
    (
        "nadam",
        torch.optim.NAdam,
        {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-7, "momentum_decay": 0.004},
    ),
    (
        "adafactor",
        torch.optim.Adafactor,
        {"lr": 1e-3, "beta2_decay": -0.8, "eps": (1e-30, 1e-3), "d": 1.0},
    ),
]


def _compiled(optimizer: Any, module: nn.Module | None = None) -> kfit.Model:
    model = kfit.Model(module or nn.Linear(3, 2))
    model.compile(optimizer=optimizer, loss="mse")
    return model


@pytest.mark.parametrize(
    ("identifier", "torch_class", "expected"), KERAS_DEFAULTS, ids=[c[0] for c in KERAS_DEFAULTS]
)
def test_string_id_builds_torch_optimizer_with_keras_defaults(identifier, torch_class, expected):
    optimizer = _compiled(identifier).optimizer

    group = optimizer.param_groups[0]
    assert isinstance(optimizer, torch_class)
    assert {key: group[key] for key in expected} == expected


def test_lion_id_has_keras_defaults():
    group = _compiled("lion").optimizer.param_groups[0]

    assert (group["lr"], tuple(group["betas"])) == (1e-3, (0.9, 0.99))


def test_ftrl_id_has_keras_defaults():
    group = _compiled("ftrl").optimizer.param_groups[0]

    assert (group["lr"], group["lr_power"], group["l1"], group["l2"]) == (1e-3, -0.5, 0.0, 0.0)


@pytest.mark.parametrize(
    ("optimizer", "expected"),
    [
        (optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True), {"momentum": 0.9}),
        (optimizers.RMSprop(rho=0.8, epsilon=1e-5), {"alpha": 0.8, "eps": 1e-5}),
        (optimizers.Adam(beta_1=0.8, beta_2=0.95), {"betas": (0.8, 0.95)}),
        (optimizers.Adagrad(initial_accumulator_value=0.5), {"initial_accumulator_value": 0.5}),
        (optimizers.Adadelta(rho=0.5), {"rho": 0.5}),
    ],
)
def test_keras_argument_names_map_to_torch_hyper_parameters(optimizer, expected):
    group = _compiled(optimizer).optimizer.param_groups[0]

    assert {key: group[key] for key in expected} == expected


def test_learning_rate_sets_torch_lr():
    group = _compiled(optimizers.Adam(learning_rate=0.25)).optimizer.param_groups[0]

    assert group["lr"] == 0.25


def test_negative_learning_rate_raises():
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.SGD(learning_rate=-1.0)


def test_unknown_keras_option_raises_naming_it():
    with pytest.raises(TypeError, match="use_ema"):
        optimizers.Adam(use_ema=True)


@pytest.mark.parametrize("identifier", ["muon", "schedulefreeadamw"])
def test_unsupported_keras_id_raises_saying_so(identifier):
    with pytest.raises(ValueError, match="not supported"):
        optimizers.get(identifier)


@pytest.mark.parametrize("option", ["clipnorm", "clipvalue", "global_clipnorm"])
def test_non_positive_clip_option_raises_naming_it(option):
    with pytest.raises(ValueError, match=option):
        optimizers.SGD(**{option: 0.0})


# --------------------------------------------------------------------------- one step of SGD


def _linear(seed: int = 0) -> nn.Linear:
    """A 3→2 linear layer with fixed, fairly large weights, so gradients are large too."""
    generator = torch.Generator().manual_seed(seed)
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(2, 3, generator=generator) * 3)
        layer.bias.copy_(torch.randn(2, generator=generator) * 3)
    return layer


def _batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 2)).astype(np.float32)


def _reference_grads(layer: nn.Linear, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The mse gradients of a copy of `layer` (Keras's mse: mean over features and samples)."""
    weight = layer.weight.detach().clone().requires_grad_()
    bias = layer.bias.detach().clone().requires_grad_()
    loss = F.mse_loss(torch.from_numpy(x) @ weight.T + bias, torch.from_numpy(y))
    loss.backward()
    return {"weight": weight.grad.double().numpy(), "bias": bias.grad.double().numpy()}


def _params(layer: nn.Linear) -> dict[str, np.ndarray]:
    return {
        "weight": layer.weight.detach().cpu().double().numpy(),
        "bias": layer.bias.detach().cpu().double().numpy(),
    }


def _step_with(optimizer: Any) -> tuple[dict, dict, dict]:
    """Returns (weights before, reference gradients, weights after one kfit step)."""
    layer = _linear()
    x, y = _batch()
    before, grads = _params(layer), _reference_grads(layer, x, y)
    model = _compiled(optimizer, layer)
    model.train_on_batch(x, y)
    return before, grads, _params(layer)


def _assert_sgd_step(before, grads, after, lr):
    for name in before:
        np.testing.assert_allclose(
            after[name], before[name] - lr * grads[name], rtol=1e-5, atol=1e-6
        )


def test_clipnorm_clips_each_gradient_to_the_norm():
    clipnorm = 0.5
    before, grads, after = _step_with(optimizers.SGD(learning_rate=0.1, clipnorm=clipnorm))

    norms = {name: np.linalg.norm(g) for name, g in grads.items()}
    assert min(norms.values()) > clipnorm  # clipping is active for every tensor
    clipped = {name: g * clipnorm / max(norms[name], clipnorm) for name, g in grads.items()}
    _assert_sgd_step(before, clipped, after, 0.1)


def test_clipnorm_leaves_small_gradients_alone():
    before, grads, after = _step_with(optimizers.SGD(learning_rate=0.1, clipnorm=1e6))

    _assert_sgd_step(before, grads, after, 0.1)


def test_clipvalue_clips_each_gradient_entry():
    clipvalue = 0.5
    before, grads, after = _step_with(optimizers.SGD(learning_rate=0.1, clipvalue=clipvalue))

    assert max(np.abs(g).max() for g in grads.values()) > clipvalue
    clipped = {name: np.clip(g, -clipvalue, clipvalue) for name, g in grads.items()}
    _assert_sgd_step(before, clipped, after, 0.1)


def test_global_clipnorm_scales_all_gradients_together():
    clipnorm = 0.5
    before, grads, after = _step_with(optimizers.SGD(learning_rate=0.1, global_clipnorm=clipnorm))

    total = np.sqrt(sum(np.sum(g**2) for g in grads.values()))
    assert total > clipnorm
    clipped = {name: g * clipnorm / total for name, g in grads.items()}
    _assert_sgd_step(before, clipped, after, 0.1)


def test_weight_decay_is_decoupled_and_applied_before_the_update():
    lr, decay = 0.1, 0.5
    before, grads, after = _step_with(optimizers.SGD(learning_rate=lr, weight_decay=decay))

    # Keras: w -= w * weight_decay * lr, then the plain update with the gradient at the old w.
    for name in before:
        expected = before[name] - before[name] * decay * lr - lr * grads[name]
        np.testing.assert_allclose(after[name], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer_class", [optimizers.Adam, optimizers.AdamW])
def test_adam_weight_decay_is_decoupled_not_l2(optimizer_class):
    lr, decay, epsilon = 0.1, 0.5, 1e-7
    optimizer = optimizer_class(learning_rate=lr, weight_decay=decay, epsilon=epsilon)
    before, grads, after = _step_with(optimizer)

    # Adam's first step moves each weight by lr * g / (|g| + eps); an L2 penalty would have
    # added decay * w to g instead.
    for name in before:
        g = grads[name]
        expected = before[name] * (1 - decay * lr) - lr * g / (np.abs(g) + epsilon)
        np.testing.assert_allclose(after[name], expected, rtol=1e-5, atol=1e-6)


def test_adam_with_weight_decay_keeps_torch_weight_decay_zero():
    group = _compiled(optimizers.Adam(weight_decay=0.5)).optimizer.param_groups[0]

    assert group["weight_decay"] == 0.0


# --------------------------------------------------------------------------- Lion and Ftrl


def _numpy_lion(w, grads, lr, beta_1, beta_2):
    """Keras 3's `Lion.update_step`, applied once per gradient."""
    m = np.zeros_like(w)
    for g in grads:
        w = w - lr * np.sign(m * beta_1 + g * (1.0 - beta_1))
        m = m * beta_2 + g * (1.0 - beta_2)
    return w


def _numpy_ftrl(w, grads, lr, lr_power, init, l1, l2, l2_shrinkage, beta):
    """Keras 3's `Ftrl.update_step`, applied once per gradient."""
    accum, linear = np.full_like(w, init), np.zeros_like(w)
    l2_reg = l2 + beta / (2.0 * lr)
    for g in grads:
        grad_to_use = g + 2 * l2_shrinkage * w
        new_accum = accum + g**2
        linear = linear + grad_to_use - (new_accum**-lr_power - accum**-lr_power) / lr * w
        quadratic = new_accum**-lr_power / lr + 2 * l2_reg
        w = (np.clip(linear, -l1, l1) - linear) / quadratic
        accum = new_accum
    return w


def _run_torch(spec: optimizers.Optimizer, w0: np.ndarray, grads: list[np.ndarray]) -> np.ndarray:
    param = nn.Parameter(torch.from_numpy(w0.copy()))
    optimizer = spec.build([param])
    for g in grads:
        param.grad = torch.from_numpy(g.copy())
        optimizer.step()
    return param.detach().numpy()


def _gradients(steps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(2)
    return rng.normal(size=(4, 3)), [rng.normal(size=(4, 3)) for _ in range(steps)]


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize(
    "options", [{}, {"learning_rate": 0.1, "beta_1": 0.5, "beta_2": 0.7}], ids=["default", "set"]
)
def test_lion_matches_keras_update_rule(steps, options):
    w0, grads = _gradients(steps)
    spec = optimizers.Lion(**options)
    beta_1, beta_2 = options.get("beta_1", 0.9), options.get("beta_2", 0.99)

    result = _run_torch(spec, w0, grads)

    expected = _numpy_lion(w0, grads, spec.learning_rate, beta_1, beta_2)
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12)


FTRL_OPTIONS = {
    "default": {},
    "l1": {"learning_rate": 0.5, "l1_regularization_strength": 0.3},
    "l2": {"learning_rate": 0.5, "l2_regularization_strength": 0.2},
    "shrinkage": {"learning_rate": 0.5, "l2_shrinkage_regularization_strength": 0.1},
    "beta": {"learning_rate": 0.5, "beta": 0.4, "learning_rate_power": -0.3},
    "fixed_rate": {"learning_rate": 0.5, "learning_rate_power": 0.0},
}


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("options", FTRL_OPTIONS.values(), ids=FTRL_OPTIONS.keys())
def test_ftrl_matches_keras_update_rule(steps, options):
    w0, grads = _gradients(steps)
    spec = optimizers.Ftrl(**options)

    result = _run_torch(spec, w0, grads)

    expected = _numpy_ftrl(
        w0,
        grads,
        lr=spec.learning_rate,
        lr_power=options.get("learning_rate_power", -0.5),
        init=options.get("initial_accumulator_value", 0.1),
        l1=options.get("l1_regularization_strength", 0.0),
        l2=options.get("l2_regularization_strength", 0.0),
        l2_shrinkage=options.get("l2_shrinkage_regularization_strength", 0.0),
        beta=options.get("beta", 0.0),
    )
    np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-12)


def test_ftrl_rejects_a_positive_learning_rate_power():
    with pytest.raises(ValueError, match="learning_rate_power"):
        _run_torch(optimizers.Ftrl(learning_rate_power=0.5), *_gradients(1))


@pytest.mark.parametrize("identifier", ["lion", "ftrl"])
def test_lion_and_ftrl_ids_train_a_model(identifier):
    x, y = _batch()
    model = _compiled(identifier, _linear())
    before = model.module.weight.detach().clone()

    model.fit(x, y, epochs=1, verbose=0)

    assert not torch.equal(model.module.weight, before)


# --------------------------------------------------------------------------- accumulation


def _keras_and_kfit_fit(keras, keras_optimizer, kfit_optimizer, epochs=2, **fit_kwargs):
    """Fits the same 4→1 linear regression in Keras and kfit; returns both Histories, weights."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 1)) + 0.3).astype("float32")
    keras_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    kernel, bias = keras_model.get_weights()
    model = kfit.Model(nn.Linear(4, 1))
    with torch.no_grad():
        model.module.weight.copy_(torch.from_numpy(kernel.T))
        model.module.bias.copy_(torch.from_numpy(bias))
    keras_model.compile(optimizer=keras_optimizer, loss="mse")
    model.compile(optimizer=kfit_optimizer, loss="mse", device="cpu")
    settings = {"epochs": epochs, "batch_size": 16, "shuffle": False, "verbose": 0, **fit_kwargs}
    expected = keras_model.fit(x, y, **settings).history
    got = model.fit(x, y, **settings).history
    return expected, got, keras_model.get_weights()[0].T, model.module.weight.detach().numpy()


@pytest.mark.keras_compat
@pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")
@pytest.mark.parametrize(
    "options", [{"momentum": 0.9}, {"momentum": 0.0, "clipnorm": 0.3}], ids=["momentum", "clip"]
)
def test_gradient_accumulation_matches_keras(keras, options):
    expected, got, keras_kernel, kfit_weight = _keras_and_kfit_fit(
        keras,
        keras.optimizers.SGD(0.05, gradient_accumulation_steps=4, **options),
        kfit.optimizers.SGD(0.05, gradient_accumulation_steps=4, **options),
        epochs=3,  # 6 steps per epoch: an update window spans two epochs
    )
    np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-5)
    np.testing.assert_allclose(kfit_weight, keras_kernel, rtol=1e-5, atol=1e-7)


def test_gradient_accumulation_updates_every_k_steps_with_the_average_gradient():
    layer = _linear()
    model = kfit.Model(layer)
    model.compile(
        optimizer=kfit.optimizers.SGD(0.1, gradient_accumulation_steps=2),
        loss="mse",
        device="cpu",
    )
    x, y = _batch()
    before = _params(layer)
    model.train_on_batch(x[:4], y[:4])
    assert all(np.array_equal(before[k], v) for k, v in _params(layer).items())  # accumulating
    first = _reference_grads(_linear(), x[:4], y[:4])
    second = _reference_grads(_linear(), x[4:], y[4:])  # at the same (unchanged) weights
    model.train_on_batch(x[4:], y[4:])
    after = _params(layer)
    for key in before:
        np.testing.assert_allclose(
            after[key], before[key] - 0.1 * (first[key] + second[key]) / 2, rtol=1e-5, atol=1e-7
        )
    assert model.optimizer.param_groups[0]["iterations"] == 2  # saved with optimizer state


@pytest.mark.parametrize("steps", [0, -2, 1.5, True])
def test_bad_gradient_accumulation_steps_raise_naming_the_option(steps):
    with pytest.raises(ValueError, match="`gradient_accumulation_steps` must be"):
        kfit.optimizers.Adam(gradient_accumulation_steps=steps)


# --------------------------------------------------------------------------- schedules


@pytest.mark.keras_compat
@pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")
@pytest.mark.parametrize("accumulation", [None, 2])
def test_learning_rate_schedule_matches_keras_step_by_step(keras, accumulation):

    def schedule(lib):
        return lib.optimizers.schedules.PiecewiseConstantDecay([3, 7], [0.1, 0.03, 0.005])

    expected, got, keras_kernel, kfit_weight = _keras_and_kfit_fit(
        keras,
        keras.optimizers.SGD(schedule(keras), gradient_accumulation_steps=accumulation),
        kfit.optimizers.SGD(schedule(kfit), gradient_accumulation_steps=accumulation),
        epochs=2,
    )
    np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-5)
    np.testing.assert_allclose(kfit_weight, keras_kernel, rtol=1e-5, atol=1e-7)


def test_scheduled_rate_is_set_before_each_update_and_the_step_count_is_kept():
    model = kfit.Model(_linear())
    decay = kfit.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    model.compile(optimizer=kfit.optimizers.SGD(decay), loss="mse", device="cpu")
    x, y = _batch()
    seen = []
    for _ in range(3):
        model.train_on_batch(x, y)
        seen.append(model.optimizer.param_groups[0]["lr"])
    assert seen == [0.1, 0.05, 0.025]  # steps 0, 1, 2
    assert model.optimizer.param_groups[0]["iterations"] == 3


def test_a_scheduled_learning_rate_cannot_be_set_by_a_callback():
    x, y = _batch()
    model = kfit.Model(_linear())
    decay = kfit.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    model.compile(optimizer=kfit.optimizers.SGD(decay), loss="mse", device="cpu")
    callback = kfit.callbacks.LearningRateScheduler(lambda epoch, lr: lr / 2)
    with pytest.raises(TypeError, match="learning-rate schedule, so its learning rate"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])


def test_a_schedule_returning_a_bad_value_is_a_clear_error():
    with pytest.raises(ValueError, match="must return a finite number >= 0; at step 0 it returned"):
        kfit.optimizers.SGD(lambda step: -1.0)


# --------------------------------------------------------------------------- pickling

# What a pickle of `_pickled_objects()` says about them, computed here and in a new process.
_DESCRIBE = """
def describe(objects):
    import torch
    import kfit

    def torch_optimizer(optimizer, torch_class):
        state = optimizer.state[optimizer.param_groups[0]["params"][0]]
        return {
            "class": [type(optimizer).__module__, type(optimizer).__qualname__],
            "is_torch_class": isinstance(optimizer, torch_class),
            "has_keras_attributes": isinstance(optimizer, kfit.optimizers.KerasAttributes),
            "iterations": optimizer.iterations,
            "learning_rate": optimizer.learning_rate,
            "state": {key: torch.as_tensor(value).tolist() for key, value in state.items()},
        }

    spec, schedule = objects["spec"], objects["schedule"]
    return {
        "adam": torch_optimizer(objects["adam"], torch.optim.Adam),
        "lion": torch_optimizer(objects["lion"], kfit.optimizers.lion.TorchLion),
        "spec": [type(spec) is kfit.optimizers.Adam, spec.learning_rate, spec.get_config()],
        "schedule": [
            type(schedule) is kfit.schedules.ExponentialDecay,
            schedule(4),
            schedule.get_config(),
        ],
    }
"""

# The class paths that pickles written before kfit.optimizers and kfit.schedules became
# packages hold, in place of today's.
_PATHS_BEFORE_THE_PACKAGES = {
    b"ckfit.optimizers.adam\nAdam\n": b"ckfit.optimizers\nAdam\n",
    b"ckfit.schedules.decay\nExponentialDecay\n": b"ckfit.schedules\nExponentialDecay\n",
    b"ckfit.optimizers\n_KERAS_CLASSES_TorchLion\n": b"ckfit.optimizers\n_KERAS_CLASSES__Lion\n",
}


def _stepped(spec: optimizers.Optimizer) -> torch.optim.Optimizer:
    module = nn.Linear(3, 2)
    optimizer = spec.build(module.parameters())
    F.mse_loss(module(torch.ones(4, 3)), torch.zeros(4, 2)).backward()
    optimizer.step()
    return optimizer


def _pickled_objects() -> dict[str, Any]:
    torch.manual_seed(0)
    schedule = kfit.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    return {
        "adam": _stepped(optimizers.Adam(learning_rate=0.01)),
        "lion": _stepped(optimizers.Lion(learning_rate=0.02)),
        "spec": optimizers.Adam(learning_rate=schedule, clipnorm=1.0),
        "schedule": schedule,
    }


def test_optimizers_and_schedules_unpickle_in_a_new_process_from_old_and_new_paths(tmp_path):

    objects = _pickled_objects()
    new = pickle.dumps(objects, protocol=2)  # protocol 2 names each class in plain text
    old = new
    for path, path_before in _PATHS_BEFORE_THE_PACKAGES.items():
        assert path in new
        old = old.replace(path, path_before)
    (tmp_path / "new").write_bytes(new)
    (tmp_path / "old").write_bytes(old)
    code = (
        "import json, pickle, sys\n"
        + _DESCRIBE
        + "print(json.dumps({name: describe(pickle.loads(open(sys.argv[1] + '/' + name, 'rb')"
        ".read())) for name in ('new', 'old')}))"
    )
    namespace: dict[str, Any] = {}
    exec(_DESCRIBE, namespace)
    expected = json.loads(json.dumps(namespace["describe"](objects)))

    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )

    described = json.loads(result.stdout)
    assert described["new"] == expected
    assert described["old"] == expected
    assert expected["adam"]["class"] == ["kfit.optimizers", "_KERAS_CLASSES_Adam"]
    assert expected["adam"]["is_torch_class"]
    assert expected["adam"]["has_keras_attributes"]
    assert expected["adam"]["iterations"] == 1
    assert expected["adam"]["state"]
    assert expected["lion"]["class"] == ["kfit.optimizers", "_KERAS_CLASSES_TorchLion"]
    assert expected["lion"]["learning_rate"] == 0.02
    assert expected["lion"]["state"]
    assert expected["spec"][:2] == [True, 0.1]
    assert expected["schedule"][:2] == [True, 0.025]


@pytest.mark.parametrize(
    ("old_name", "cls"),
    [(name, getattr(optimizers, name)) for name in optimizers.__all__ if name[0].isupper()]
    + [("_Lion", optimizers.lion.TorchLion), ("_Ftrl", optimizers.ftrl.TorchFtrl)],
)
def test_classes_unpickle_from_their_path_before_the_package(old_name, cls):

    assert pickle.loads(b"ckfit.optimizers\n" + old_name.encode() + b"\n.") is cls


def test_every_class_pickles_by_a_path_that_finds_it():

    classes = [optimizers.lion.TorchLion, optimizers.ftrl.TorchFtrl]
    classes += [getattr(optimizers, n) for n in optimizers.__all__ if n[0].isupper()]
    for cls in classes:
        assert pickle.loads(pickle.dumps(cls)) is cls
    for torch_class in (torch.optim.SGD, optimizers.lion.TorchLion):
        keras_class = type(
            optimizers.with_keras_attributes(torch_class([nn.Parameter(torch.ones(1))]))
        )
        assert pickle.loads(pickle.dumps(keras_class)) is keras_class


class _OwnSGD(torch.optim.SGD):
    pass


def test_a_torch_optimizer_of_your_own_with_keras_attributes_pickles_within_the_process():

    optimizer = optimizers.with_keras_attributes(_OwnSGD([nn.Parameter(torch.ones(2))], lr=0.5))

    copied = pickle.loads(pickle.dumps(optimizer))

    assert type(copied) is type(optimizer)
    assert isinstance(copied, _OwnSGD)
    assert copied.learning_rate == 0.5


def test_serialize_names_kfit_optimizers_as_the_base_class_module():
    spec = optimizers.Optimizer(torch.optim.SGD, 0.1)

    assert optimizers.serialize(spec)["module"] == "kfit.optimizers"
    assert optimizers.serialize(optimizers.SGD())["module"] == "keras.optimizers"
