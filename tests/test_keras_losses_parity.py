"""Every Keras 3 loss class against kfit's: options, reductions, weights, masks, edge inputs."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

import kfit.losses as kl

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

pytestmark = pytest.mark.keras_compat

N, C = 6, 4
REDUCTIONS = ["sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", None]


def _data(kind: str, seed: int = 0, shape: tuple[int, ...] = (N, C)):
    rng = np.random.default_rng(seed)
    unit = rng.uniform(0.05, 0.95, size=shape).astype("float32")
    normal = rng.normal(size=shape).astype("float32")
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    one_hot = np.eye(shape[-1], dtype="float32")[labels]
    distribution = unit / unit.sum(-1, keepdims=True)
    return {
        "real": (rng.normal(size=shape).astype("float32"), normal),
        "positive": (unit * 3, rng.uniform(0.05, 3.0, size=shape).astype("float32")),
        "binary": (rng.integers(0, 2, size=shape).astype("float32"), unit),
        "binary_logits": (rng.integers(0, 2, size=shape).astype("float32"), 3 * normal),
        "all_ones": (np.ones(shape, "float32"), unit),
        "one_hot": (one_hot, distribution),
        "one_hot_logits": (one_hot, 3 * normal),
        "one_class": (np.eye(shape[-1], dtype="float32")[np.zeros(shape[:-1], int)], unit),
        "distributions": (distribution, unit / unit.sum(-1, keepdims=True)[..., ::-1]),
        "sparse": (labels, distribution),
        "sparse_logits": (labels, 3 * normal),
    }[kind]


# (class name, constructor options, kind of data)
CLASS_CASES = [
    ("MeanSquaredError", {}, "real"),
    ("MeanAbsoluteError", {}, "real"),
    ("MeanAbsolutePercentageError", {}, "real"),
    ("MeanSquaredLogarithmicError", {}, "positive"),
    ("CosineSimilarity", {}, "real"),
    ("CosineSimilarity", {"axis": 0}, "real"),
    ("Huber", {}, "real"),
    ("Huber", {"delta": 0.3}, "real"),
    ("LogCosh", {}, "real"),
    ("Hinge", {}, "binary_logits"),
    ("SquaredHinge", {}, "binary_logits"),
    ("CategoricalHinge", {}, "one_hot_logits"),
    ("KLDivergence", {}, "distributions"),
    ("Poisson", {}, "positive"),
    ("BinaryCrossentropy", {}, "binary"),
    ("BinaryCrossentropy", {}, "all_ones"),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, "binary_logits"),
    ("BinaryCrossentropy", {"axis": 0}, "binary"),
    ("BinaryFocalCrossentropy", {}, "binary"),
    (
        "BinaryFocalCrossentropy",
        {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.0, "from_logits": True},
        "binary_logits",
    ),
    ("BinaryFocalCrossentropy", {"label_smoothing": 0.1, "axis": 0}, "binary"),
    ("CategoricalCrossentropy", {}, "one_hot"),
    ("CategoricalCrossentropy", {}, "one_class"),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "one_hot_logits"),
    ("CategoricalCrossentropy", {"axis": 0}, "one_hot"),
    ("CategoricalFocalCrossentropy", {}, "one_hot"),
    ("CategoricalFocalCrossentropy", {"alpha": [0.1, 0.2, 0.3, 0.4]}, "one_hot"),
    ("CategoricalFocalCrossentropy", {"from_logits": True, "gamma": 3.0}, "one_hot_logits"),
    ("SparseCategoricalCrossentropy", {}, "sparse"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse_logits"),
    ("SparseCategoricalCrossentropy", {"ignore_class": 1}, "sparse"),
    ("SparseCategoricalCrossentropy", {"ignore_class": 0, "from_logits": True}, "sparse_logits"),
    ("CategoricalGeneralizedCrossEntropy", {}, "sparse"),
    ("CategoricalGeneralizedCrossEntropy", {"q": 0.2}, "sparse"),
    ("Dice", {}, "binary"),
    ("Dice", {"axis": 1}, "binary"),
    ("Tversky", {"alpha": 0.3, "beta": 0.7}, "binary"),
    ("Tversky", {"axis": 1}, "binary"),
]


def _case_id(case) -> str:
    name, options, kind = case
    shown = ",".join(f"{k}={v}" for k, v in options.items())
    return f"{name}({shown})-{kind}"


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)


def _compare(name, options, reduction, y_true, y_pred, sample_weight=None):
    keras_loss = getattr(keras.losses, name)(reduction=reduction, **options)
    kfit_loss = getattr(kl, name)(reduction=reduction, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = _numpy(
            keras_loss(
                keras.ops.convert_to_tensor(y_true),
                keras.ops.convert_to_tensor(y_pred),
                sample_weight=sample_weight,
            )
        )
    got = kfit_loss(
        torch.as_tensor(y_true),
        torch.as_tensor(y_pred),
        None if sample_weight is None else torch.as_tensor(sample_weight),
    )
    assert got.shape == expected.shape
    np.testing.assert_allclose(_numpy(got), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CLASS_CASES, ids=_case_id)
def test_loss_class_matches_keras_unweighted(case, reduction):
    name, options, kind = case
    _compare(name, options, reduction, *_data(kind))


# Cases whose per-sample values are one per row (Dice/Tversky and other axes are not).
ROW_CASES = [
    case
    for case in CLASS_CASES
    if case[1].get("axis", -1) == -1 and case[0] not in ("Dice", "Tversky")
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ROW_CASES, ids=_case_id)
def test_loss_class_matches_keras_with_per_sample_weights(case, reduction):
    name, options, kind = case
    y_true, y_pred = _data(kind)
    weights = np.array([0.5, 0.0, 2.0, 1.0, 0.0, 3.0], "float32")
    _compare(name, options, reduction, y_true, y_pred, weights)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_zero_weights_give_zero_not_nan(reduction):
    y_true, y_pred = _data("real")
    _compare("MeanSquaredError", {}, reduction, y_true, y_pred, np.zeros(N, "float32"))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "case",
    [
        ("MeanSquaredError", {}, "real"),
        ("BinaryCrossentropy", {}, "binary"),
        ("CategoricalCrossentropy", {}, "one_hot"),
        ("SparseCategoricalCrossentropy", {"ignore_class": 2}, "sparse"),
    ],
    ids=_case_id,
)
def test_per_element_weights_on_sequences_match_keras(case, reduction):
    name, options, kind = case
    y_true, y_pred = _data(kind, shape=(N, 3, C))
    weights = np.random.default_rng(1).uniform(0, 2, size=(N, 3)).astype("float32")
    weights[0] = 0.0
    _compare(name, options, reduction, y_true, y_pred, weights)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("axis", [1, -2, 0])
def test_sparse_crossentropy_class_axis_other_than_last(axis, reduction):
    rng = np.random.default_rng(3)
    y_pred = rng.normal(size=(N, C, 3)).astype("float32")
    shape = list(y_pred.shape)
    del shape[axis]
    labels = rng.integers(0, y_pred.shape[axis], size=shape)
    _compare(
        "SparseCategoricalCrossentropy",
        {"from_logits": True, "axis": axis},
        reduction,
        labels,
        y_pred,
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ignore_class_with_sample_weights_leaves_the_ignored_weight_out(reduction):
    y_true = np.array([0, 1, 2, 0])
    y_pred = np.array(
        [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.2, 0.5, 0.3]], "float32"
    )
    weights = np.array([1.0, 2.0, 3.0, 4.0], "float32")
    _compare(
        "SparseCategoricalCrossentropy", {"ignore_class": 0}, reduction, y_true, y_pred, weights
    )


def test_ignore_class_ignoring_every_sample_gives_zero():
    loss = kl.SparseCategoricalCrossentropy(ignore_class=1)
    value = loss(torch.tensor([1, 1]), torch.tensor([[0.5, 0.5], [0.2, 0.8]]))
    assert float(value) == 0.0


# --------------------------------------------------------------------------- CTC


def _ctc_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(3, 8, 5)).astype("float32")
    labels = np.array([[1, 2, 3, 0], [4, 4, 0, 0], [2, 0, 0, 0]])
    return labels, logits


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ctc_matches_keras(reduction):
    _compare("CTC", {}, reduction, *_ctc_data())
    _compare("CTC", {}, reduction, *_ctc_data(1), np.array([1.0, 0.0, 2.0], "float32"))


def test_ctc_function_and_id():
    labels, logits = _ctc_data()
    expected = _numpy(
        keras.losses.ctc(keras.ops.convert_to_tensor(labels), keras.ops.convert_to_tensor(logits))
    )
    np.testing.assert_allclose(
        kl.ctc(torch.as_tensor(labels), torch.as_tensor(logits)).numpy(), expected, rtol=1e-5
    )
    assert kl.get("ctc") is kl.ctc
    assert isinstance(kl.get("CTC"), kl.CTC)


@pytest.mark.parametrize(
    ("y_true", "y_pred"),
    [(np.zeros((2, 3, 1)), np.zeros((2, 4, 5))), (np.zeros((2, 3)), np.zeros((2, 5)))],
)
def test_ctc_rejects_wrong_ranks_with_value_error(y_true, y_pred):
    with pytest.raises(ValueError, match="expected to be a tensor of shape"):
        kl.CTC()(y_true, y_pred)


# --------------------------------------------------------------------------- Circle


def _embeddings(seed: int, labels):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(labels), 5)).astype("float32")
    return np.asarray(labels), vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "options", [{}, {"gamma": 10.0, "margin": 0.25}, {"remove_diagonal": False}], ids=str
)
@pytest.mark.parametrize(
    "labels",
    [[0, 0, 1, 1, 2, 2], [0, 1, 2, 3, 0, 0], [5, 5, 5, 5, 5, 5]],
    ids=["pairs", "singletons", "one_class"],
)
def test_circle_matches_keras(labels, options, reduction):
    y_true, y_pred = _embeddings(0, labels)
    _compare("Circle", options, reduction, y_true, y_pred)
    weights = np.array([1.0, 0.0, 2.0, 1.0, 0.5, 1.0], "float32")
    _compare("Circle", options, reduction, y_true, y_pred, weights)


def test_circle_function_with_reference_embeddings_matches_keras():
    y_true, y_pred = _embeddings(0, [0, 1, 2, 0])
    ref_labels, ref = _embeddings(1, [0, 0, 1, 2, 2])
    kwargs = {"remove_diagonal": False, "gamma": 30.0}
    expected = _numpy(
        keras.losses.circle(
            keras.ops.convert_to_tensor(y_true),
            keras.ops.convert_to_tensor(y_pred),
            ref_labels=keras.ops.convert_to_tensor(ref_labels),
            ref_embeddings=keras.ops.convert_to_tensor(ref),
            **kwargs,
        )
    )
    got = kl.circle(
        torch.as_tensor(y_true),
        torch.as_tensor(y_pred),
        ref_labels=torch.as_tensor(ref_labels),
        ref_embeddings=torch.as_tensor(ref),
        **kwargs,
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- API and checks


def test_every_keras_loss_exists_in_kfit():
    public = {name for name in dir(keras.losses) if not name.startswith("_")}
    assert public <= set(kl.__all__) | {"Loss"}
    assert public - {"Loss", "deserialize", "get", "serialize"} <= set(kl.ALL_OBJECTS_DICT)


@pytest.mark.parametrize(
    "name",
    sorted(
        n for n in dir(keras.losses) if isinstance(getattr(keras.losses, n), type) and n != "Loss"
    ),
)
def test_defaults_names_and_config_keys_match_keras(name):
    keras_config = getattr(keras.losses, name)().get_config()
    kfit_config = getattr(kl, name)().get_config()
    assert kfit_config["name"] == keras_config["name"]
    # kfit's configs are a superset: Keras's Huber and CosineSimilarity leave delta/axis out.
    for key, value in keras_config.items():
        assert kfit_config[key] == value, key


@pytest.mark.parametrize("reduction", ["auto", "avg", "SUM"])
def test_invalid_reduction_raises_value_error(reduction):
    for cls in (kl.MeanSquaredError, kl.Circle, kl.CTC):
        with pytest.raises(ValueError, match="reduction"):
            cls(reduction=reduction)
        with pytest.raises(ValueError, match="reduction"):
            getattr(keras.losses, cls.__name__)(reduction=reduction)


@pytest.mark.parametrize("q", [0.0, 1.0, -0.5, 1.5])
def test_generalized_crossentropy_q_outside_zero_one_raises_value_error(q):
    with pytest.raises(ValueError, match="q must be in the interval"):
        kl.CategoricalGeneralizedCrossEntropy(q=q)
    with pytest.raises(ValueError, match="q must be in the interval"):
        keras.losses.CategoricalGeneralizedCrossEntropy(q=q)


@pytest.mark.parametrize("fn", [kl.categorical_crossentropy, kl.categorical_focal_crossentropy])
def test_bool_axis_raises_value_error_as_in_keras(fn):
    y = torch.eye(3)
    with pytest.raises(ValueError, match="axis"):
        fn(y, y, axis=True)


def test_single_class_categorical_crossentropy_warns_as_keras_does():
    with pytest.warns(SyntaxWarning, match="binary_crossentropy"):
        kl.categorical_crossentropy(torch.ones(3, 1), torch.ones(3, 1))


@pytest.mark.parametrize("dtype", ["float64", "bfloat16", torch.float64])
def test_dtype_option_computes_in_that_dtype(dtype):
    loss = kl.MeanSquaredError(dtype=dtype)
    value = loss(np.zeros((2, 3)), np.ones((2, 3)))
    assert value.dtype == (dtype if isinstance(dtype, torch.dtype) else getattr(torch, dtype))
    assert float(value) == 1.0
    assert loss.dtype == str(value.dtype).removeprefix("torch.")


def test_invalid_dtype_raises_value_error():
    with pytest.raises(ValueError, match="dtype"):
        kl.MeanSquaredError(dtype="int32")


def test_lists_and_arrays_are_accepted_as_keras_accepts_them():
    loss = kl.SparseCategoricalCrossentropy()
    expected = keras.losses.SparseCategoricalCrossentropy()(
        np.array([1, 2]), np.array([[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
    )
    got = loss([1, 2], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]], sample_weight=None)
    np.testing.assert_allclose(float(got), float(expected), rtol=1e-5)
