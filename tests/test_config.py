"""get_config/from_config and serialize/deserialize of losses, optimizers and schedules, and
save/load of a compile made with objects."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import kfit
from kfit import losses as kl
from kfit import optimizers as ko
from kfit import schedules as ks
from kfit.compiled import config as compile_config

os.environ.setdefault("KERAS_BACKEND", "torch")

# Every loss class with options away from its defaults.
LOSS_CASES = [
    (kl.BinaryCrossentropy, {"from_logits": True, "label_smoothing": 0.1, "axis": 0}),
    (kl.BinaryFocalCrossentropy, {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.0}),
    (kl.CTC, {"reduction": "sum"}),
    (kl.CategoricalCrossentropy, {"from_logits": True, "label_smoothing": 0.2}),
    (kl.CategoricalFocalCrossentropy, {"alpha": [0.1, 0.9], "gamma": 3.0}),
    (kl.CategoricalGeneralizedCrossEntropy, {"q": 0.3}),
    (kl.CategoricalHinge, {"name": "ch"}),
    (kl.Circle, {"gamma": 10.0, "margin": 0.2, "remove_diagonal": False}),
    (kl.CosineDistance, {"axis": 0}),
    (kl.CosineSimilarity, {"axis": 0}),
    (kl.Dice, {"axis": [1, 2]}),
    (kl.Hinge, {"reduction": None}),
    (kl.Huber, {"delta": 2.0}),
    (kl.KLDivergence, {"reduction": "mean_with_sample_weight"}),
    (kl.LogCosh, {"dtype": "float64"}),
    (kl.MeanAbsoluteError, {"name": "l1"}),
    (kl.MeanAbsolutePercentageError, {}),
    (kl.MeanSquaredError, {"reduction": "sum"}),
    (kl.MeanSquaredLogarithmicError, {}),
    (kl.Poisson, {}),
    (kl.SparseCategoricalCrossentropy, {"from_logits": True, "ignore_class": -1, "axis": 1}),
    (kl.SquaredHinge, {}),
    (kl.Tversky, {"alpha": 0.2, "beta": 0.8, "axis": 1}),
]


def test_every_loss_class_is_in_the_round_trip_cases():
    classes = {v for v in kl.ALL_OBJECTS_DICT.values() if isinstance(v, type)}
    assert classes == {cls for cls, _ in LOSS_CASES}


@pytest.mark.parametrize(("cls", "options"), LOSS_CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_loss_config_round_trips(cls, options):
    loss = cls(**options)
    config = loss.get_config()
    for key, value in options.items():
        assert config[key] == value
    rebuilt = cls.from_config(config)
    assert type(rebuilt) is cls
    assert rebuilt.get_config() == config
    serialized = kl.serialize(loss)
    assert serialized["class_name"] == cls.__name__
    for restored in (kl.deserialize(serialized), kl.get(serialized)):
        assert type(restored) is cls
        assert restored.get_config() == config


def test_rebuilt_loss_computes_the_same_value():
    loss = kl.Huber(delta=0.3, reduction="sum")
    rebuilt = kl.deserialize(kl.serialize(loss))
    y_true, y_pred = torch.randn(5, 3), torch.randn(5, 3)
    assert torch.equal(loss(y_true, y_pred), rebuilt(y_true, y_pred))


def test_loss_functions_serialize_by_name_as_keras_does(keras):
    assert kl.serialize(kl.mean_squared_error) == keras.losses.serialize(
        keras.losses.mean_squared_error
    )
    assert kl.deserialize(kl.serialize(kl.huber)) is kl.huber
    wrapper = kl.LossFunctionWrapper(kl.huber, delta=0.5)
    rebuilt = kl.LossFunctionWrapper.from_config(wrapper.get_config())
    assert rebuilt.fn is kl.huber
    assert rebuilt.fn_kwargs == {"delta": 0.5}


def test_unknown_loss_class_in_config_suggests_the_closest():
    with pytest.raises(ValueError, match="Did you mean 'Huber'"):
        kl.deserialize({"class_name": "Hubr", "config": {}})
    with pytest.raises(ValueError, match="class_name"):
        kl.deserialize({"config": {}})
    with pytest.raises(TypeError, match="string id or a dict"):
        kl.deserialize(3)
    with pytest.raises(TypeError, match="Cannot serialize"):
        kl.serialize(lambda y_true, y_pred: y_pred)


def test_keras_loss_configs_are_accepted(keras):
    for name in dir(keras.losses):
        cls = getattr(keras.losses, name)
        if not isinstance(cls, type) or name == "Loss":
            continue
        serialized = keras.losses.serialize(cls(reduction="sum"))
        loss = kl.get(serialized)
        assert type(loss) is getattr(kl, name)
        for key, value in serialized["config"].items():
            assert loss.get_config()[key] == value


# --------------------------------------------------------------------------- optimizers

OPTIMIZER_CASES = [
    (ko.SGD, {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True, "clipnorm": 1.0}),
    (ko.RMSprop, {"rho": 0.8, "momentum": 0.1, "epsilon": 1e-6, "centered": True}),
    (ko.Adam, {"beta_1": 0.8, "amsgrad": True, "weight_decay": 0.01, "clipvalue": 0.5}),
    (ko.AdamW, {"weight_decay": 0.1, "beta_2": 0.99, "global_clipnorm": 2.0}),
    (ko.Adagrad, {"initial_accumulator_value": 0.2, "epsilon": 1e-5}),
    (ko.Adadelta, {"rho": 0.9, "gradient_accumulation_steps": 3}),
    (ko.Adamax, {"beta_1": 0.7, "name": "mine"}),
    (ko.Nadam, {"epsilon": 1e-6}),
    (ko.Adafactor, {"beta_2_decay": -0.7, "clip_threshold": 2.0}),
    (ko.Lion, {"beta_1": 0.95, "beta_2": 0.98}),
    (ko.Ftrl, {"learning_rate_power": -0.4, "l1_regularization_strength": 0.01, "beta": 0.1}),
]


def test_every_optimizer_is_in_the_round_trip_cases():
    assert set(ko.ALL_OBJECTS_DICT.values()) == {cls for cls, _ in OPTIMIZER_CASES}


@pytest.mark.parametrize(
    ("cls", "options"), OPTIMIZER_CASES, ids=lambda c: getattr(c, "__name__", "")
)
def test_optimizer_config_round_trips(cls, options):
    optimizer = cls(**options)
    config = optimizer.get_config()
    for key, value in options.items():
        assert config[key] == value
    for rebuilt in (cls.from_config(config), ko.deserialize(ko.serialize(optimizer))):
        assert type(rebuilt) is cls
        assert rebuilt.get_config() == config
        assert rebuilt.torch_kwargs == optimizer.torch_kwargs


def test_optimizer_with_a_schedule_round_trips_the_schedule():
    schedule = ks.ExponentialDecay(0.1, decay_steps=5, decay_rate=0.5, staircase=True)
    optimizer = ko.Adam(learning_rate=schedule)
    config = optimizer.get_config()
    assert config["learning_rate"] == ks.serialize(schedule)
    rebuilt = ko.get(ko.serialize(optimizer))
    assert isinstance(rebuilt.schedule, ks.ExponentialDecay)
    assert rebuilt.schedule.get_config() == schedule.get_config()


def test_optimizer_with_a_plain_function_rate_has_no_config():
    with pytest.raises(TypeError, match="plain function"):
        ko.Adam(learning_rate=lambda step: 0.1).get_config()


def test_keras_optimizer_configs_are_accepted(keras):
    schedule = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=100, alpha=0.1)
    for cls in set(ko.ALL_OBJECTS_DICT.values()):
        keras_optimizer = getattr(keras.optimizers, cls.__name__)(learning_rate=schedule)
        serialized = keras.optimizers.serialize(keras_optimizer)
        optimizer = ko.get(serialized)
        assert type(optimizer) is cls
        config = optimizer.get_config()
        for key, value in serialized["config"].items():
            if key in config and key != "learning_rate":
                assert config[key] == pytest.approx(value), key
        assert optimizer.schedule(50) == pytest.approx(float(schedule(50)), rel=1e-6)


def test_keras_only_optimizer_options_are_refused_unless_default():
    config = ko.Adam().get_config()
    assert ko.Adam.from_config({**config, "use_ema": False}).get_config() == config
    with pytest.raises(ValueError, match="use_ema=True"):
        ko.Adam.from_config({**config, "use_ema": True})
    with pytest.raises(ValueError, match="Did you mean 'adam'"):
        ko.deserialize({"class_name": "Adma", "config": {}})


# --------------------------------------------------------------------------- schedules


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("ExponentialDecay", (0.1, 10, 0.9)),
        ("PiecewiseConstantDecay", ([10, 20], [0.1, 0.01, 0.001])),
        ("PolynomialDecay", (0.1, 100, 0.01, 2.0, True)),
        ("InverseTimeDecay", (0.1, 10, 0.5, True)),
        ("CosineDecay", (0.1, 100, 0.1, "warm", 0.2, 10)),
        ("CosineDecayRestarts", (0.1, 20, 2.0, 0.9, 0.1)),
    ],
)
def test_schedule_configs_round_trip_and_match_keras(keras, name, args):
    assert set(ks.ALL_OBJECTS_DICT) >= {name}
    keras_schedule = getattr(keras.optimizers.schedules, name)(*args)
    schedule = getattr(ks, name)(*args)
    assert schedule.get_config() == keras_schedule.get_config()
    rebuilt = ks.get(keras.optimizers.schedules.serialize(keras_schedule))
    assert rebuilt.get_config() == schedule.get_config()
    for step in (0, 7, 33):
        assert rebuilt(step) == pytest.approx(float(keras_schedule(step)), rel=1e-6)


# --------------------------------------------------------------------------- save / load


def _model() -> kfit.Model:
    torch.manual_seed(0)
    return kfit.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))


def _data():
    rng = np.random.default_rng(0)
    return rng.random((16, 3), dtype=np.float32), rng.random((16, 1), dtype=np.float32)


def _object_compile(model: kfit.Model) -> None:
    schedule = ks.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5)
    model.compile(
        optimizer=ko.Adam(learning_rate=schedule, clipnorm=1.0),
        loss=kl.Huber(delta=2.0),
        metrics=["mae"],
        device="cpu",
    )


def test_save_load_restores_an_object_compile_and_the_schedule_continues(tmp_path):
    x, y = _data()
    trained = _model()
    _object_compile(trained)
    trained.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # everything was recorded: no warning
        trained.save(tmp_path / "s.pt")
    fresh = _model()
    fresh.load(tmp_path / "s.pt")
    assert isinstance(fresh.compile_state.optimizer_source, ko.Adam)
    assert fresh.compile_state.optimizer_source.clipnorm == 1.0
    assert fresh.optimizer.iterations == trained.optimizer.iterations == 8
    assert fresh.optimizer.learning_rate == pytest.approx(trained.optimizer.learning_rate)
    assert fresh.optimizer.learning_rate == pytest.approx(0.05 * 0.5**4)  # not restarted
    # Both continue identically: same weights, optimizer state and scheduled rate.
    after_trained = trained.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    after_fresh = fresh.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    assert after_fresh.history == after_trained.history
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value)
    loss = fresh.compile_state.loss.terms[0][1].fn
    assert isinstance(loss, kl.Huber)
    assert loss.fn_kwargs["delta"] == 2.0


def test_save_load_restores_loss_dicts_lists_and_registered_functions(tmp_path):
    config = compile_config.to_config(
        optimizer="sgd",
        loss=[kl.mean_absolute_error, {"a": kl.Tversky(alpha=0.1, beta=0.9)}],
        loss_weights={"a": 2.0},
    )
    restored = compile_config.from_config(config)
    assert kl.get(restored["loss"][0]) is kl.mean_absolute_error  # recorded by its id
    assert restored["loss"][1]["a"].get_config()["alpha"] == 0.1
    assert restored["loss_weights"] == {"a": 2.0}
    assert compile_config.UNRECORDED_KEY not in config


def test_unrecordable_settings_are_named_on_save_and_load_warns(tmp_path):
    x, y = _data()
    model = _model()
    model.compile(
        optimizer=ko.SGD(learning_rate=lambda step: 0.01),
        loss=lambda y_true, y_pred: (y_true - y_pred).abs().mean(-1),
        device="cpu",
    )
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    with pytest.warns(UserWarning, match=r"\['optimizer', 'loss'\]"):
        model.save(tmp_path / "s.pt")
    fresh = _model()
    with pytest.warns(UserWarning, match="optimizer state was not restored"):
        fresh.load(tmp_path / "s.pt")
    assert fresh.compile_state is None


def test_metric_objects_are_restored_from_their_config_or_named_as_unsaved(tmp_path):
    x, y = _data()
    metric = kfit.metrics.MeanAbsoluteError()
    model = _model()
    model.compile(optimizer="adam", loss="mse", metrics=[metric], device="cpu")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    if hasattr(metric, "get_config"):
        model.save(tmp_path / "s.pt")
        fresh = _model()
        fresh.load(tmp_path / "s.pt")
        fresh.evaluate(x, y, verbose=0)
        assert fresh.metrics_names == model.metrics_names
    else:  # metrics without get_config: the setting is named and left out
        with pytest.warns(UserWarning, match=r"\['metrics'\]"):
            model.save(tmp_path / "s.pt")
        fresh = _model()
        fresh.load(tmp_path / "s.pt")
        assert fresh.optimizer.iterations == model.optimizer.iterations


def test_torch_loss_modules_and_optimizer_classes_are_recorded(tmp_path):
    x, y = _data()
    model = _model()
    model.compile(optimizer=torch.optim.AdamW, loss=nn.HuberLoss(delta=0.5), device="cpu")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.save(tmp_path / "s.pt")
    fresh = _model()
    fresh.load(tmp_path / "s.pt")
    assert isinstance(fresh.optimizer, torch.optim.AdamW)
    assert fresh.optimizer.iterations == model.optimizer.iterations == 2
    restored = compile_config.from_config(model.compile_state.config)["loss"]
    assert isinstance(restored, nn.HuberLoss)
    assert restored.delta == 0.5


def test_torch_loss_module_with_a_weight_tensor_is_not_recorded():
    config = compile_config.to_config(
        optimizer="adam", loss=nn.CrossEntropyLoss(weight=torch.ones(3), label_smoothing=0.1)
    )
    assert config[compile_config.UNRECORDED_KEY] == ["loss"]
    config = compile_config.to_config(optimizer="adam", loss=nn.CrossEntropyLoss(ignore_index=3))
    restored = compile_config.from_config(config)["loss"]
    assert restored.ignore_index == 3
