"""Models with several outputs: losses, loss weights, metrics and sample weights per output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import kfit

NUM_FEATURES = 6
N = 90


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, NUM_FEATURES)).astype("float32")
    y_a = (x @ rng.normal(size=(NUM_FEATURES, 2))).astype("float32")
    y_b = (x @ rng.normal(size=(NUM_FEATURES, 3))).argmax(1)
    sample_weight = rng.uniform(0.2, 2.0, N).astype("float32")
    return x, y_a, y_b, sample_weight


class TwoHeads(kfit.Model):
    """A shared trunk with a regression head and a 3-class softmax head."""

    def __init__(self, as_dict: bool = True):
        super().__init__()
        self.as_dict = as_dict
        self.trunk = nn.Linear(NUM_FEATURES, 8)
        self.head_a = nn.Linear(8, 2)
        self.head_b = nn.Linear(8, 3)

    def forward(self, x):
        hidden = torch.relu(self.trunk(x))
        a, b = self.head_a(hidden), torch.softmax(self.head_b(hidden), dim=-1)
        return {"out_a": a, "out_b": b} if self.as_dict else (a, b)


def _compiled(as_dict: bool = True, **compile_kwargs) -> TwoHeads:
    torch.manual_seed(0)
    model = TwoHeads(as_dict)
    model.compile(optimizer=kfit.optimizers.SGD(0.05), device="cpu", **compile_kwargs)
    return model


# ---------------------------------------------------------------- against Keras 3


@pytest.mark.keras_compat
@pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")
def test_two_outputs_with_dict_losses_weights_metrics_and_sample_weight_match_keras(keras):
    x, y_a, y_b, sample_weight = _data()
    inputs = keras.Input((NUM_FEATURES,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    outputs = {
        "out_a": keras.layers.Dense(2, name="out_a")(hidden),
        "out_b": keras.layers.Dense(3, activation="softmax", name="out_b")(hidden),
    }
    keras_model = keras.Model(inputs, outputs)
    model = TwoHeads()
    weights = [torch.from_numpy(w) for w in keras_model.get_weights()]
    with torch.no_grad():
        for layer, kernel, bias in zip(
            (model.trunk, model.head_a, model.head_b), weights[::2], weights[1::2], strict=True
        ):
            layer.weight.copy_(kernel.T)  # Keras kernels are (in, out)
            layer.bias.copy_(bias)
    settings = {
        "loss": {"out_a": "mse", "out_b": "sparse_categorical_crossentropy"},
        "loss_weights": {"out_a": 0.5, "out_b": 2.0},
        "metrics": {"out_a": ["mae"], "out_b": ["accuracy"]},
        "weighted_metrics": {"out_a": ["mae"]},
    }
    keras_model.compile(optimizer=keras.optimizers.SGD(0.05), **settings)
    model.compile(optimizer=kfit.optimizers.SGD(0.05), device="cpu", **settings)
    y = {"out_a": y_a, "out_b": y_b}
    fit_kwargs = {
        "epochs": 3,
        "batch_size": 16,
        "shuffle": False,
        "verbose": 0,
        "validation_split": 0.2,
        "sample_weight": sample_weight,
    }
    expected = keras_model.fit(x, y, **fit_kwargs).history
    got = model.fit(x, y, **fit_kwargs).history

    assert sorted(got) == sorted(expected)  # out_a_loss, out_a_weighted_mae, val_..., ...
    for key, values in expected.items():
        np.testing.assert_allclose(got[key], values, rtol=1e-4, atol=1e-6, err_msg=key)
    # evaluate's list: [loss, out_a_loss, out_b_loss, metrics...], as Keras orders it here
    np.testing.assert_allclose(
        model.evaluate(x, y, verbose=0), keras_model.evaluate(x, y, verbose=0), rtol=1e-5
    )


# ---------------------------------------------------------------- names and structure


def test_tuple_outputs_are_named_output_1_output_2_with_list_losses_and_metrics():
    x, y_a, y_b, _ = _data()
    model = _compiled(
        as_dict=False,
        loss=["mse", "sparse_categorical_crossentropy"],
        metrics=[["mae"], ["accuracy"]],
    )
    history = model.fit(x, (y_a, y_b), epochs=1, batch_size=30, verbose=0)
    assert list(history.history) == [
        "loss",
        "output_1_loss",
        "output_2_loss",
        "output_1_mae",
        "output_2_accuracy",
    ]


def test_total_loss_is_the_weighted_sum_of_the_unweighted_per_output_losses():
    x, y_a, y_b, _ = _data()
    model = _compiled(
        loss={"out_a": "mse", "out_b": "sparse_categorical_crossentropy"},
        loss_weights=[0.25, 3.0],
    )
    logs = model.evaluate(x, {"out_a": y_a, "out_b": y_b}, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(0.25 * logs["out_a_loss"] + 3.0 * logs["out_b_loss"])
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    mse = ((out["out_a"] - torch.from_numpy(y_a)) ** 2).mean()
    nll = -torch.log(out["out_b"][torch.arange(N), torch.from_numpy(y_b)]).mean()
    assert logs["out_a_loss"] == pytest.approx(mse.item(), rel=1e-5)
    assert logs["out_b_loss"] == pytest.approx(nll.item(), rel=1e-5)


def test_one_loss_applies_to_every_output_as_in_keras():
    x, y_a, _, _ = _data()
    model = _compiled(loss="mse")
    y_b = np.zeros((N, 3), dtype="float32")
    logs = model.evaluate(x, {"out_a": y_a, "out_b": y_b}, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "out_a_loss", "out_b_loss"}
    assert logs["loss"] == pytest.approx(logs["out_a_loss"] + logs["out_b_loss"])


def test_an_output_without_a_loss_needs_no_target_and_is_not_trained():
    x, y_a, _, _ = _data()
    model = _compiled(loss={"out_a": "mse"})
    before = model.head_b.weight.detach().clone()
    history = model.fit(x, {"out_a": y_a}, epochs=1, verbose=0)
    assert list(history.history) == ["loss"]  # one loss: no per-output keys, as in Keras
    assert torch.equal(model.head_b.weight, before)


def test_targets_as_a_list_follow_the_order_of_dict_outputs():
    x, y_a, y_b, _ = _data()
    settings = {"loss": {"out_a": "mse", "out_b": "sparse_categorical_crossentropy"}}
    by_name = _compiled(**settings).evaluate(
        x, {"out_a": y_a, "out_b": y_b}, verbose=0, return_dict=True
    )
    by_position = _compiled(**settings).evaluate(x, [y_a, y_b], verbose=0, return_dict=True)
    assert by_name == by_position


def test_one_metric_object_named_for_two_outputs_keeps_separate_state():
    x, y_a, _, _ = _data()
    shared = kfit.metrics.MeanAbsoluteError()
    model = _compiled(loss="mse", metrics={"out_a": [shared], "out_b": [shared]})
    y_b = np.ones((N, 3), dtype="float32")
    logs = model.evaluate(x, {"out_a": y_a, "out_b": y_b}, verbose=0, return_dict=True)
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    assert logs["out_a_mean_absolute_error"] == pytest.approx(
        (out["out_a"] - torch.from_numpy(y_a)).abs().mean().item(), rel=1e-5
    )
    assert logs["out_b_mean_absolute_error"] == pytest.approx(
        (out["out_b"] - 1.0).abs().mean().item(), rel=1e-5
    )


def test_sample_weight_per_output_weighs_only_that_output():
    x, y_a, y_b, sample_weight = _data()
    y = {"out_a": y_a, "out_b": y_b}
    settings = {"loss": {"out_a": "mse", "out_b": "sparse_categorical_crossentropy"}}
    plain = _compiled(**settings).evaluate(x, y, verbose=0, return_dict=True)
    weighted = _compiled(**settings).evaluate(
        x, y, sample_weight={"out_a": sample_weight}, verbose=0, return_dict=True
    )
    assert weighted["out_b_loss"] == pytest.approx(plain["out_b_loss"])
    assert weighted["out_a_loss"] != pytest.approx(plain["out_a_loss"])


# ---------------------------------------------------------------- errors, before any step


@pytest.mark.parametrize(
    ("settings", "fit_y", "message"),
    [
        ({"loss": {"out_c": "mse"}}, None, r"\['out_c'\], which match no output"),
        ({"loss": ["mse"]}, None, "`loss` has 1 entries, but the model has 2 outputs"),
        ({"loss": "mse", "metrics": {"outa": ["mae"]}}, None, r"\['outa'\], which match"),
        ({"loss": "mse", "metrics": ["mae"]}, None, "`metrics` has 1 entries"),
        ({"loss": "mse", "loss_weights": {"b": 1.0}}, None, r"\['b'\], which match no"),
        ({"loss": "mse"}, "tensor", "cannot tell which one"),
        ({"loss": "mse"}, "missing", r"no entry for the outputs \['out_b'\]"),
        ({"loss": "mse"}, "extra", r"keys \['out_z'\] that match no output"),
    ],
)
def test_mismatched_names_and_structures_fail_before_training(settings, fit_y, message):
    x, y_a, _, _ = _data()
    y_b = np.zeros((N, 3), dtype="float32")
    y = {
        None: {"out_a": y_a, "out_b": y_b},
        "tensor": y_a,
        "missing": {"out_a": y_a},
        "extra": {"out_a": y_a, "out_b": y_b, "out_z": y_a},
    }[fit_y]
    model = _compiled(**settings)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, epochs=1, verbose=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_class_weight_on_a_multi_output_model_is_refused_as_in_keras():
    x, y_a, y_b, _ = _data()
    model = _compiled(loss="mse")
    with pytest.raises(ValueError, match="only supported for models with a single output"):
        model.fit(x, {"out_a": y_a, "out_b": y_b}, class_weight={0: 1.0}, verbose=0)


def test_a_dict_loss_for_a_single_output_model_is_a_clear_error():
    model = kfit.Model(nn.Linear(3, 1))
    model.compile(loss={"a": "mse"}, device="cpu")
    with pytest.raises(ValueError, match="returns a single tensor"):
        model.fit(np.zeros((4, 3), "float32"), np.zeros((4, 1), "float32"), verbose=0)


def test_unknown_loss_id_inside_a_dict_fails_at_compile():
    with pytest.raises(ValueError, match="mean_squared_error"):
        TwoHeads().compile(loss={"out_a": "mean_sqared_error"}, device="cpu")


def test_bad_loss_weights_fail_at_compile():
    with pytest.raises(ValueError, match="`loss_weights` must be a finite number"):
        TwoHeads().compile(loss="mse", loss_weights={"out_a": "heavy"}, device="cpu")


def test_predict_returns_the_output_structure():
    x, *_ = _data()
    model = _compiled(loss="mse")
    outputs = model.predict(x, verbose=0)
    assert set(outputs) == {"out_a", "out_b"}
    assert outputs["out_a"].shape == (N, 2)
    assert outputs["out_b"].shape == (N, 3)


def test_a_data_set_yielding_targets_and_weights_per_output_equals_arrays():
    x, y_a, y_b, sample_weight = _data()
    settings = {"loss": {"out_a": "mse", "out_b": "sparse_categorical_crossentropy"}}
    y = {"out_a": y_a, "out_b": y_b}
    weights = {"out_a": sample_weight}
    from_arrays = _compiled(**settings).evaluate(
        x, y, sample_weight=weights, batch_size=30, verbose=0, return_dict=True
    )
    batches = [
        (
            x[i : i + 30],
            {k: v[i : i + 30] for k, v in y.items()},
            {"out_a": sample_weight[i : i + 30]},
        )
        for i in range(0, N, 30)
    ]
    from_batches = _compiled(**settings).evaluate(iter(batches), verbose=0, return_dict=True)
    assert from_batches == pytest.approx(from_arrays)


def test_sample_weight_naming_no_output_fails_before_training():
    x, y_a, y_b, sample_weight = _data()
    model = _compiled(loss={"out_a": "mse", "out_b": "sparse_categorical_crossentropy"})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"`sample_weight` has keys \['out_z'\]"):
        model.fit(
            x,
            {"out_a": y_a, "out_b": y_b},
            sample_weight={"out_z": sample_weight},
            epochs=1,
            verbose=0,
        )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
