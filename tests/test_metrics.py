"""Tests for kfit.metrics: values against Keras 3, numpy and scikit-learn, streaming, registry."""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest
import torch
import torchmetrics
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import r2_score, roc_auc_score

import kfit
import kfit.losses as kl
import kfit.metrics as km

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
keras_metrics = pytest.importorskip("keras.src.metrics")
to_snake_case = pytest.importorskip("keras.src.utils.naming").to_snake_case

C = 4
BATCH_SIZES = (7, 5)


def _make(kind: str, rng: np.random.Generator, n: int):
    """Returns `(y_true, y_pred)` numpy arrays of the given kind, `n` samples."""

    def distribution():
        values = rng.uniform(0.05, 1.0, size=(n, C)).astype("float32")
        return values / values.sum(-1, keepdims=True)

    def zeros_ones(width):
        return rng.integers(0, 2, size=(n, width)).astype("float32")

    makers = {
        "binary": lambda: (zeros_ones(1), rng.uniform(size=(n, 1)).astype("float32")),
        "multilabel": lambda: (zeros_ones(C), rng.uniform(size=(n, C)).astype("float32")),
        "multilabel_logits": lambda: (zeros_ones(C), rng.normal(size=(n, C)).astype("float32")),
        "one_hot": lambda: (np.eye(C, dtype="float32")[rng.integers(0, C, n)], distribution()),
        "sparse": lambda: (rng.integers(0, C, size=n), distribution()),
        "sparse_column": lambda: (rng.integers(0, C, size=(n, 1)), distribution()),
        "sparse_logits": lambda: (
            rng.integers(0, C, size=n),
            (3.0 * rng.normal(size=(n, C))).astype("float32"),
        ),
        "real": lambda: (
            rng.normal(size=(n, C)).astype("float32"),
            rng.normal(size=(n, C)).astype("float32"),
        ),
        "positive": lambda: (
            rng.uniform(0.1, 3.0, size=(n, C)).astype("float32"),
            rng.uniform(0.1, 3.0, size=(n, C)).astype("float32"),
        ),
        "distributions": lambda: (distribution(), distribution()),
    }
    return makers[kind]()


def _numpy(value) -> np.ndarray:
    # Keras on the torch backend returns torch tensors.
    return value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)


def _torch(array: np.ndarray | None) -> torch.Tensor | None:
    return None if array is None else torch.as_tensor(array)


def _case_id(case) -> str:
    name, options, kind = case
    shown = ",".join(f"{k}={v}" for k, v in options.items())
    return f"{name}[{shown}]-{kind}" if shown else f"{name}-{kind}"


# --------------------------------------------------------------------------- functions

# (function name, options, kind of data)
FUNCTION_CASES = [
    ("binary_accuracy", {}, "multilabel"),
    ("binary_accuracy", {"threshold": 0.7}, "multilabel"),
    ("categorical_accuracy", {}, "one_hot"),
    ("sparse_categorical_accuracy", {}, "sparse"),
    ("sparse_categorical_accuracy", {}, "sparse_column"),
    ("top_k_categorical_accuracy", {"k": 2}, "one_hot"),
    ("sparse_top_k_categorical_accuracy", {"k": 2}, "sparse"),
    ("pearson_correlation", {}, "real"),
    ("concordance_correlation", {}, "real"),
]


@pytest.mark.keras_compat
@pytest.mark.parametrize("case", FUNCTION_CASES, ids=_case_id)
def test_metric_function_matches_keras(case):
    name, options, kind = case
    y_true, y_pred = _make(kind, np.random.default_rng(0), 9)
    expected = _numpy(getattr(keras.metrics, name)(y_true, y_pred, **options))
    got = getattr(km, name)(_torch(y_true), _torch(y_pred), **options)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.keras_compat
def test_sparse_top_k_accuracy_from_sorted_ids_matches_keras():
    y_true, scores = _make("sparse", np.random.default_rng(1), 9)
    sorted_ids = np.argsort(-scores, axis=-1)
    expected = keras.metrics.sparse_top_k_categorical_accuracy(
        y_true, sorted_ids, k=2, from_sorted_ids=True
    )
    got = km.sparse_top_k_categorical_accuracy(
        _torch(y_true), _torch(sorted_ids), k=2, from_sorted_ids=True
    )
    np.testing.assert_allclose(got.numpy(), _numpy(expected))


def test_top_k_larger_than_the_number_of_classes_raises_value_error():
    with pytest.raises(ValueError, match="k=5"):
        km.top_k_categorical_accuracy(torch.eye(3), torch.rand(3, 3))


# --------------------------------------------------------------------------- metric classes

# (class name, constructor options, kind of data)
CLASS_CASES = [
    ("Accuracy", {}, "binary"),
    ("BinaryAccuracy", {}, "binary"),
    ("BinaryAccuracy", {"threshold": 0.3}, "multilabel"),
    ("CategoricalAccuracy", {}, "one_hot"),
    ("SparseCategoricalAccuracy", {}, "sparse"),
    ("SparseCategoricalAccuracy", {}, "sparse_column"),
    ("TopKCategoricalAccuracy", {"k": 2}, "one_hot"),
    ("SparseTopKCategoricalAccuracy", {"k": 2}, "sparse"),
    ("MeanSquaredError", {}, "real"),
    ("RootMeanSquaredError", {}, "real"),
    ("MeanAbsoluteError", {}, "real"),
    ("MeanAbsolutePercentageError", {}, "real"),
    ("MeanSquaredLogarithmicError", {}, "positive"),
    ("CosineSimilarity", {}, "real"),
    ("LogCoshError", {}, "real"),
    ("KLDivergence", {}, "distributions"),
    ("Poisson", {}, "positive"),
    ("Hinge", {}, "multilabel_logits"),
    ("SquaredHinge", {}, "multilabel_logits"),
    ("CategoricalHinge", {}, "one_hot"),
    ("BinaryCrossentropy", {}, "multilabel"),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "multilabel_logits"),
    ("CategoricalCrossentropy", {}, "one_hot"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "one_hot"),
    ("SparseCategoricalCrossentropy", {}, "sparse"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse_logits"),
    ("R2Score", {}, "real"),
    ("PearsonCorrelation", {}, "real"),
    ("ConcordanceCorrelation", {}, "real"),
    ("Precision", {}, "multilabel"),
    ("Precision", {"thresholds": 0.3}, "multilabel"),
    ("Recall", {}, "multilabel"),
    ("Recall", {"class_id": 1}, "multilabel"),
    ("TruePositives", {}, "multilabel"),
    ("FalsePositives", {}, "multilabel"),
    ("TrueNegatives", {}, "multilabel"),
    ("FalseNegatives", {"thresholds": 0.7}, "multilabel"),
    ("AUC", {}, "multilabel"),
    ("F1Score", {}, "one_hot"),
    ("F1Score", {"average": "macro"}, "one_hot"),
    ("FBetaScore", {"beta": 2.0, "average": "micro", "threshold": 0.3}, "multilabel"),
]

# Mean-of-a-function metrics, which take sample weights as Keras's do.
WEIGHTED_CASES = [
    case
    for case in CLASS_CASES
    if isinstance(getattr(km, case[0])(**case[1]), km.MeanMetricWrapper)
]


def _stream_both(case, weighted: bool, seed: int):
    name, options, kind = case
    rng = np.random.default_rng(seed)
    keras_metric = getattr(keras.metrics, name)(**options)
    kfit_metric = getattr(km, name)(**options)
    for n in BATCH_SIZES:
        y_true, y_pred = _make(kind, rng, n)
        weight = rng.uniform(0.0, 2.0, size=n).astype("float32") if weighted else None
        if name == "Accuracy":
            y_pred = (y_pred > 0.5).astype("float32")
        keras_metric.update_state(y_true, y_pred, sample_weight=weight)
        kfit_metric.update_state(_torch(y_true), _torch(y_pred), _torch(weight))
    return _numpy(keras_metric.result()), kfit_metric.result().numpy()


@pytest.mark.keras_compat
@pytest.mark.parametrize("case", CLASS_CASES, ids=_case_id)
def test_metric_class_matches_keras_over_two_batches(case):
    expected, got = _stream_both(case, weighted=False, seed=2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.keras_compat
@pytest.mark.parametrize("case", WEIGHTED_CASES, ids=_case_id)
def test_weighted_mean_metric_matches_keras(case):
    expected, got = _stream_both(case, weighted=True, seed=3)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.keras_compat
def test_weighted_r2_score_matches_keras():
    expected, got = _stream_both(("R2Score", {}, "real"), weighted=True, seed=4)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_weighted_r2_score_matches_scikit_learn():
    rng = np.random.default_rng(5)
    y_true, y_pred = _make("real", rng, 30)
    weight = rng.uniform(0.0, 2.0, size=30).astype("float32")
    metric = km.R2Score()
    metric.update(_torch(y_pred), _torch(y_true), _torch(weight))
    expected = r2_score(y_true, y_pred, sample_weight=weight)
    assert float(metric.compute()) == pytest.approx(expected, rel=1e-4)


@pytest.mark.keras_compat
def test_adjusted_r2_score_matches_keras_for_one_output():
    rng = np.random.default_rng(6)
    y_true = rng.normal(size=(20, 1)).astype("float32")
    y_pred = (y_true + 0.5 * rng.normal(size=(20, 1))).astype("float32")
    keras_metric = keras.metrics.R2Score(num_regressors=3)
    keras_metric.update_state(y_true, y_pred)
    metric = km.R2Score(num_regressors=3)
    metric.update_state(_torch(y_true), _torch(y_pred))
    assert float(metric.result()) == pytest.approx(float(_numpy(keras_metric.result())), rel=1e-5)


@pytest.mark.keras_compat
@pytest.mark.parametrize("name", ["Precision", "Recall", "TruePositives", "FalsePositives"])
def test_threshold_metrics_compare_logits_with_the_raw_threshold(name):
    # Keras's idiom for logits: thresholds=0.0 on the raw scores. No sigmoid may sneak in.
    rng = np.random.default_rng(7)
    y_true = rng.integers(0, 2, size=(20, 1)).astype("float32")
    logits = (2.0 * rng.normal(size=(20, 1))).astype("float32")
    keras_metric = getattr(keras.metrics, name)(thresholds=0.0)
    keras_metric.update_state(y_true, logits)
    metric = getattr(km, name)(thresholds=0.0)
    metric.update_state(_torch(y_true), _torch(logits))
    assert float(metric.result()) == pytest.approx(float(_numpy(keras_metric.result())))


def test_true_positives_of_one_prediction_do_not_depend_on_the_others():
    y_true = torch.tensor([[1.0], [1.0]])
    in_range = km.TruePositives()
    in_range.update(torch.tensor([[0.3], [0.9]]), y_true)
    out_of_range = km.TruePositives()
    out_of_range.update(torch.tensor([[0.3], [1.2]]), y_true)
    assert float(in_range.compute()) == 1.0
    assert float(out_of_range.compute()) == 1.0


def _keras_default_name(keras_class: type) -> str:
    # Read from the signature: Keras makes auto-generated names unique (`precision_1`, ...).
    default = inspect.signature(keras_class.__init__).parameters["name"].default
    return default or to_snake_case(keras_class.__name__)


@pytest.mark.keras_compat
def test_metric_default_names_match_keras():
    required = {
        "IoU": {"num_classes": 2, "target_class_ids": [0]},
        "OneHotIoU": {"num_classes": 2, "target_class_ids": [0]},
        "MeanIoU": {"num_classes": 2},
        "OneHotMeanIoU": {"num_classes": 2},
        "PrecisionAtRecall": {"recall": 0.5},
        "RecallAtPrecision": {"precision": 0.5},
        "SensitivityAtSpecificity": {"specificity": 0.5},
        "SpecificityAtSensitivity": {"sensitivity": 0.5},
    }
    for name in km.__all__:
        cls = getattr(km, name)
        if isinstance(cls, type) and name not in (
            "Metric",
            "Accumulator",
            "MeanMetricWrapper",
            "CosineDistance",
        ):
            ours = cls(**required.get(name, {}))
            assert ours.name == _keras_default_name(getattr(keras.metrics, name)), name


def test_log_cosh_error_is_named_logcosh():
    assert km.LogCoshError().name == "logcosh"


# --------------------------------------------------------------------------- numpy references


def _per_sample_abs_error(y_true, y_pred):
    return np.abs(y_true - y_pred).mean(-1)


def _per_sample_squared_error(y_true, y_pred):
    return np.square(y_true - y_pred).mean(-1)


def _per_sample_binary_accuracy(y_true, y_pred):
    return ((y_pred > 0.5) == y_true).mean(-1)


def _per_sample_categorical_accuracy(y_true, y_pred):
    return (y_true.argmax(-1) == y_pred.argmax(-1)).astype("float64")


NUMPY_CASES = [
    (km.MeanAbsoluteError, _per_sample_abs_error, "real"),
    (km.MeanSquaredError, _per_sample_squared_error, "real"),
    (km.BinaryAccuracy, _per_sample_binary_accuracy, "multilabel"),
    (km.CategoricalAccuracy, _per_sample_categorical_accuracy, "one_hot"),
]


@pytest.mark.parametrize(
    ("metric_class", "reference", "kind"), NUMPY_CASES, ids=lambda v: getattr(v, "__name__", v)
)
def test_weighted_mean_is_sum_of_weighted_values_over_sum_of_weights(metric_class, reference, kind):
    rng = np.random.default_rng(8)
    y_true, y_pred = _make(kind, rng, 12)
    weight = rng.uniform(0.0, 2.0, size=12)
    weight[:4] = 0.0
    metric = metric_class()
    metric.update(_torch(y_pred), _torch(y_true), _torch(weight.astype("float32")))
    values = reference(y_true, y_pred)
    expected = (weight * values).sum() / weight.sum()
    assert float(metric.compute()) == pytest.approx(expected, rel=1e-5)


def test_column_sample_weight_matches_flat_sample_weight():
    rng = np.random.default_rng(9)
    y_true, y_pred = _make("real", rng, 6)
    weight = rng.uniform(0.0, 2.0, size=6).astype("float32")
    flat, column = km.MeanAbsoluteError(), km.MeanAbsoluteError()
    flat.update(_torch(y_pred), _torch(y_true), _torch(weight))
    column.update(_torch(y_pred), _torch(y_true), _torch(weight[:, None]))
    torch.testing.assert_close(column.compute(), flat.compute())


def test_per_sample_weight_spreads_over_timesteps():
    rng = np.random.default_rng(10)
    y_true, y_pred = rng.normal(size=(2, 3, 4, 5)).astype("float32")
    weight = np.array([1.0, 3.0, 0.5], dtype="float32")
    metric = km.MeanSquaredError()
    metric.update(_torch(y_pred), _torch(y_true), _torch(weight))
    per_step = np.square(y_true - y_pred).mean(-1)
    expected = (weight[:, None] * per_step).sum() / (4 * weight.sum())
    assert float(metric.compute()) == pytest.approx(expected, rel=1e-5)


def test_update_state_takes_the_target_first():
    y_true = torch.tensor([[2.0], [4.0]])
    y_pred = torch.tensor([[1.0], [1.0]])
    keras_order, torchmetrics_order = (
        km.MeanAbsolutePercentageError(),
        km.MeanAbsolutePercentageError(),
    )
    keras_order.update_state(y_true, y_pred)
    torchmetrics_order.update(y_pred, y_true)
    expected = 100.0 * np.mean([1 / 2, 3 / 4])
    assert float(keras_order.result()) == pytest.approx(expected)
    assert float(torchmetrics_order.compute()) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("metric_class", "kind"),
    [
        (km.MeanAbsoluteError, "real"),
        (km.RootMeanSquaredError, "real"),
        (km.R2Score, "real"),
        (km.AUC, "multilabel"),
        (km.Precision, "multilabel"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_reset_state_forgets_earlier_batches(metric_class, kind):
    rng = np.random.default_rng(11)
    earlier, later = _make(kind, rng, 5), _make(kind, rng, 6)
    metric, fresh = metric_class(), metric_class()
    metric.update_state(*map(_torch, earlier))
    metric.reset_state()
    metric.update_state(*map(_torch, later))
    fresh.update_state(*map(_torch, later))
    torch.testing.assert_close(metric.result(), fresh.result())


def test_cosine_similarity_metric_is_positive_cosine():
    y_true = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    metric = km.CosineSimilarity()
    metric.update_state(y_true, y_true * 3.0)
    assert float(metric.result()) == pytest.approx(1.0)
    assert float(kl.CosineSimilarity()(y_true, y_true * 3.0)) == pytest.approx(-1.0)


def test_cosine_distance_metric_is_one_minus_cosine():
    rng = np.random.default_rng(12)
    y_true, y_pred = _make("real", rng, 10)
    cos = (y_true * y_pred).sum(-1) / (
        np.linalg.norm(y_true, axis=-1) * np.linalg.norm(y_pred, axis=-1)
    )
    metric = km.CosineDistance()
    metric.update_state(_torch(y_true), _torch(y_pred))
    assert float(metric.result()) == pytest.approx((1.0 - cos).mean(), rel=1e-5)
    np.testing.assert_allclose(
        km.cosine_distance(_torch(y_true), _torch(y_pred)).numpy(), 1.0 - cos, rtol=1e-5
    )


@pytest.mark.keras_compat
@pytest.mark.parametrize("num_thresholds", [200, 7])
@pytest.mark.parametrize("curve", ["ROC", "PR"])
def test_auc_matches_keras(curve, num_thresholds):
    # Keras integrates PR with Davis & Goadrich's interpolation, ROC with the trapezoidal rule.
    expected, got = _stream_both(
        ("AUC", {"curve": curve, "num_thresholds": num_thresholds}, "multilabel"),
        weighted=False,
        seed=16,
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("from_logits", [False, True])
def test_auc_matches_scikit_learn_roc_auc(from_logits):
    rng = np.random.default_rng(13)
    y_true = rng.integers(0, 2, size=(200, 1))
    scores = (y_true + rng.normal(scale=0.8, size=(200, 1))).astype("float32")
    probs = 1.0 / (1.0 + np.exp(-scores))
    metric = km.AUC(from_logits=from_logits)
    for part in (slice(0, 120), slice(120, 200)):
        y_pred = scores[part] if from_logits else probs[part]
        metric.update_state(_torch(y_true[part].astype("float32")), _torch(y_pred))
    expected = roc_auc_score(y_true.ravel(), probs.ravel())
    assert float(metric.result()) == pytest.approx(expected, abs=1e-2)


def test_auc_rejects_an_unknown_curve():
    with pytest.raises(ValueError, match="curve"):
        km.AUC(curve="rocc")


def test_unknown_metric_option_raises_type_error_naming_it():
    with pytest.raises(TypeError, match="treshold"):
        km.BinaryAccuracy(treshold=0.3)


# --------------------------------------------------------------------------- streaming


def _batches(n: int, batch_size: int):
    return [slice(start, start + batch_size) for start in range(0, n, batch_size)]


def _stream(metric, y_true, y_pred, weight, batch_size):
    for part in _batches(len(y_true), batch_size):
        metric.update(
            _torch(y_pred[part]),
            _torch(y_true[part]),
            None if weight is None else _torch(weight[part]),
        )
    return float(metric.compute())


def _whole(metric, y_true, y_pred, weight):
    return _stream(metric, y_true, y_pred, weight, len(y_true))


STREAM_CASES = [
    (km.MeanAbsoluteError, _per_sample_abs_error, "real"),
    (km.BinaryAccuracy, _per_sample_binary_accuracy, "multilabel"),
    (km.CategoricalAccuracy, _per_sample_categorical_accuracy, "one_hot"),
]


@settings(max_examples=30, deadline=None)
@given(
    case=st.sampled_from(STREAM_CASES),
    n=st.integers(1, 40),
    batch_size=st.integers(1, 45),
    weighted=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_streamed_mean_metric_equals_whole_set_value(case, n, batch_size, weighted, seed):
    metric_class, reference, kind = case
    rng = np.random.default_rng(seed)
    y_true, y_pred = _make(kind, rng, n)
    weight = rng.uniform(0.1, 2.0, size=n).astype("float32") if weighted else None
    streamed = _stream(metric_class(), y_true, y_pred, weight, batch_size)
    whole = _whole(metric_class(), y_true, y_pred, weight)
    expected = np.average(reference(y_true, y_pred), weights=weight)
    assert streamed == pytest.approx(whole, rel=1e-5, abs=1e-6)
    assert streamed == pytest.approx(expected, rel=1e-5, abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 40),
    batch_size=st.integers(1, 45),
    weighted=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_streamed_rmse_is_root_of_the_global_mean(n, batch_size, weighted, seed):
    rng = np.random.default_rng(seed)
    y_true, y_pred = _make("real", rng, n)
    weight = rng.uniform(0.1, 2.0, size=n).astype("float32") if weighted else None
    streamed = _stream(km.RootMeanSquaredError(), y_true, y_pred, weight, batch_size)
    expected = np.sqrt(np.average(_per_sample_squared_error(y_true, y_pred), weights=weight))
    whole = _whole(km.RootMeanSquaredError(), y_true, y_pred, weight)
    assert streamed == pytest.approx(whole, rel=1e-5)
    assert streamed == pytest.approx(expected, rel=1e-5)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 40), batch_size=st.integers(1, 45), seed=st.integers(0, 2**32 - 1))
def test_streamed_r2_score_equals_scikit_learn(n, batch_size, seed):
    rng = np.random.default_rng(seed)
    y_true, y_pred = _make("real", rng, n)
    streamed = _stream(km.R2Score(), y_true, y_pred, None, batch_size)
    expected = r2_score(y_true.astype("float64"), y_pred.astype("float64"))
    assert streamed == pytest.approx(_whole(km.R2Score(), y_true, y_pred, None), rel=1e-4)
    assert streamed == pytest.approx(expected, rel=1e-3, abs=1e-4)


@pytest.mark.parametrize(
    ("metric_class", "kind"),
    [(km.MeanAbsoluteError, "real"), (km.BinaryAccuracy, "multilabel"), (km.R2Score, "real")],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_forward_after_update_accumulates_every_sample(metric_class, kind):
    # torchmetrics's contract: `metric(preds, target)` returns the batch value and still
    # accumulates it with what `update` saw before.
    rng = np.random.default_rng(17)
    (true_a, pred_a), (true_b, pred_b) = _make(kind, rng, 6), _make(kind, rng, 4)
    mixed, whole, batch_only = metric_class(), metric_class(), metric_class()
    mixed.update(_torch(pred_a), _torch(true_a))
    batch_value = mixed(_torch(pred_b), _torch(true_b))
    whole.update(_torch(np.concatenate([pred_a, pred_b])), _torch(np.concatenate([true_a, true_b])))
    batch_only.update(_torch(pred_b), _torch(true_b))
    torch.testing.assert_close(batch_value, batch_only.compute())
    torch.testing.assert_close(mixed.compute(), whole.compute())


@pytest.mark.parametrize(
    ("metric_class", "kind"),
    [(km.MeanAbsoluteError, "real"), (km.CategoricalAccuracy, "one_hot")],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_merge_state_combines_every_sample(metric_class, kind):
    rng = np.random.default_rng(18)
    (true_a, pred_a), (true_b, pred_b) = _make(kind, rng, 6), _make(kind, rng, 4)
    first, second, whole = metric_class(), metric_class(), metric_class()
    first.update(_torch(pred_a), _torch(true_a))
    second.update(_torch(pred_b), _torch(true_b))
    first.merge_state(second)
    whole.update(_torch(np.concatenate([pred_a, pred_b])), _torch(np.concatenate([true_a, true_b])))
    torch.testing.assert_close(first.compute(), whole.compute())


@pytest.mark.parametrize(
    ("metric_class", "kind"),
    [
        (km.MeanAbsoluteError, "real"),
        (km.TruePositives, "binary"),
        (km.AUC, "binary"),
        (km.R2Score, "real"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_compute_equals_torchmetrics_own_compute_and_returns_a_copy(metric_class, kind):
    # kfit computes directly outside torch.distributed; torchmetrics' wrapper is the reference.
    rng = np.random.default_rng(19)
    (true_a, pred_a), (true_b, pred_b) = _make(kind, rng, 6), _make(kind, rng, 5)
    metric = metric_class()
    metric.update(_torch(pred_a), _torch(true_a))
    reference = torchmetrics.Metric._wrap_compute(metric, type(metric).compute.__get__(metric))
    value = metric.compute()
    torch.testing.assert_close(value, reference())
    assert value.dim() == reference().dim()
    kept = value.clone()
    metric.update(_torch(pred_b), _torch(true_b))  # states change in place
    torch.testing.assert_close(value, kept)  # the earlier result is a copy, not a state
    assert metric.compute() is metric.compute()  # cached until the next update


@pytest.mark.parametrize(
    ("metric_class", "kind"),
    [
        (km.MeanAbsoluteError, "real"),
        (km.MeanSquaredError, "real"),
        (km.SparseCategoricalAccuracy, "sparse"),
        (km.CategoricalAccuracy, "one_hot"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_unweighted_step_update_equals_update(metric_class, kind):
    # The compiled metrics' per-step call inlines the update wrapper's bookkeeping.
    rng = np.random.default_rng(20)
    batches = [_make(kind, rng, n) for n in (6, 5)]
    stepped, updated = metric_class(), metric_class()
    for y_true, y_pred in batches:
        with torch.no_grad():
            stepped._update_unweighted(_torch(y_pred), _torch(y_true), None)
        updated.update(_torch(y_pred), _torch(y_true))
        torch.testing.assert_close(stepped.compute(), updated.compute())  # not a stale cache
    assert stepped.update_count == updated.update_count == 2


def test_a_wrapper_subclass_overriding_update_keeps_its_update_in_fit():
    # The compiled metrics' fast per-step call is only for MeanMetricWrapper's own update.
    class ScaledMAE(km.MeanAbsoluteError):
        def update(self, preds, target, sample_weight=None):
            super().update(preds * 0.5, target, sample_weight)

    x = np.linspace(-1, 1, 24, dtype="float32").reshape(12, 2)
    y = x.sum(1, keepdims=True) * 3
    model = kfit.Model(torch.nn.Linear(2, 1))
    model.compile("sgd", "mse", metrics=[ScaledMAE(name="scaled_mae")], device="cpu")
    value = model.evaluate(x, y, batch_size=5, return_dict=True, verbose=0)["scaled_mae"]
    with torch.no_grad():
        predictions = model.module(torch.from_numpy(x)).numpy()
    assert value == pytest.approx(np.abs(predictions * 0.5 - y).mean(), rel=1e-5)


@pytest.mark.parametrize(
    ("metric_class", "expected"), [(km.MeanSquaredError, 10.0), (km.MeanAbsoluteError, 3.0)]
)
def test_error_metrics_take_integer_tensors_like_keras(metric_class, expected):
    metric = metric_class()
    metric.update(torch.tensor([[3], [5]]), torch.tensor([[1], [1]]))
    assert float(metric.compute()) == pytest.approx(expected)  # Keras 3 gives 10.0 and 3.0


def test_compute_before_any_update_keeps_torchmetrics_warning():
    with pytest.warns(UserWarning, match="called before the ``update`` method"):
        km.Mean().compute()


def test_reset_gives_fresh_zero_states_and_forgets_counts():
    metric = km.Mean()
    metric.update(torch.tensor([1.0, 3.0]))
    held = metric.total
    metric.reset()
    assert held.item() == 4.0  # not zeroed in place: torchmetrics' forward relies on it
    assert metric.total.item() == 0.0
    assert metric.count.item() == 0.0
    assert metric.update_count == 0
    assert metric._host_count == 0
    metric.update(torch.tensor([5.0]))
    assert metric.compute().item() == 5.0


# --------------------------------------------------------------------------- direction

UP = [
    km.Accuracy,
    km.BinaryAccuracy,
    km.CategoricalAccuracy,
    km.SparseCategoricalAccuracy,
    km.SparseTopKCategoricalAccuracy,
    km.AUC,
    km.Precision,
    km.Recall,
    km.F1Score,
    km.FBetaScore,
    km.CosineSimilarity,
    km.PearsonCorrelation,
    km.ConcordanceCorrelation,
    km.R2Score,
]
DOWN = [
    km.MeanSquaredError,
    km.RootMeanSquaredError,
    km.MeanAbsoluteError,
    km.MeanAbsolutePercentageError,
    km.MeanSquaredLogarithmicError,
    km.LogCoshError,
    km.CosineDistance,
    km.Hinge,
    km.SquaredHinge,
    km.CategoricalHinge,
    km.KLDivergence,
    km.Poisson,
    km.BinaryCrossentropy,
    km.CategoricalCrossentropy,
    km.SparseCategoricalCrossentropy,
]


@pytest.mark.parametrize("metric_class", UP, ids=lambda c: c.__name__)
def test_higher_is_better_metrics_point_up(metric_class):
    assert metric_class().direction == "up"


@pytest.mark.parametrize("metric_class", DOWN, ids=lambda c: c.__name__)
def test_error_metrics_point_down(metric_class):
    assert metric_class().direction == "down"


def test_wrapped_function_direction_follows_higher_is_better():
    assert km.MeanMetricWrapper(km.binary_accuracy, higher_is_better=True).direction == "up"
    assert km.MeanMetricWrapper(km.mean_squared_error, higher_is_better=False).direction == "down"


@pytest.mark.keras_compat
@pytest.mark.parametrize(
    "metric_class",
    [c for c in UP + DOWN if hasattr(keras.metrics, c.__name__)],
    ids=lambda c: c.__name__,
)
def test_direction_matches_keras(metric_class):
    keras_metric = getattr(keras.metrics, metric_class.__name__)()
    assert metric_class().direction == keras_metric._direction


# --------------------------------------------------------------------------- device state


MEAN_STATE_METRICS = [
    (km.MeanAbsoluteError, "real"),
    (km.RootMeanSquaredError, "real"),
    (km.BinaryAccuracy, "multilabel"),
    (km.Hinge, "multilabel_logits"),
    (km.SparseCategoricalAccuracy, "sparse"),
    (km.R2Score, "real"),
]


@pytest.mark.parametrize(
    ("metric_class", "kind"), MEAN_STATE_METRICS, ids=lambda v: getattr(v, "__name__", v)
)
def test_update_under_no_grad_keeps_states_as_tensors(metric_class, kind):
    rng = np.random.default_rng(14)
    metric = metric_class()
    with torch.no_grad():
        for n in BATCH_SIZES:
            y_true, y_pred = _make(kind, rng, n)
            metric.update(_torch(y_pred), _torch(y_true))
    assert metric.metric_state
    for state, value in metric.metric_state.items():
        assert torch.is_tensor(value), state
    assert torch.is_tensor(metric.compute())


@pytest.mark.parametrize(
    ("metric_class", "kind"), MEAN_STATE_METRICS, ids=lambda v: getattr(v, "__name__", v)
)
def test_update_reads_nothing_back_to_the_host(metric_class, kind, monkeypatch):
    rng = np.random.default_rng(15)
    y_true, y_pred = (_torch(a) for a in _make(kind, rng, 6))
    weight = torch.rand(6)
    metric = metric_class()
    metric.update(y_pred, y_true, weight)  # the first update may build state

    def host_read(*args, **kwargs):
        raise AssertionError("update read a tensor back to the host")

    for name in ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, host_read)
    metric.update(y_pred, y_true, weight)
    monkeypatch.undo()
    assert torch.is_tensor(metric.compute())


def test_weighted_update_does_not_need_grad():
    y_pred = torch.rand(5, 1, requires_grad=True)
    metric = km.MeanSquaredError()
    metric.update(y_pred, torch.ones(5, 1), torch.ones(5))
    assert not metric.total.requires_grad


# --------------------------------------------------------------------------- registry

_KERAS_BASES = {
    "Metric",
    "Mean",
    "Sum",
    "MeanMetricWrapper",
    "metric",
    "mean",
    "sum",
    "mean_metric_wrapper",
}


def _keras_metric_ids() -> list[str]:
    return sorted(set(keras_metrics.ALL_OBJECTS_DICT) - _KERAS_BASES - set(km.UNSUPPORTED))


@pytest.mark.keras_compat
def test_unsupported_metric_ids_are_keras_ids():
    assert set(km.UNSUPPORTED) <= set(keras_metrics.ALL_OBJECTS_DICT)


def _needs_arguments(identifier: str) -> bool:
    """Keras classes that cannot be built from their id alone (IoU needs num_classes, ...)."""
    try:
        keras_metrics.ALL_OBJECTS_DICT[identifier]()
    except TypeError:
        return True
    return False


@pytest.mark.keras_compat
@pytest.mark.parametrize("identifier", _keras_metric_ids())
def test_every_keras_metric_id_resolves(identifier):
    if _needs_arguments(identifier):
        # Keras cannot build these from a string either; kfit says which object to pass.
        with pytest.raises(ValueError, match=r"needs arguments.*kfit\.metrics\."):
            km.get(identifier)
        return
    resolved = km.get(identifier)
    assert isinstance(resolved, torchmetrics.Metric)
    assert type(resolved).__name__ == keras_metrics.ALL_OBJECTS_DICT[identifier].__name__


_IOU_CASES = [
    ("IoU", {"num_classes": 4, "target_class_ids": [0, 2]}, "sparse"),
    ("MeanIoU", {"num_classes": 4}, "sparse"),
    ("MeanIoU", {"num_classes": 4, "ignore_class": 1}, "sparse"),
    ("OneHotIoU", {"num_classes": 4, "target_class_ids": [1, 3]}, "onehot"),
    ("OneHotMeanIoU", {"num_classes": 4}, "onehot"),
    ("BinaryIoU", {"threshold": 0.3}, "binary"),
    ("BinaryIoU", {"target_class_ids": [1]}, "binary"),
]


@pytest.mark.keras_compat
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize(("name", "options", "kind"), _IOU_CASES)
def test_iou_metrics_match_keras_over_two_batches(name, options, kind, weighted):
    rng = np.random.default_rng(7)
    ours, theirs = getattr(km, name)(**options), getattr(keras_metrics, name)(**options)
    for _ in range(2):
        labels = rng.integers(0, 4, size=40)
        if kind == "sparse":
            y_true, y_pred = labels, rng.integers(0, 4, size=40)
        elif kind == "onehot":
            y_true, y_pred = np.eye(4)[labels], rng.random((40, 4))
        else:
            y_true, y_pred = rng.integers(0, 2, size=(40, 1)), rng.random((40, 1))
        # Keras keeps the confusion matrix in integers: use integer weights.
        weight = rng.integers(0, 3, size=40) if weighted else None
        theirs.update_state(y_true, y_pred, sample_weight=weight)
        ours.update_state(
            torch.tensor(y_true),
            torch.tensor(y_pred),
            None if weight is None else torch.tensor(weight),
        )
    np.testing.assert_allclose(float(ours.result()), float(theirs.result()), rtol=1e-6)


def test_iou_rejects_target_classes_out_of_range():
    with pytest.raises(ValueError, match="target_class_ids"):
        km.IoU(num_classes=3, target_class_ids=[0, 3])


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("acuracy", "accuracy"),
        ("mean_sqared_error", "mean_squared_error"),
        ("categorical_acuracy", "categorical_accuracy"),
    ],
)
def test_unknown_metric_id_raises_value_error_suggesting_the_closest(typo, suggestion):
    with pytest.raises(ValueError, match=typo) as info:
        km.get(typo)
    assert f"Did you mean {suggestion!r}?" in str(info.value)
    assert "ALL_OBJECTS_DICT" in str(info.value)


def test_metric_id_gives_a_fresh_object_each_time():
    first, second = km.get("mae"), km.get("mae")
    assert isinstance(first, km.MeanAbsoluteError)
    assert first is not second


def test_get_passes_metric_objects_and_functions_through():
    metric = torchmetrics.MeanSquaredError()

    def custom(y_true, y_pred):
        return (y_true - y_pred).abs()

    assert km.get(metric) is metric
    assert km.get(custom) is custom
    assert isinstance(km.get(km.AUC), km.AUC)


def test_get_rejects_non_callables_with_type_error():
    with pytest.raises(TypeError, match="float"):
        km.get(0.5)


def test_every_metric_class_a_family_lists_is_a_kfit_metrics_name_and_an_id():
    # A new metric is added to its family module's __all__; the registry finds it there.
    from kfit.metrics import registry

    for family in registry.FAMILIES:
        for name in family.__all__:
            found = getattr(family, name)
            if isinstance(found, type) and issubclass(found, kfit.metrics.Metric):
                assert getattr(kfit.metrics, name) is found, name
                assert name in kfit.metrics.__all__, name
                assert kfit.metrics.ALL_OBJECTS_DICT[name] is found, name
