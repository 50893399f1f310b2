"""Every Keras 3 metric against Keras itself (torch backend): numbers, streaming, weights, edge
inputs, argument validation and configs.

Each case streams the same batches into a Keras metric and the kfit metric of the same name
and options, and compares `result()` at rtol 1e-5 (float32). The data include ties at the
thresholds (predictions of exactly 0, 0.25, 0.5, 1), all-one-class batches, weights of zero
and empty batches.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

import kfit.metrics as km

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

pytestmark = pytest.mark.keras_compat

N, C = 24, 4


def _result(metric) -> np.ndarray:
    value = metric.result()
    return value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)


def _stream(name: str, options: dict, batches) -> tuple[np.ndarray, np.ndarray]:
    """Feeds the same `(y_true, y_pred, weight)` batches to Keras's and kfit's metric."""
    ours, theirs = getattr(km, name)(**options), getattr(keras.metrics, name)(**options)
    for y_true, y_pred, weight in batches:
        theirs.update_state(y_true, y_pred, sample_weight=weight)
        ours.update_state(
            torch.as_tensor(y_true),
            torch.as_tensor(y_pred),
            None if weight is None else torch.as_tensor(weight),
        )
    return _result(ours), _result(theirs)


def _assert_same(name: str, options: dict, batches) -> None:
    got, expected = _stream(name, options, batches)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def _binary_data(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, size=(N, C)).astype("float32")
    if kind == "random":
        y_pred = rng.uniform(size=(N, C)).astype("float32")
    elif kind == "ties":  # predictions exactly on thresholds, 0 and 1 included
        y_pred = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=(N, C)).astype("float32")
    elif kind == "one_class":
        y_true = np.ones((N, C), "float32")
        y_pred = rng.uniform(size=(N, C)).astype("float32")
    else:
        raise ValueError(kind)
    return y_true, y_pred


def _weights(weighting: str, seed: int) -> np.ndarray | None:
    rng = np.random.default_rng(seed + 100)
    if weighting == "none":
        return None
    if weighting == "sample":
        weight = rng.uniform(0.0, 2.0, size=N).astype("float32")
        weight[::5] = 0.0  # weights of zero
        return weight
    weight = rng.uniform(0.0, 2.0, size=(N, C)).astype("float32")  # per element
    weight[::3, 1] = 0.0
    return weight


def _batches(y_true, y_pred, weight, empty: bool = True):
    """Three batches of uneven size, and an empty one when `empty`."""
    cuts = [(0, 7), (7, 7), (7, 16), (16, N)] if empty else [(0, 7), (7, 16), (16, N)]
    return [(y_true[a:b], y_pred[a:b], None if weight is None else weight[a:b]) for a, b in cuts]


# --------------------------------------------------------------------------- confusion family

CONFUSION_CASES = [
    ("TruePositives", {}),
    ("TruePositives", {"thresholds": [0.0, 0.25, 0.5, 1.0]}),
    ("FalsePositives", {"thresholds": 0.25}),
    ("FalsePositives", {"thresholds": [0.0, 0.5, 1.0]}),  # evenly spaced: Keras's buckets
    ("TrueNegatives", {"thresholds": [0.1, 0.5, 0.75]}),
    ("FalseNegatives", {}),
    ("FalseNegatives", {"thresholds": [0.0, 0.25, 0.5, 0.75, 1.0]}),
    ("Precision", {}),
    ("Precision", {"thresholds": [0.0, 0.5, 0.7]}),
    ("Precision", {"top_k": 2}),
    ("Precision", {"class_id": 1}),
    ("Precision", {"class_id": 2, "thresholds": 0.25}),
    ("Recall", {}),
    ("Recall", {"thresholds": [0.0, 0.5, 1.0]}),
    ("Recall", {"top_k": 1, "class_id": 3}),
    ("Recall", {"top_k": 3, "thresholds": [0.2, 0.6]}),
    ("PrecisionAtRecall", {"recall": 0.6}),
    ("PrecisionAtRecall", {"recall": 0.9, "num_thresholds": 1}),
    ("RecallAtPrecision", {"precision": 0.5, "num_thresholds": 11}),
    ("SensitivityAtSpecificity", {"specificity": 0.5}),
    ("SensitivityAtSpecificity", {"specificity": 0.8, "class_id": 0}),
    ("SpecificityAtSensitivity", {"sensitivity": 0.5, "num_thresholds": 7}),
    ("AUC", {}),
    ("AUC", {"num_thresholds": 5}),
    ("AUC", {"curve": "PR"}),
    ("AUC", {"curve": "PR", "summation_method": "majoring"}),
    ("AUC", {"curve": "PRGAIN"}),
    ("AUC", {"summation_method": "minoring"}),
    ("AUC", {"thresholds": [0.1, 0.5, 0.8]}),
    ("AUC", {"thresholds": [0.25, 0.5, 0.75]}),  # evenly spaced manual thresholds
    ("AUC", {"label_weights": [1.0, 2.0, 0.0, 0.5]}),
    ("AUC", {"multi_label": True}),
    ("AUC", {"multi_label": True, "num_labels": C, "label_weights": [1.0, 2.0, 0.0, 0.5]}),
    ("AUC", {"multi_label": True, "curve": "PR"}),
]


def _case_id(case) -> str:
    name, options = case
    return name + "".join(f"-{k}={v}" for k, v in options.items())


@pytest.mark.parametrize("case", CONFUSION_CASES, ids=_case_id)
@pytest.mark.parametrize("weighting", ["none", "sample", "element"])
@pytest.mark.parametrize("kind", ["random", "ties", "one_class"])
def test_confusion_metric_matches_keras(case, weighting, kind):
    name, options = case
    if weighting == "element" and "class_id" in options:
        pytest.skip("Keras cannot broadcast per-element weights over one class column")
    seed = {"random": 0, "ties": 1, "one_class": 2}[kind]
    y_true, y_pred = _binary_data(kind, seed)
    _assert_same(name, options, _batches(y_true, y_pred, _weights(weighting, seed)))


def test_auc_from_logits_matches_keras():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 2, size=(N, C)).astype("float32")
    logits = (3 * rng.normal(size=(N, C))).astype("float32")
    _assert_same("AUC", {"from_logits": True}, _batches(y_true, logits, _weights("sample", 3)))


def test_binary_metrics_take_one_dimensional_inputs_as_keras():
    y_true = np.array([0, 1, 1, 1, 0, 1], "float32")
    y_pred = np.array([0.1, 0.5, 0.9, 0.3, 0.7, 1.0], "float32")
    for name in ("Precision", "Recall", "AUC", "TruePositives", "SpecificityAtSensitivity"):
        options = {"sensitivity": 0.5} if name == "SpecificityAtSensitivity" else {}
        _assert_same(name, options, [(y_true, y_pred, None), (y_true[:2], y_pred[:2], None)])


def test_precision_docstring_example():
    metric = km.Precision()
    metric.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    assert float(metric.result()) == pytest.approx(2 / 3)


def test_keras_attribute_names_and_threshold_lists():
    metric = km.Precision(thresholds=[0.3, 0.6])
    assert metric.thresholds == [0.3, 0.6]
    metric.update_state(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.5, 0.4, 0.9]))
    assert metric.true_positives.tolist() == [2.0, 1.0]
    assert metric.false_positives.tolist() == [1.0, 0.0]
    assert km.Recall().false_negatives.shape == (1,)
    assert km.TruePositives(thresholds=[0.1, 0.2]).accumulator.shape == (2,)
    auc = km.AUC(num_thresholds=4)
    assert auc.thresholds[0] == pytest.approx(-1e-7)
    assert auc.thresholds[-1] == pytest.approx(1.0)
    assert {"true_positives", "false_positives", "true_negatives", "false_negatives"} <= set(
        auc.metric_state
    )


def test_class_id_with_one_dimensional_predictions_is_a_value_error():
    metric = km.Precision(class_id=2)
    with pytest.raises(ValueError, match="class_id"):
        metric.update_state(torch.tensor([0.0, 1.0]), torch.tensor([0.2, 0.9]))
    assert float(metric.true_positives.sum()) == 0.0


@pytest.mark.parametrize("name", ["PrecisionAtRecall", "SensitivityAtSpecificity"])
def test_fixed_rate_ids_resolve_to_kfit_metrics_with_keras_semantics(name):
    assert km.ALL_OBJECTS_DICT[name] is getattr(km, name)
    with pytest.raises(ValueError, match="needs arguments"):  # the required rate has no default
        km.get(name)


# --------------------------------------------------------------------------- F-scores


FBETA_CASES = [
    ("FBetaScore", {}),
    ("FBetaScore", {"average": "micro", "threshold": 0.5}),
    ("FBetaScore", {"average": "macro", "beta": 2.0, "threshold": 0.25}),
    ("FBetaScore", {"average": "weighted", "beta": 0.5}),
    ("F1Score", {}),
    ("F1Score", {"average": "macro", "threshold": 0.75}),
]


@pytest.mark.parametrize("case", FBETA_CASES, ids=_case_id)
@pytest.mark.parametrize("weighting", ["none", "sample"])
@pytest.mark.parametrize("kind", ["random", "ties", "one_class"])
def test_fbeta_matches_keras(case, weighting, kind):
    name, options = case
    y_true, y_pred = _binary_data(kind, 11)
    batches = _batches(y_true, y_pred, _weights(weighting, 11), empty=False)
    _assert_same(name, options, batches)


@pytest.mark.parametrize(
    "options",
    [
        {"beta": 1},
        {"beta": None},
        {"beta": "1.0"},
        {"beta": 0.0},
        {"beta": -0.5},
        {"threshold": 1.1},
        {"threshold": 0.0},
        {"threshold": -0.5},
        {"threshold": "0.5"},
        {"threshold": 1},
        {"average": "mean"},
    ],
    ids=str,
)
def test_fbeta_rejects_what_keras_rejects_with_value_error(options):
    with pytest.raises(ValueError, match="Invalid") as ours:
        km.FBetaScore(**options)
    with pytest.raises(ValueError, match="Invalid") as theirs:
        keras.metrics.FBetaScore(**options)
    assert str(ours.value) == str(theirs.value)


# --------------------------------------------------------------------------- regression


def test_adjusted_r2_counts_elements_and_falls_back_with_a_warning():
    y_true = np.array([[1.0], [2.0], [4.0]], "float32")
    y_pred = np.array([[1.5], [2.0], [3.0]], "float32")
    for p in (2, 5):
        with pytest.warns(UserWarning, match="Falling back"):
            got, expected = _stream("R2Score", {"num_regressors": p}, [(y_true, y_pred, None)])
        assert got == pytest.approx(0.7321428, rel=1e-5)
        np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("aggregation", [None, "uniform_average", "variance_weighted_average"])
@pytest.mark.parametrize("weighting", ["none", "sample", "element"])
@pytest.mark.parametrize("num_regressors", [0, 3])
def test_r2_score_matches_keras(aggregation, weighting, num_regressors):
    rng = np.random.default_rng(5)
    y_true = rng.normal(size=(N, C)).astype("float32")
    y_pred = (y_true + rng.normal(size=(N, C))).astype("float32")
    options = {"class_aggregation": aggregation, "num_regressors": num_regressors}
    batches = _batches(y_true, y_pred, _weights(weighting, 5), empty=False)
    _assert_same("R2Score", options, batches)


def test_r2_score_rejects_bad_options_as_keras():
    for options in ({"class_aggregation": "mean"}, {"num_regressors": -1}):
        with pytest.raises(ValueError, match=next(iter(options))):
            km.R2Score(**options)
        with pytest.raises(ValueError, match=next(iter(options))):
            keras.metrics.R2Score(**options)


# --------------------------------------------------------------------------- mean metrics

MEAN_CASES = [
    ("Accuracy", {}, "labels"),
    ("BinaryAccuracy", {}, "binary"),
    ("BinaryAccuracy", {"threshold": 0.3}, "binary"),
    ("CategoricalAccuracy", {}, "one_hot"),
    ("TopKCategoricalAccuracy", {"k": 2}, "one_hot"),
    ("SparseCategoricalAccuracy", {}, "sparse"),
    ("SparseTopKCategoricalAccuracy", {"k": 2}, "sparse"),
    ("MeanSquaredError", {}, "real"),
    ("RootMeanSquaredError", {}, "real"),
    ("MeanAbsoluteError", {}, "real"),
    ("MeanAbsolutePercentageError", {}, "positive"),
    ("MeanSquaredLogarithmicError", {}, "positive"),
    ("CosineSimilarity", {}, "real"),
    ("LogCoshError", {}, "real"),
    ("BinaryCrossentropy", {}, "binary"),
    ("BinaryCrossentropy", {"label_smoothing": 0.1}, "binary"),
    ("CategoricalCrossentropy", {}, "one_hot"),
    ("SparseCategoricalCrossentropy", {}, "sparse"),
    ("SparseCategoricalCrossentropy", {"ignore_class": 0}, "sparse"),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 1}, "sparse"),
    ("KLDivergence", {}, "one_hot"),
    ("Poisson", {}, "positive"),
    ("Hinge", {}, "binary"),
    ("SquaredHinge", {}, "binary"),
    ("CategoricalHinge", {}, "one_hot"),
    ("PearsonCorrelation", {}, "real"),
    ("ConcordanceCorrelation", {}, "real"),
]


def _mean_data(kind: str, rng: np.random.Generator):
    def distribution():
        values = rng.uniform(0.05, 1.0, size=(N, C)).astype("float32")
        return values / values.sum(-1, keepdims=True)

    if kind == "labels":
        return rng.integers(0, 3, (N, C)).astype("float32"), rng.integers(0, 3, (N, C)).astype(
            "float32"
        )
    if kind == "binary":
        return rng.integers(0, 2, (N, C)).astype("float32"), rng.uniform(size=(N, C)).astype(
            "float32"
        )
    if kind == "one_hot":
        return np.eye(C, dtype="float32")[rng.integers(0, C, N)], distribution()
    if kind == "sparse":
        return rng.integers(0, C, size=N), distribution()
    if kind == "positive":
        return (rng.uniform(0.1, 3.0, (N, C)).astype("float32") for _ in range(2))
    return (rng.normal(size=(N, C)).astype("float32") for _ in range(2))


# Per-element weights: Keras takes them where the per-sample values keep the class axis.
_ELEMENTWISE = {"Accuracy", "BinaryAccuracy"}


@pytest.mark.parametrize("case", MEAN_CASES, ids=lambda c: _case_id(c[:2]))
@pytest.mark.parametrize("weighting", ["none", "sample", "element"])
def test_mean_metric_matches_keras(case, weighting):
    name, options, kind = case
    if weighting == "element" and name not in _ELEMENTWISE:
        pytest.skip("per-element weights need per-element values")
    rng = np.random.default_rng(7)
    y_true, y_pred = _mean_data(kind, rng)
    _assert_same(name, options, _batches(y_true, y_pred, _weights(weighting, 7), empty=False))


def test_accuracy_takes_per_element_sample_weights():
    metric = km.Accuracy()
    metric.update_state([[1, 2], [3, 4]], [[0, 2], [3, 4]], sample_weight=[[1, 0], [0, 1]])
    assert float(metric.result()) == pytest.approx(0.5)


def test_sparse_crossentropy_ignore_class_leaves_weights_out_as_keras():
    y_true = np.array([0, 1, 2, 1])
    y_pred = np.array(
        [[0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4], [0.6, 0.2, 0.2]], "float32"
    )
    weight = np.array([1.0, 2.0, 3.0, 4.0], "float32")
    _assert_same("SparseCategoricalCrossentropy", {"ignore_class": 0}, [(y_true, y_pred, weight)])


@pytest.mark.parametrize("weighting", ["none", "sample", "element", "scalar"])
@pytest.mark.parametrize("name", ["Mean", "Sum"])
def test_mean_and_sum_match_keras(name, weighting):
    rng = np.random.default_rng(9)
    ours, theirs = getattr(km, name)(), getattr(keras.metrics, name)()
    for shape in [(5, 3), (0, 3), (4, 3)]:
        values = rng.normal(size=shape).astype("float32")
        weight = {
            "none": None,
            "sample": rng.uniform(size=shape[0]).astype("float32"),
            "element": rng.uniform(size=shape).astype("float32"),
            "scalar": np.float32(0.5),
        }[weighting]
        theirs.update_state(values, sample_weight=weight)
        ours.update_state(values, weight)
    np.testing.assert_allclose(_result(ours), _result(theirs), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- configs

CONFIG_CASES = [
    *((name, options) for name, options, _ in MEAN_CASES),
    *CONFUSION_CASES,
    *FBETA_CASES,
    ("R2Score", {"class_aggregation": None, "num_regressors": 2}),
    ("IoU", {"num_classes": 3, "target_class_ids": [0, 2], "ignore_class": 1}),
    ("MeanIoU", {"num_classes": 3}),
    ("BinaryIoU", {"target_class_ids": [1], "threshold": 0.3}),
    ("OneHotIoU", {"num_classes": 3, "target_class_ids": [1]}),
    ("OneHotMeanIoU", {"num_classes": 3}),
    ("Mean", {}),
    ("Sum", {"name": "total"}),
]


def _plain(config: dict) -> dict:
    return {
        key: (value.tolist() if hasattr(value, "tolist") else value)
        for key, value in config.items()
    }


@pytest.mark.parametrize("case", CONFIG_CASES, ids=_case_id)
def test_get_config_equals_keras_and_from_config_rebuilds(case):
    name, options = case
    ours = getattr(km, name)(**options)
    theirs = getattr(keras.metrics, name)(**options)
    config = ours.get_config()
    expected = _plain(theirs.get_config())
    if "target_class_ids" in expected:  # Keras keeps the tuple or list it was given
        expected["target_class_ids"] = list(expected["target_class_ids"])
    # Keras numbers repeated names (`precision_1`) and keeps IoU's matrix as int32; kfit
    # records options Keras forgets (CosineSimilarity's axis, from_sorted_ids) too.
    for key in ("name", "dtype"):
        expected.pop(key)
    assert {key: _plain(config)[key] for key in expected} == expected
    assert config["name"] == getattr(km, name)(**options).name
    rebuilt = type(ours).from_config(config)
    assert rebuilt.get_config() == config
    assert type(km.deserialize(km.serialize(ours))) is type(ours)
    assert km.get({"class_name": name, "config": config}).get_config() == config


def test_mean_metric_wrapper_serializes_its_function_by_name():
    metric = km.MeanMetricWrapper(km.mean_absolute_error, name="l1")
    data = km.serialize(metric)
    assert data["config"]["fn"] == "mean_absolute_error"
    rebuilt = km.deserialize(data)
    assert rebuilt.fn is km.mean_absolute_error
    assert rebuilt.name == "l1"
    data = km.serialize(km.mean_squared_error)
    assert data["class_name"] == "function"
    assert km.deserialize(data) is km.mean_squared_error


def test_deserialize_names_the_closest_class_for_a_typo():
    with pytest.raises(ValueError, match="'Precision'"):
        km.deserialize({"class_name": "Precission", "config": {}})


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("Precision", {"thresholds": 1.5}),
        ("Recall", {"thresholds": [0.5, -0.1]}),
        ("TruePositives", {"thresholds": [0.2, 1.2]}),
        ("AUC", {"num_thresholds": 1}),
        ("AUC", {"curve": "XY"}),
        ("AUC", {"summation_method": "simpson"}),
        ("AUC", {"num_labels": 3}),
        ("PrecisionAtRecall", {"recall": 1.5}),
        ("RecallAtPrecision", {"precision": -0.1}),
        ("SensitivityAtSpecificity", {"specificity": 2.0}),
        ("SpecificityAtSensitivity", {"sensitivity": 0.5, "num_thresholds": 0}),
    ],
    ids=lambda value: value if isinstance(value, str) else "-".join(map(str, value.items())),
)
def test_rejects_what_keras_rejects_with_value_error(name, options):
    with pytest.raises(ValueError):  # noqa: PT011 (Keras's messages vary)
        getattr(keras.metrics, name)(**options)
    with pytest.raises(ValueError, match=list(options)[-1]):
        getattr(km, name)(**options)


def test_a_string_threshold_is_a_type_error_naming_the_argument():
    with pytest.raises(TypeError, match="thresholds"):
        km.Precision(thresholds="0.5")


# --------------------------------------------------------------------------- device discipline

DEVICE_CASES = [
    ("Precision", {"thresholds": [0.2, 0.5], "top_k": 2}),
    ("TruePositives", {"thresholds": [0.0, 0.5, 1.0]}),
    ("AUC", {}),
    ("AUC", {"multi_label": True, "curve": "PR"}),
    ("SensitivityAtSpecificity", {"specificity": 0.5}),
    ("FBetaScore", {"average": "weighted"}),
    ("R2Score", {}),
]


@pytest.mark.parametrize("case", DEVICE_CASES, ids=_case_id)
def test_update_reads_nothing_back_to_the_host(case, monkeypatch):
    name, options = case
    y_true, y_pred = (torch.as_tensor(a) for a in _binary_data("ties", 1))
    weight = torch.rand(N)
    metric = getattr(km, name)(**options)
    metric.update(y_pred, y_true, weight)  # the first update may size the states

    def host_read(*args, **kwargs):
        raise AssertionError("update read a tensor back to the host")

    for attribute in ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, attribute, host_read)
    metric.update(y_pred, y_true, weight)
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.is_tensor(metric.compute())


# --------------------------------------------------------------------------- the package


def test_every_keras_metric_name_is_in_kfit_and_no_submodule_hides_one():
    public = {name for name in dir(keras.metrics) if not name.startswith("_")}
    assert public <= set(km.__all__)
    assert km.__all__ == sorted(km.__all__)
    for name in km.__all__:
        assert not isinstance(getattr(km, name), type(os)), name


def test_states_sized_by_the_first_batch_keep_their_shape_after_reset():
    auc = km.AUC(num_thresholds=5, multi_label=True)
    auc.update_state(torch.ones(3, 2), torch.rand(3, 2))
    auc.reset_state()
    assert auc.true_positives.shape == (5, 2)
    assert float(auc.true_positives.abs().sum()) == 0.0
    assert [tuple(v.shape) for v in auc.variables] == [(5, 2)] * 4


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (lambda: km.TruePositives(thresholds=[-1, 0.5, 2]), r"Received: \[-1, 2\]"),
        (lambda: km.Precision(thresholds=[None]), r"Received: \[None\]"),
        (lambda: km.SensitivityAtSpecificity(-1), r"`specificity` must be in the range \[0, 1\]"),
        (lambda: km.PrecisionAtRecall(0.4, num_thresholds=-1), "must be an integer > 0"),
        (lambda: km.AUC(num_thresholds=1), "must be an integer > 1"),
        (lambda: km.AUC(curve="Invalid"), 'Invalid AUC curve value: "Invalid"'),
    ],
)
def test_validation_messages_carry_keras_wording(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()


@pytest.mark.parametrize(
    ("name", "options"),
    [("FBetaScore", {}), ("AUC", {"multi_label": True}), ("R2Score", {}), ("Precision", {})],
)
def test_forward_returns_the_batch_value_and_accumulates_the_epoch(name, options):
    first, second = (_binary_data("random", seed) for seed in (1, 2))
    metric, batch_only, both = (getattr(km, name)(**options) for _ in range(3))
    metric(torch.as_tensor(first[1]), torch.as_tensor(first[0]))
    value = metric(torch.as_tensor(second[1]), torch.as_tensor(second[0]))
    batch_only.update_state(*second)
    for y_true, y_pred in (first, second):
        both.update_state(y_true, y_pred)
    torch.testing.assert_close(value, batch_only.result())
    torch.testing.assert_close(metric.compute(), both.result())
