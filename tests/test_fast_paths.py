"""Every fast path of the losses and metrics against its general path: same values, same gradients.

The fused batch means (`kfit.losses.loss.BATCH_MEANS`) and the metrics' batch sums
(`kfit.metrics.reduction.BATCH_SUMS`) are read from their registries, so a new entry is tested
here without editing this file: its options come from its signature (a new option name needs
its values in `OPTION_VALUES`) and the kind of target it takes from the function's name
(`sparse_*`: class ids; `*categorical*`: one-hot or soft distributions; `*binary*`: 0/1 or soft
labels; anything else: real values). The other fast paths (the unweighted branch of
`reduce_weighted`, the direct ATen calls of `same_shape_loss`, the unweighted branches of
`Mean` and `Sum`, the loss tracker's host-side count, the compiled loss and metrics' per-step
calls) have a test each below, as do the rules that keep a subclass on the general path.
"""

from __future__ import annotations

import inspect
import itertools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import kfit
from kfit.compiled.loss import CompiledLoss, LossTracker
from kfit.losses.batch_means import same_shape_loss
from kfit.losses.loss import BATCH_MEANS, Loss, LossFunctionWrapper, reduce_weighted
from kfit.metrics.reduction import BATCH_SUMS, Mean, MeanMetricWrapper, Sum, samplewise_total

# Tight: the two paths differ only in the order of the additions.
TOLERANCES = {
    torch.float32: {"rtol": 2e-6, "atol": 1e-7},
    torch.float64: {"rtol": 1e-12, "atol": 1e-14},
}
DTYPES = [torch.float32, torch.float64]

#: The values each option of a fused batch mean is tried with.
OPTION_VALUES: dict[str, list[Any]] = {
    "from_logits": [False, True],
    "label_smoothing": [0.0, 0.2],
    "axis": [-1, 1],
    "ignore_class": [None, 1],
}

LAYOUTS = [
    "one_sample",  # y_pred (1, C)
    "flat",  # y_pred (N,), y_true (N,)
    "column",  # y_pred (N, 1), y_true (N, 1)
    "column_flat_true",  # y_pred (N, 1), y_true (N,)
    "flat_column_true",  # y_pred (N,), y_true (N, 1)
    "matrix",  # y_pred (N, C)
    "matrix_column_ids",  # y_pred (N, C), class ids (N, 1) (sparse targets only)
    "sequence",  # y_pred (N, T, C)
]
LABEL_DTYPES = ["float", torch.int64, torch.int32, torch.uint8]


def _name(value: Any) -> str:
    return getattr(value, "__name__", str(value))


def target_kind(fn: Callable[..., Any]) -> str:
    name = fn.__name__
    if name.startswith("sparse_"):
        return "sparse"
    if "categorical" in name:
        return "categorical"
    if "binary" in name:
        return "binary"
    return "real"


def option_names(entry: Callable[..., Any]) -> list[str]:
    """The options a registry entry takes (every parameter after `y_true, y_pred`)."""
    names = list(inspect.signature(entry).parameters)[2:]
    missing = [name for name in names if name not in OPTION_VALUES]
    assert not missing, f"{_name(entry)} takes {missing}: give them values in OPTION_VALUES"
    return names


def option_sets(entry: Callable[..., Any]) -> list[dict[str, Any]]:
    names = option_names(entry)
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(OPTION_VALUES[name] for name in names))
    ]


def _fused_mean_cases() -> list[Any]:
    return [
        pytest.param(fn, options, id=f"{fn.__name__}-{options}")
        for fn, entry in BATCH_MEANS.items()
        for options in option_sets(entry)
    ]


def make_inputs(
    kind: str,
    layout: str,
    n: int,
    c: int,
    t: int,
    seed: int,
    dtype: torch.dtype,
    label_dtype: Any,
    logits: bool = True,
    axis: int = -1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(y_true, y_pred)` of `kind` in `layout`; `y_pred` holds logits or probabilities."""
    rng = np.random.default_rng(seed)
    n = 1 if layout == "one_sample" else n
    pred_shape = {
        "one_sample": (1, c),
        "flat": (n,),
        "column": (n, 1),
        "column_flat_true": (n, 1),
        "flat_column_true": (n,),
        "matrix": (n, c),
        "matrix_column_ids": (n, c),
        "sequence": (n, t, c),
    }[layout]
    class_axis = axis % len(pred_shape)
    raw = torch.as_tensor(rng.normal(size=pred_shape) * 3.0, dtype=dtype)
    if kind == "real":
        y_pred = raw
    elif kind == "binary":
        y_pred = raw if logits else torch.sigmoid(raw)
    else:
        y_pred = raw if logits else torch.softmax(raw, dim=class_axis)
    if kind == "sparse":
        num_classes = pred_shape[class_axis]
        id_shape = pred_shape[:class_axis] + pred_shape[class_axis + 1 :]
        ids = torch.as_tensor(rng.integers(0, num_classes, size=id_shape))
        if layout == "matrix_column_ids":
            ids = ids.unsqueeze(-1)
        y_true = ids.to(dtype if label_dtype == "float" else label_dtype)
        return y_true, y_pred
    if kind == "real":
        y_true = torch.as_tensor(rng.normal(size=pred_shape), dtype=dtype)
    elif kind == "binary":
        if label_dtype == "float" and seed % 2:  # soft labels
            y_true = torch.as_tensor(rng.random(pred_shape), dtype=dtype)
        else:
            y_true = torch.as_tensor(rng.integers(0, 2, size=pred_shape))
            y_true = y_true.to(dtype if label_dtype == "float" else label_dtype)
    else:  # one-hot, or soft distributions, along the class axis
        if label_dtype == "float" and seed % 2:
            y_true = torch.softmax(torch.as_tensor(rng.normal(size=pred_shape)), class_axis)
            y_true = y_true.to(dtype)
        else:
            ids = torch.as_tensor(rng.integers(0, pred_shape[class_axis], size=pred_shape))
            ids = ids.narrow(class_axis, 0, 1)
            y_true = torch.zeros(pred_shape, dtype=torch.int64).scatter_(class_axis, ids, 1)
            y_true = y_true.to(dtype if label_dtype == "float" else label_dtype)
    if layout == "column_flat_true":
        y_true = y_true.squeeze(-1)
    elif layout == "flat_column_true":
        y_true = y_true.unsqueeze(-1)
    return y_true, y_pred


def usable(kind: str, layout: str, axis: int) -> bool:
    """Whether `layout` makes sense for `kind` with this class axis."""
    rank = {"flat": 1, "flat_column_true": 1, "sequence": 3}.get(layout, 2)
    if axis >= rank:
        return False
    if layout == "matrix_column_ids":
        return kind == "sparse"
    if kind == "sparse":  # class ids need a class axis of their own
        return layout in ("one_sample", "matrix", "sequence")
    return True


case_strategy = st.fixed_dictionaries(
    {
        "layout": st.sampled_from(LAYOUTS),
        "n": st.integers(1, 9),
        "c": st.integers(2, 6),
        "t": st.integers(1, 4),
        "seed": st.integers(0, 2**31 - 1),
        "label_dtype": st.sampled_from(LABEL_DTYPES),
    }
)


def _warned(call: Callable[[], Any]) -> tuple[Any, list[tuple[type, str]]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = call()
    return value, [(w.category, str(w.message)) for w in caught]


def assert_same_value_and_gradient(
    fast: Callable[[torch.Tensor], torch.Tensor | None],
    general: Callable[[torch.Tensor], torch.Tensor],
    y_pred: torch.Tensor,
) -> bool:
    """Checks `fast(y_pred) == general(y_pred)`, their gradients and warnings.

    Returns:
        False if `fast` declined (returned None), else True.
    """
    fast_pred = y_pred.detach().clone().requires_grad_(True)
    fast_value, fast_warnings = _warned(lambda: fast(fast_pred))
    if fast_value is None:
        return False
    general_pred = y_pred.detach().clone().requires_grad_(True)
    general_value, general_warnings = _warned(lambda: general(general_pred))
    assert fast_warnings == general_warnings
    assert fast_value.dtype == general_value.dtype
    assert fast_value.shape == general_value.shape
    tolerance = TOLERANCES[y_pred.dtype]
    torch.testing.assert_close(fast_value, general_value, **tolerance)
    (fast_grad,) = torch.autograd.grad(fast_value, fast_pred)
    (general_grad,) = torch.autograd.grad(general_value, general_pred)
    torch.testing.assert_close(fast_grad, general_grad, **tolerance)
    return True


# --------------------------------------------------------------------------- fused batch means


def test_the_registries_are_filled():
    assert {fn.__name__ for fn in BATCH_MEANS} >= {
        "mean_squared_error",
        "mean_absolute_error",
        "binary_crossentropy",
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
    }
    assert {fn.__name__ for fn in BATCH_SUMS} >= {
        "mean_squared_error",
        "mean_absolute_error",
        "categorical_accuracy",
        "sparse_categorical_accuracy",
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("fn", "options"), _fused_mean_cases())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(case=case_strategy)
def test_fused_batch_mean_equals_the_per_sample_path(fn, options, dtype, case):
    kind = target_kind(fn)
    axis = options.get("axis", -1)
    assume(usable(kind, case["layout"], axis))
    logits = options.get("from_logits", True)
    y_true, y_pred = make_inputs(kind, dtype=dtype, logits=logits, axis=axis, **case)
    loss = LossFunctionWrapper(fn, **options)
    assert loss.has_batch_mean
    assert_same_value_and_gradient(
        lambda pred: loss.batch_mean(y_true, pred),
        lambda pred: Loss.__call__(loss, y_true, pred),  # call + reduce_weighted
        y_pred,
    )


@pytest.mark.parametrize("fn", list(BATCH_MEANS), ids=_name)
def test_every_fused_batch_mean_applies_to_a_plain_batch(fn):
    # An entry that declines everything would leave its fused path untested (and unused).
    options = {name: OPTION_VALUES[name][0] for name in option_names(BATCH_MEANS[fn])}
    if "from_logits" in options:
        options["from_logits"] = True
    kind = target_kind(fn)
    y_true, y_pred = make_inputs(kind, "matrix", 5, 3, 1, 0, torch.float32, "float")
    loss = LossFunctionWrapper(fn, **options)
    assert assert_same_value_and_gradient(
        lambda pred: loss.batch_mean(y_true, pred),
        lambda pred: Loss.__call__(loss, y_true, pred),
        y_pred,
    )


def _kfit_loss_objects() -> list[Any]:
    """Every kfit loss class whose function has a fused mean, with and without logits."""
    found = []
    for cls in {v for v in kfit.losses.ALL_OBJECTS_DICT.values() if isinstance(v, type)}:
        if not issubclass(cls, LossFunctionWrapper):
            continue
        takes_logits = "from_logits" in inspect.signature(cls).parameters
        for options in [{}, {"from_logits": True}] if takes_logits else [{}]:
            loss = cls(**options)
            if loss.fn in BATCH_MEANS:
                found.append(pytest.param(loss, id=f"{cls.__name__}-{options}"))
    return sorted(found, key=lambda p: p.id)


@pytest.mark.parametrize("loss", _kfit_loss_objects())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["one_sample", "column", "matrix", "sequence"])
def test_kfit_loss_classes_give_their_general_path_value(loss, dtype, layout):
    kind = target_kind(loss.fn)
    logits = loss.fn_kwargs.get("from_logits", True)
    y_true, y_pred = make_inputs(kind, layout, 6, 4, 3, 7, dtype, "float", logits=logits)
    assert loss.fused_mean_allowed
    assert_same_value_and_gradient(
        lambda pred: loss(y_true, pred),
        lambda pred: Loss.__call__(loss, y_true, pred),
        y_pred,
    )


def _compiled_cases() -> list[Any]:
    layouts = ["one_sample", "column_flat_true", "matrix", "sequence"]
    return [
        pytest.param(fn, options, layout, id=f"{fn.__name__}-{options}-{layout}")
        for fn, entry in BATCH_MEANS.items()
        for options in option_sets(entry)
        for layout in layouts
        if usable(target_kind(fn), layout, options.get("axis", -1))
    ]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("fn", "options", "layout"), _compiled_cases())
def test_compiled_loss_fused_path_equals_its_weighted_path(fn, options, layout, dtype):
    # The step loss asks the loss for its fused mean; with sample weights of one it takes the
    # general path (per-sample values, then Keras's weighted reduction): the same number.
    kind = target_kind(fn)
    axis = options.get("axis", -1)
    logits = options.get("from_logits", True)
    y_true, y_pred = make_inputs(kind, layout, 6, 4, 3, 11, dtype, torch.int64, logits, axis)
    compiled = CompiledLoss(LossFunctionWrapper(fn, **options))
    with warnings.catch_warnings():  # probabilities along another axis than the last
        warnings.simplefilter("ignore")
        compiled.build(y_true, y_pred)
    ones = torch.ones(y_pred.shape[0], dtype=dtype)
    assert_same_value_and_gradient(
        lambda pred: compiled(y_true, pred, None),
        lambda pred: compiled(y_true, pred, ones),
        y_pred,
    )


def test_compiled_loss_takes_the_fused_path(monkeypatch):
    calls = []
    original = LossFunctionWrapper.batch_mean

    def counting(self, y_true, y_pred):
        value = original(self, y_true, y_pred)
        calls.append(value is not None)
        return value

    monkeypatch.setattr(LossFunctionWrapper, "batch_mean", counting)
    compiled = CompiledLoss("mse")
    y_true, y_pred = torch.zeros(4, 2), torch.ones(4, 2)
    compiled.build(y_true, y_pred)
    assert float(compiled(y_true, y_pred, None)) == 1.0
    assert calls == [True]


def test_compiled_loss_fused_path_computes_in_the_loss_dtype():
    # As the loss object itself does: a float64 loss of float32 outputs is float64.
    loss = kfit.losses.MeanSquaredError(dtype="float64")
    y_true, y_pred = torch.zeros(4, 1), torch.full((4, 1), 0.1)
    compiled = CompiledLoss(loss)
    compiled.build(y_true, y_pred)
    value = compiled(y_true, y_pred, None)
    assert value.dtype == torch.float64 == loss(y_true, y_pred).dtype
    torch.testing.assert_close(value, Loss.__call__(loss, y_true, y_pred))


# --------------------------------------------------------------------------- the general path kept


def test_a_subclass_overriding_call_takes_the_general_path():
    class DoubledMSE(kfit.losses.MeanSquaredError):
        def call(self, y_true, y_pred):
            return 2.0 * super().call(y_true, y_pred)

    loss = DoubledMSE()
    y_true, y_pred = torch.zeros(4, 1), torch.ones(4, 1)
    assert not DoubledMSE.fused_mean_allowed
    assert not loss.has_batch_mean
    assert loss.batch_mean(y_true, y_pred) is None
    assert float(loss(y_true, y_pred)) == 2.0
    compiled = CompiledLoss(loss)
    compiled.build(y_true, y_pred)
    assert float(compiled(y_true, y_pred, None)) == 2.0


def test_a_subclass_overriding_compute_mask_takes_the_general_path():
    class FirstHalf(kfit.losses.MeanAbsoluteError):
        def compute_mask(self, y_true, y_pred, values):
            mask = torch.zeros_like(values, dtype=torch.bool)
            mask[: len(mask) // 2] = True
            return mask

    y_true, y_pred = torch.zeros(4, 1), torch.tensor([[1.0], [1.0], [5.0], [5.0]])
    assert float(FirstHalf()(y_true, y_pred)) == 1.0


def test_a_subclass_keeping_kfits_methods_keeps_the_fused_path():
    class Named(kfit.losses.MeanSquaredError):
        def __init__(self):
            super().__init__(name="named")

    assert Named.fused_mean_allowed
    assert Named().has_batch_mean
    # kfit's own override (SparseCategoricalCrossentropy.compute_mask) is covered by the entry.
    assert kfit.losses.SparseCategoricalCrossentropy(from_logits=True).has_batch_mean


def test_setting_fn_chooses_the_fused_path_again():
    loss = kfit.losses.LossFunctionWrapper(kfit.losses.mean_squared_error)
    assert loss.has_batch_mean
    loss.fn = kfit.losses.huber
    y_true, y_pred = torch.zeros(3, 1), torch.full((3, 1), 3.0)
    assert not loss.has_batch_mean
    assert loss.batch_mean(y_true, y_pred) is None
    torch.testing.assert_close(loss(y_true, y_pred), kfit.losses.huber(y_true, y_pred).mean())


def test_a_changed_reduction_leaves_the_fused_path():
    loss = kfit.losses.MeanSquaredError()
    loss.reduction = "sum"
    y_true, y_pred = torch.zeros(3, 1), torch.ones(3, 1)
    assert not loss.has_batch_mean
    assert loss.batch_mean(y_true, y_pred) is None
    assert float(loss(y_true, y_pred)) == 3.0


def test_a_metric_subclass_overriding_update_has_no_fast_update():
    class Scaled(kfit.metrics.MeanAbsoluteError):
        def update(self, preds, target, sample_weight=None):
            super().update(preds * 0.5, target, sample_weight)

    assert kfit.metrics.MeanAbsoluteError().fast_update is not None
    assert Scaled().fast_update is None


def test_setting_a_metric_fn_chooses_its_batch_sum_again():
    metric = MeanMetricWrapper(kfit.metrics.mean_absolute_error)
    assert metric.fast_update is not None
    metric.fn = kfit.metrics.mean_squared_error
    assert metric.fast_update is not None
    metric.update(torch.full((2, 1), 3.0), torch.zeros(2, 1))
    assert float(metric.compute()) == 9.0
    metric.fn = kfit.losses.huber  # no batch sum
    assert metric.fast_update is None
    assert MeanMetricWrapper(kfit.metrics.mean_absolute_error, name="x", k=1).fast_update is None


# --------------------------------------------------------------------------- metric batch sums


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("fn", list(BATCH_SUMS), ids=_name)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(case=case_strategy)
def test_batch_sum_equals_the_per_sample_path(fn, dtype, case):
    kind = target_kind(fn)
    assume(usable(kind, case["layout"], -1))
    y_true, y_pred = make_inputs(kind, dtype=dtype, **case)
    fast_pred = y_pred.clone().requires_grad_(True)
    general_pred = y_pred.clone().requires_grad_(True)
    fast_total, fast_count = BATCH_SUMS[fn](y_true, fast_pred)
    values = fn(y_true, general_pred)  # MeanMetricWrapper's general path
    values = values if values.is_floating_point() else values.float()
    general_total, general_count = samplewise_total(values.sum(), values.shape)
    assert fast_count == general_count
    tolerance = TOLERANCES[dtype]
    torch.testing.assert_close(fast_total.to(general_total.dtype), general_total, **tolerance)
    if fast_total.requires_grad or general_total.requires_grad:
        (fast_grad,) = torch.autograd.grad(fast_total, fast_pred)
        (general_grad,) = torch.autograd.grad(general_total, general_pred)
        torch.testing.assert_close(fast_grad, general_grad, **tolerance)


def _epoch_values(metric: Any, batches: list[Any], how: str) -> list[torch.Tensor]:
    values = []
    for y_true, y_pred in batches:
        if how == "fast_update":
            with torch.no_grad():
                metric.fast_update(y_pred, y_true, None)
        else:
            metric.update(y_pred, y_true)
        values.append(metric.compute())
    return values


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("fn", list(BATCH_SUMS), ids=_name)
@pytest.mark.parametrize("how", ["update", "fast_update"])
def test_metric_fast_paths_equal_the_general_path(fn, dtype, how):
    kind = target_kind(fn)
    layouts = ["one_sample", "matrix", "sequence", "column_flat_true"]
    batches = [
        make_inputs(kind, layout, n, 3, 2, seed, dtype, torch.int64)
        for seed, (layout, n) in enumerate(itertools.product(layouts, [1, 5]))
        if usable(kind, layout, -1)
    ]
    fast = MeanMetricWrapper(fn, dtype=dtype)
    general = MeanMetricWrapper(lambda y_true, y_pred: fn(y_true, y_pred), dtype=dtype)
    assert fast.fast_update is not None
    assert general.fast_update is None
    for fast_value, general_value in zip(
        _epoch_values(fast, batches, how), _epoch_values(general, batches, "update"), strict=True
    ):
        torch.testing.assert_close(fast_value, general_value, **TOLERANCES[dtype])


def _kfit_metric_objects() -> list[Any]:
    """Every kfit metric class (default options) whose function has a batch sum."""
    found = []
    for cls in {v for v in kfit.metrics.ALL_OBJECTS_DICT.values() if isinstance(v, type)}:
        if issubclass(cls, MeanMetricWrapper):
            try:
                metric = cls()
            except TypeError:  # needs arguments
                continue
            if metric.fast_update is not None:
                found.append(pytest.param(cls, id=cls.__name__))
    return sorted(found, key=lambda p: p.id)


@pytest.mark.parametrize("cls", _kfit_metric_objects())
def test_kfit_metric_classes_give_their_general_path_value(cls):
    fast, general = cls(), cls()
    fn = fast.fn
    general.fn = lambda y_true, y_pred: fn(y_true, y_pred)
    assert general.fast_update is None
    kind = target_kind(fn)
    batches = [make_inputs(kind, "matrix", n, 4, 1, n, torch.float32, "float") for n in (1, 7)]
    for fast_value, general_value in zip(
        _epoch_values(fast, batches, "fast_update"),
        _epoch_values(general, batches, "update"),
        strict=True,
    ):
        torch.testing.assert_close(fast_value, general_value, **TOLERANCES[torch.float32])


# --------------------------------------------------------------------------- other fast paths


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean"])
@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (5, 3), (4, 2, 3), (0, 3)], ids=str)
def test_reduce_weighted_unweighted_branch_equals_weights_of_one(shape, reduction, dtype):
    values = torch.as_tensor(np.random.default_rng(3).normal(size=shape), dtype=dtype)
    ones = torch.ones(shape[0], dtype=dtype)
    assert_same_value_and_gradient(
        lambda v: reduce_weighted(v, None, reduction),
        lambda v: reduce_weighted(v, ones, reduction),
        values,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
@pytest.mark.parametrize("shape", [(1,), (6, 1), (5, 3), (2, 3, 4)], ids=str)
def test_same_shape_loss_equals_the_public_torch_function(shape, name, reduction, dtype):
    rng = np.random.default_rng(5)
    y_true = torch.as_tensor(rng.normal(size=shape), dtype=dtype)
    y_pred = torch.as_tensor(rng.normal(size=shape), dtype=dtype)
    direct = same_shape_loss(name, reduction)
    assert_same_value_and_gradient(
        lambda pred: direct(pred, y_true),
        lambda pred: getattr(F, name)(pred, y_true, reduction=reduction),
        y_pred,
    )


@pytest.mark.parametrize("cls", [Mean, Sum], ids=_name)
@pytest.mark.parametrize("shape", [(1,), (6,), (5, 1), (5, 3), (4, 2, 3)], ids=str)
def test_unweighted_mean_and_sum_equal_weights_of_one(cls, shape):
    rng = np.random.default_rng(9)
    batches = [torch.as_tensor(rng.normal(size=shape), dtype=torch.float32) for _ in range(3)]
    unweighted, weighted = cls(), cls()
    for values in batches:
        unweighted.update(values)
        weighted.update(values, torch.ones(shape[0]))
        torch.testing.assert_close(unweighted.compute(), weighted.compute())


def test_loss_tracker_host_count_equals_a_device_count():
    host, device = LossTracker(), LossTracker()
    for loss, batch_size in [(0.5, 32), (1.5, 32), (2.0, 7)]:
        host.update(torch.tensor(loss), batch_size)
        device.update(torch.tensor(loss), torch.tensor(float(batch_size)))
    torch.testing.assert_close(host.compute(), device.compute())
    torch.testing.assert_close(host.compute(), torch.tensor((0.5 * 32 + 1.5 * 32 + 2 * 7) / 71))
