"""Tests for kfit.losses: formulas and reductions against Keras 3, shapes, and the registry."""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest
import torch
from torch import nn

import kfit.losses as kl
import kfit.metrics as km
from kfit.losses import batch_means

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
keras_losses = pytest.importorskip("keras.src.losses")

N, C = 8, 5
REDUCTIONS = ["sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", "none"]


def _make(kind: str, rng: np.random.Generator, shape: tuple[int, ...] = (N, C)):
    """Returns `(y_true, y_pred)` numpy arrays of the given kind."""

    def unit(low=0.05, high=0.95):
        return rng.uniform(low, high, size=shape).astype("float32")

    def normal(scale=1.0):
        return (scale * rng.normal(size=shape)).astype("float32")

    def distribution():
        values = unit()
        return values / values.sum(-1, keepdims=True)

    def one_hot():
        return np.eye(shape[-1], dtype="float32")[rng.integers(0, shape[-1], shape[:-1])]

    def zeros_ones():
        return rng.integers(0, 2, size=shape).astype("float32")

    def class_ids():
        return rng.integers(0, shape[-1], size=shape[:-1])

    makers = {
        "real": lambda: (normal(), normal()),
        "positive": lambda: (unit(0.05, 3.0), unit(0.05, 3.0)),
        "binary_probs": lambda: (zeros_ones(), unit(0.02, 0.98)),
        "binary_logits": lambda: (zeros_ones(), normal(3.0)),
        "signed_labels": lambda: (2.0 * zeros_ones() - 1.0, normal()),
        "one_hot_probs": lambda: (one_hot(), distribution()),
        "one_hot_unnormalised": lambda: (one_hot(), unit()),
        "one_hot_logits": lambda: (one_hot(), normal(3.0)),
        "one_hot_scores": lambda: (one_hot(), normal()),
        "distributions": lambda: (distribution(), distribution()),
        "sparse_probs": lambda: (class_ids(), distribution()),
        "sparse_logits": lambda: (class_ids(), normal(3.0)),
        "sparse_logits_padded": lambda: (
            np.where(rng.random(shape[:-1]) < 0.3, -1, class_ids()),
            normal(3.0),
        ),
    }
    return makers[kind]()


def _numpy(value) -> np.ndarray:
    # Keras on the torch backend returns torch tensors.
    return value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)


def _torch(array: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(array)


# (function name, keyword options, kind of data)
FUNCTION_CASES = [
    ("mean_squared_error", {}, "real"),
    ("mean_absolute_error", {}, "real"),
    ("mean_absolute_percentage_error", {}, "real"),
    ("mean_squared_logarithmic_error", {}, "positive"),
    ("cosine_similarity", {}, "real"),
    ("huber", {}, "real"),
    ("huber", {"delta": 0.5}, "real"),
    ("log_cosh", {}, "real"),
    ("hinge", {}, "binary_logits"),
    ("hinge", {}, "signed_labels"),
    ("squared_hinge", {}, "binary_logits"),
    ("squared_hinge", {}, "signed_labels"),
    ("categorical_hinge", {}, "one_hot_scores"),
    ("kl_divergence", {}, "distributions"),
    ("poisson", {}, "positive"),
    ("binary_crossentropy", {}, "binary_probs"),
    ("binary_crossentropy", {"from_logits": True}, "binary_logits"),
    ("binary_crossentropy", {"label_smoothing": 0.1}, "binary_probs"),
    ("binary_crossentropy", {"from_logits": True, "label_smoothing": 0.2}, "binary_logits"),
    ("binary_focal_crossentropy", {}, "binary_probs"),
    ("binary_focal_crossentropy", {"from_logits": True, "gamma": 1.5}, "binary_logits"),
    (
        "binary_focal_crossentropy",
        {"apply_class_balancing": True, "alpha": 0.3, "label_smoothing": 0.1},
        "binary_probs",
    ),
    (
        "binary_focal_crossentropy",
        {"apply_class_balancing": True, "from_logits": True},
        "binary_logits",
    ),
    ("categorical_crossentropy", {}, "one_hot_probs"),
    ("categorical_crossentropy", {}, "one_hot_unnormalised"),
    ("categorical_crossentropy", {"from_logits": True}, "one_hot_logits"),
    ("categorical_crossentropy", {"label_smoothing": 0.1}, "one_hot_probs"),
    ("categorical_crossentropy", {"from_logits": True, "label_smoothing": 0.1}, "one_hot_logits"),
    ("categorical_focal_crossentropy", {}, "one_hot_probs"),
    (
        "categorical_focal_crossentropy",
        {"from_logits": True, "alpha": 0.5, "gamma": 1.0},
        "one_hot_logits",
    ),
    ("categorical_focal_crossentropy", {"label_smoothing": 0.1}, "one_hot_unnormalised"),
    ("sparse_categorical_crossentropy", {}, "sparse_probs"),
    ("sparse_categorical_crossentropy", {"from_logits": True}, "sparse_logits"),
    (
        "sparse_categorical_crossentropy",
        {"from_logits": True, "ignore_class": -1},
        "sparse_logits_padded",
    ),
    ("sparse_categorical_crossentropy", {"ignore_class": 2}, "sparse_probs"),
    ("categorical_generalized_cross_entropy", {"q": 0.5}, "sparse_probs"),
    ("categorical_generalized_cross_entropy", {"q": 0.9}, "sparse_probs"),
    ("dice", {}, "binary_probs"),
    ("dice", {"axis": 1}, "binary_probs"),
    ("tversky", {}, "binary_probs"),
    ("tversky", {"alpha": 0.3, "beta": 0.7}, "binary_probs"),
    ("tversky", {"alpha": 0.7, "beta": 0.3, "axis": 1}, "binary_probs"),
]


def _case_id(case) -> str:
    name, options, kind = case
    shown = ",".join(f"{k}={v}" for k, v in options.items())
    return f"{name}[{shown}]-{kind}" if shown else f"{name}-{kind}"


@pytest.mark.keras_compat
@pytest.mark.parametrize("case", FUNCTION_CASES, ids=_case_id)
def test_loss_function_matches_keras(case):
    name, options, kind = case
    y_true, y_pred = _make(kind, np.random.default_rng(0))
    # Tensors: Keras's categorical_generalized_cross_entropy does not convert numpy arrays.
    keras_inputs = keras.ops.convert_to_tensor(y_true), keras.ops.convert_to_tensor(y_pred)
    expected = _numpy(getattr(keras.losses, name)(*keras_inputs, **options))
    got = getattr(kl, name)(_torch(y_true), _torch(y_pred), **options)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_every_per_sample_loss_function_is_checked_against_keras():
    # ctc and circle take other inputs: tests/test_keras_losses_parity.py checks them.
    checked = {name for name, _, _ in FUNCTION_CASES} | {"ctc", "circle"}
    keras_functions = {
        name
        for name in kl.__all__
        if inspect.isfunction(getattr(kl, name)) and hasattr(keras.losses, name)
    } - {"get", "serialize", "deserialize"}
    assert keras_functions <= checked


@pytest.mark.keras_compat
@pytest.mark.parametrize(
    "case",
    [
        ("mean_squared_error", {}, "real"),
        ("huber", {}, "real"),
        ("binary_crossentropy", {"from_logits": True}, "binary_logits"),
        ("categorical_crossentropy", {}, "one_hot_probs"),
        ("sparse_categorical_crossentropy", {"from_logits": True}, "sparse_logits"),
        ("kl_divergence", {}, "distributions"),
    ],
    ids=_case_id,
)
def test_loss_function_matches_keras_on_temporal_inputs(case):
    name, options, kind = case
    y_true, y_pred = _make(kind, np.random.default_rng(1), shape=(N, 3, C))
    expected = _numpy(getattr(keras.losses, name)(y_true, y_pred, **options))
    got = getattr(kl, name)(_torch(y_true), _torch(y_pred), **options)
    assert got.shape == (N, 3)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_cosine_distance_is_one_minus_cosine():
    y_true, y_pred = _make("real", np.random.default_rng(2))
    cos = (y_true * y_pred).sum(-1) / (
        np.linalg.norm(y_true, axis=-1) * np.linalg.norm(y_pred, axis=-1)
    )
    got = kl.cosine_distance(_torch(y_true), _torch(y_pred))
    np.testing.assert_allclose(got.numpy(), 1.0 - cos, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        kl.cosine_similarity(_torch(y_true), _torch(y_pred)).numpy(), -cos, rtol=1e-5, atol=1e-6
    )


# --------------------------------------------------------------------------- loss classes

# (class name, constructor options, kind of data)
CLASS_CASES = [
    ("MeanSquaredError", {}, "real"),
    ("MeanAbsoluteError", {}, "real"),
    ("MeanAbsolutePercentageError", {}, "real"),
    ("MeanSquaredLogarithmicError", {}, "positive"),
    ("CosineSimilarity", {}, "real"),
    ("Huber", {"delta": 0.5}, "real"),
    ("LogCosh", {}, "real"),
    ("Hinge", {}, "binary_logits"),
    ("SquaredHinge", {}, "signed_labels"),
    ("CategoricalHinge", {}, "one_hot_scores"),
    ("KLDivergence", {}, "distributions"),
    ("Poisson", {}, "positive"),
    ("BinaryCrossentropy", {}, "binary_probs"),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "binary_logits"),
    (
        "BinaryFocalCrossentropy",
        {"apply_class_balancing": True, "from_logits": True},
        "binary_logits",
    ),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "one_hot_logits"),
    ("CategoricalFocalCrossentropy", {"gamma": 1.0}, "one_hot_probs"),
    ("SparseCategoricalCrossentropy", {}, "sparse_probs"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse_logits"),
    ("Dice", {}, "binary_probs"),
    ("Tversky", {"alpha": 0.3, "beta": 0.7}, "binary_probs"),
]


def _compare_loss_class(case, reduction, weighted, seed):
    name, options, kind = case
    rng = np.random.default_rng(seed)
    y_true, y_pred = _make(kind, rng)
    weight = rng.uniform(0.0, 2.0, size=N).astype("float32") if weighted else None
    expected = getattr(keras.losses, name)(reduction=reduction, **options)(
        y_true, y_pred, sample_weight=weight
    )
    loss = getattr(kl, name)(reduction=reduction, **options)
    got = loss(_torch(y_true), _torch(y_pred), None if weight is None else _torch(weight))
    np.testing.assert_allclose(got.numpy(), _numpy(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.keras_compat
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("case", CLASS_CASES, ids=_case_id)
def test_loss_class_matches_keras(case, weighted):
    _compare_loss_class(case, "sum_over_batch_size", weighted, seed=3)


@pytest.mark.keras_compat
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "case",
    [
        ("MeanSquaredError", {}, "real"),
        ("BinaryCrossentropy", {"from_logits": True}, "binary_logits"),
        ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse_logits"),
    ],
    ids=_case_id,
)
def test_loss_reduction_matches_keras(case, reduction, weighted):
    _compare_loss_class(case, reduction, weighted, seed=4)


@pytest.mark.keras_compat
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sparse_categorical_crossentropy_ignore_class_reduces_like_keras(reduction, weighted):
    # Keras masks the ignored samples: the mean runs over the samples that are kept.
    rng = np.random.default_rng(4)
    y_true, y_pred = _make("sparse_logits", rng)
    y_true[:3] = 2
    weight = rng.uniform(0.5, 2.0, size=N).astype("float32") if weighted else None
    options = {"from_logits": True, "ignore_class": 2, "reduction": reduction}
    expected = keras.losses.SparseCategoricalCrossentropy(**options)(
        y_true, y_pred, sample_weight=weight
    )
    loss = kl.SparseCategoricalCrossentropy(**options)
    got = loss(_torch(y_true), _torch(y_pred), None if weight is None else _torch(weight))
    np.testing.assert_allclose(got.numpy(), _numpy(expected), rtol=1e-5, atol=1e-6)


def _per_sample_and_weight():
    rng = np.random.default_rng(5)
    y_true, y_pred = _make("real", rng)
    weight = rng.uniform(0.0, 2.0, size=N).astype("float32")
    weight[: N // 2] = 0.0
    per_sample = np.square(y_true - y_pred).mean(-1)
    return y_true, y_pred, weight, per_sample


def _mse(reduction, y_true, y_pred, weight):
    return kl.MeanSquaredError(reduction=reduction)(_torch(y_true), _torch(y_pred), _torch(weight))


def test_sum_over_batch_size_divides_by_batch_size_not_weight_sum():
    y_true, y_pred, weight, per_sample = _per_sample_and_weight()
    got = _mse("sum_over_batch_size", y_true, y_pred, weight)
    np.testing.assert_allclose(float(got), (weight * per_sample).sum() / N, rtol=1e-5)


def test_mean_with_sample_weight_divides_by_weight_sum():
    y_true, y_pred, weight, per_sample = _per_sample_and_weight()
    got = _mse("mean_with_sample_weight", y_true, y_pred, weight)
    expected = (weight * per_sample).sum() / weight.sum()
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_sum_reduction_adds_weighted_values():
    y_true, y_pred, weight, per_sample = _per_sample_and_weight()
    got = _mse("sum", y_true, y_pred, weight)
    np.testing.assert_allclose(float(got), (weight * per_sample).sum(), rtol=1e-5)


def test_none_reduction_returns_weighted_per_sample_values():
    y_true, y_pred, weight, per_sample = _per_sample_and_weight()
    got = _mse("none", y_true, y_pred, weight)
    assert got.shape == (N,)
    np.testing.assert_allclose(got.numpy(), weight * per_sample, rtol=1e-5, atol=1e-7)


def test_default_reduction_is_sum_over_batch_size():
    y_true, y_pred, weight, _ = _per_sample_and_weight()
    default = kl.MeanSquaredError()(_torch(y_true), _torch(y_pred), _torch(weight))
    assert kl.MeanSquaredError().reduction == "sum_over_batch_size"
    assert float(default) == pytest.approx(
        float(_mse("sum_over_batch_size", y_true, y_pred, weight))
    )


def test_column_sample_weight_matches_flat_sample_weight():
    y_true, y_pred, weight, _ = _per_sample_and_weight()
    loss = kl.MeanSquaredError()
    flat = loss(_torch(y_true), _torch(y_pred), _torch(weight))
    column = loss(_torch(y_true), _torch(y_pred), _torch(weight[:, None]))
    assert float(column) == pytest.approx(float(flat), rel=1e-6)


def test_invalid_reduction_raises_value_error_naming_it():
    with pytest.raises(ValueError, match="reduction") as info:
        kl.MeanSquaredError(reduction="average")
    assert "'average'" in str(info.value)


def test_huber_default_name_is_huber_loss():
    assert kl.Huber().name == "huber_loss"


@pytest.mark.keras_compat
def test_loss_class_default_names_match_keras():
    for name in kl.__all__:
        cls = getattr(kl, name)
        if not isinstance(cls, type) or name in ("Loss", "LossFunctionWrapper"):
            continue
        if hasattr(keras.losses, name):
            keras_class = getattr(keras.losses, name)
            # Read from the signature: Keras makes auto-generated names unique.
            default = inspect.signature(keras_class.__init__).parameters["name"].default
            assert cls().name == default, name


def test_loss_function_wrapper_passes_options_and_names_after_function():
    loss = kl.LossFunctionWrapper(kl.huber, delta=0.25)
    y_true, y_pred, _, _ = _per_sample_and_weight()
    expected = kl.huber(_torch(y_true), _torch(y_pred), delta=0.25).mean()
    assert loss.name == "huber"
    assert float(loss(_torch(y_true), _torch(y_pred))) == pytest.approx(float(expected))


def test_loss_keeps_the_autograd_graph():
    y_pred = torch.randn(N, 1, requires_grad=True)
    loss = kl.BinaryCrossentropy(from_logits=True)(torch.ones(N, 1), y_pred)
    loss.backward()
    assert y_pred.grad is not None
    assert torch.all(y_pred.grad < 0)


# --------------------------------------------------------------------------- shared functions


def test_metric_module_reuses_the_loss_functions():
    shared = [
        name
        for name in sorted(set(kl.__all__) & set(km.__all__))
        # Each module's own registry functions, not per-sample functions.
        if inspect.isfunction(getattr(kl, name)) and name not in ("get", "serialize", "deserialize")
    ]
    assert "mean_squared_error" in shared
    for name in shared:
        assert getattr(kl, name) is getattr(km, name), name


# --------------------------------------------------------------------------- shapes


def test_flat_target_is_matched_to_column_prediction():
    rng = np.random.default_rng(6)
    y_true = _torch(rng.normal(size=N).astype("float32"))
    y_pred = _torch(rng.normal(size=(N, 1)).astype("float32"))
    got = kl.mean_squared_error(y_true, y_pred)
    assert got.shape == (N,)
    torch.testing.assert_close(got, kl.mean_squared_error(y_true[:, None], y_pred))


def test_column_target_is_matched_to_flat_prediction():
    rng = np.random.default_rng(7)
    y_true = _torch(rng.normal(size=(N, 1)).astype("float32"))
    y_pred = _torch(rng.normal(size=(N, 1)).astype("float32"))
    got = kl.mean_absolute_error(y_true, y_pred[:, 0])
    torch.testing.assert_close(got, kl.mean_absolute_error(y_true[:, 0], y_pred[:, 0]))


@pytest.mark.parametrize(
    ("true_shape", "pred_shape"), [((4,), (4, 3)), ((4, 2), (4, 3)), ((4, 3), (5, 3))]
)
def test_mismatched_shapes_raise_value_error_naming_both(true_shape, pred_shape):
    with pytest.raises(ValueError, match="mean_squared_error") as info:
        kl.mean_squared_error(torch.zeros(true_shape), torch.zeros(pred_shape))
    assert str(true_shape) in str(info.value)
    assert str(pred_shape) in str(info.value)


def test_integer_target_is_cast_to_prediction_dtype():
    got = kl.mean_squared_error(torch.tensor([[1], [0]]), torch.tensor([[0.5], [0.5]]))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, torch.tensor([0.25, 0.25]))


@pytest.mark.parametrize(
    "fn",
    [kl.sparse_categorical_crossentropy, km.sparse_categorical_accuracy],
    ids=lambda f: f.__name__,
)
@pytest.mark.parametrize("label_dtype", [torch.int64, torch.int32, torch.float32])
def test_sparse_functions_accept_flat_and_column_labels(fn, label_dtype):
    rng = np.random.default_rng(8)
    labels = _torch(rng.integers(0, C, size=N)).to(label_dtype)
    y_pred = torch.softmax(_torch(rng.normal(size=(N, C)).astype("float32")), -1)
    flat = fn(labels, y_pred)
    column = fn(labels[:, None], y_pred)
    assert flat.shape == (N,)
    torch.testing.assert_close(flat, column)


def test_sparse_labels_of_the_wrong_shape_raise_value_error():
    with pytest.raises(ValueError, match=r"\(4, 2\)"):
        kl.sparse_categorical_crossentropy(torch.zeros(4, 2, dtype=torch.long), torch.rand(4, 3))


def test_sparse_crossentropy_rejects_a_class_axis_other_than_the_last():
    with pytest.raises(ValueError, match="axis"):
        kl.sparse_categorical_crossentropy(
            torch.zeros(4, dtype=torch.long), torch.rand(4, 3), axis=0
        )


# --------------------------------------------------------------------------- registry

_KERAS_BASES = {"Loss", "LossFunctionWrapper"}


def _keras_loss_ids() -> list[str]:
    return sorted(set(keras_losses.ALL_OBJECTS_DICT) - _KERAS_BASES - set(kl.UNSUPPORTED))


@pytest.mark.keras_compat
def test_keras_ids_not_resolved_are_only_the_unsupported_ones():
    assert set(kl.UNSUPPORTED) <= set(keras_losses.ALL_OBJECTS_DICT)
    assert "mse" in _keras_loss_ids()


@pytest.mark.keras_compat
@pytest.mark.parametrize("identifier", _keras_loss_ids())
def test_every_keras_loss_id_resolves(identifier):
    keras_object = keras_losses.ALL_OBJECTS_DICT[identifier]
    resolved = kl.get(identifier)
    if isinstance(keras_object, type):
        assert isinstance(resolved, kl.Loss)
        assert type(resolved).__name__ == keras_object.__name__
    else:
        assert inspect.isfunction(resolved)
        assert resolved.__name__ == keras_object.__name__


@pytest.mark.parametrize(
    ("identifier", "function"),
    [
        ("mse", kl.mean_squared_error),
        ("MAE", kl.mean_absolute_error),
        ("mape", kl.mean_absolute_percentage_error),
        ("MSLE", kl.mean_squared_logarithmic_error),
        ("kld", kl.kl_divergence),
        ("BCE", kl.binary_crossentropy),
        ("huber", kl.huber),
    ],
)
def test_function_ids_and_aliases_resolve_to_the_function(identifier, function):
    assert kl.get(identifier) is function


def test_class_id_gives_a_fresh_instance_with_defaults():
    first, second = kl.get("BinaryCrossentropy"), kl.get("BinaryCrossentropy")
    assert isinstance(first, kl.BinaryCrossentropy)
    assert first is not second
    assert not first.from_logits
    assert first.reduction == "sum_over_batch_size"


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("mean_sqared_error", "mean_squared_error"),
        ("binary_crossentrpy", "binary_crossentropy"),
        ("CategoricalCrossEntropy", "CategoricalCrossentropy"),
    ],
)
def test_unknown_id_raises_value_error_suggesting_the_closest(typo, suggestion):
    with pytest.raises(ValueError, match=typo) as info:
        kl.get(typo)
    assert f"Did you mean {suggestion!r}?" in str(info.value)
    assert "ALL_OBJECTS_DICT" in str(info.value)


def test_loss_ids_are_case_sensitive_as_in_keras():
    with pytest.raises(ValueError, match="'Mse'"):
        kl.get("Mse")


@pytest.mark.parametrize("identifier", sorted(kl.UNSUPPORTED))
def test_unsupported_id_raises_value_error_with_the_hint(identifier):
    with pytest.raises(ValueError, match=identifier) as info:
        kl.get(identifier)
    assert kl.UNSUPPORTED[identifier] in str(info.value)


def test_get_passes_callables_through_and_instantiates_classes():
    loss = kl.Huber(delta=2.0)
    module = nn.SmoothL1Loss()

    def custom(y_true, y_pred):
        return (y_true - y_pred).abs()

    assert kl.get(loss) is loss
    assert kl.get(module) is module
    assert kl.get(custom) is custom
    assert isinstance(kl.get(kl.Poisson), kl.Poisson)
    assert isinstance(kl.get(nn.MSELoss), nn.MSELoss)


def test_get_rejects_non_callables_with_type_error():
    with pytest.raises(TypeError, match="int"):
        kl.get(3)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(7, 1), (5, 3), (4, 2, 3)])
def test_same_shape_losses_equal_torch_functional_in_value_and_gradient(name, reduction, shape):
    # kfit calls the ATen op directly (no broadcast); it must be F's function exactly.
    generator = torch.Generator().manual_seed(0)
    y_true = torch.randn(shape, generator=generator, dtype=torch.float64)
    fast_pred = torch.randn(shape, generator=generator, dtype=torch.float64, requires_grad=True)
    public_pred = fast_pred.detach().clone().requires_grad_()
    fast = batch_means.same_shape_loss(name, reduction)(fast_pred, y_true)
    public = getattr(torch.nn.functional, name)(public_pred, y_true, reduction=reduction)
    torch.testing.assert_close(fast, public, rtol=0, atol=0)
    fast.backward()
    public.backward()
    torch.testing.assert_close(fast_pred.grad, public_pred.grad, rtol=0, atol=0)


def test_same_shape_loss_falls_back_to_the_public_function(monkeypatch):
    # Should torch move the ATen binding, F.mse_loss is called with the same reduction.
    monkeypatch.delattr(torch._C._nn, "mse_loss")
    calls = []
    monkeypatch.setattr(
        torch.nn.functional, "mse_loss", lambda p, t, reduction: calls.append(reduction)
    )
    y_true, y_pred = torch.zeros(3, 1), torch.ones(3, 1)
    batch_means.same_shape_loss("mse_loss", "mean")(y_pred, y_true)
    batch_means.same_shape_loss("mse_loss", "sum")(y_pred, y_true)
    assert calls == ["mean", "sum"]


def test_every_loss_a_family_lists_is_a_kfit_losses_name_and_an_id():
    # A new loss is added to its family module's __all__ and nowhere else.
    import importlib

    for family_name in (
        "regression",
        "crossentropy",
        "probabilistic",
        "hinge",
        "segmentation",
        "ctc",
        "metric_learning",
    ):
        family = importlib.import_module(f"kfit.losses.{family_name}")
        for name in family.__all__:
            found = getattr(family, name)
            assert getattr(kl, name) is found, name
            assert name in kl.__all__, name
            if isinstance(found, type) or callable(found):
                assert kl.ALL_OBJECTS_DICT[name] is found, name
