"""Confusion-matrix metrics, as Keras's `confusion_metrics`.

Counts at thresholds, precision and recall; the four "X at fixed Y" metrics, which count
the same way, are in `kfit.metrics.fixed_rate`.

Every count is a weighted sum over the entries of the batch, kept per threshold on the device
and summed across processes under torchrun. `update_confusion_matrix` follows Keras's
`metrics_utils.update_confusion_matrix_variables`: a prediction is positive above a threshold
(strictly), any non-zero label is positive, and for evenly spaced thresholds the counts come
from Keras's bucketed form (the same numbers at ties, in O(N + T)).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from kfit.metrics.base import Metric, squeeze_or_expand_to_same_rank

__all__ = [
    "EPSILON",
    "NEG_INF",
    "divide_no_nan",
    "FalseNegatives",
    "FalsePositives",
    "Precision",
    "Recall",
    "TrueNegatives",
    "TruePositives",
    "evenly_distributed",
    "update_confusion_matrix",
]

#: Keras's `backend.epsilon()`: AUC's end thresholds sit this far outside [0, 1].
EPSILON = 1e-7
#: Keras's `NEG_INF`: the threshold used with `top_k` (every kept prediction is positive).
NEG_INF = -1e10


def _threshold_list(metric: str, thresholds: Any, default: float) -> list[float]:
    """Keras's `parse_init_thresholds`, with type checks: a list of floats in [0, 1]."""
    if thresholds is None:
        return [default]
    values = list(thresholds) if isinstance(thresholds, list | tuple) else [thresholds]
    for value in values:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise TypeError(
                f"`thresholds` of {metric} must be a number or a list of numbers in [0, 1]; "
                f"got {thresholds!r}."
            )
    bad = [value for value in values if value is None or not 0 <= value <= 1]
    if bad:
        raise ValueError(
            f"Threshold values must be in [0, 1]. Received: {bad} "
            f"(`thresholds` of {metric}: {thresholds!r})."
        )
    return [float(value) for value in values]


def evenly_distributed(thresholds: Sequence[float]) -> bool:
    """Keras's `is_evenly_distributed_thresholds`: 3 or more thresholds spaced `1/(n-1)`."""
    count = len(thresholds)
    if count < 3:
        return False
    even = np.arange(count, dtype=np.float32) / (count - 1)
    return bool(np.allclose(np.asarray(thresholds, dtype=np.float64), even, atol=EPSILON))


def _filter_top_k(y_pred: torch.Tensor, k: int) -> torch.Tensor:
    kept = torch.zeros_like(y_pred).scatter_(-1, y_pred.topk(k, dim=-1).indices, 1.0)
    return y_pred * kept + NEG_INF * (1.0 - kept)


def _bucket_counts(
    positive: torch.Tensor,
    negative: torch.Tensor,
    y_pred: torch.Tensor,
    num_thresholds: int,
    with_epsilon: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted positives and negatives predicted above each of `num_thresholds` thresholds.

    For evenly spaced thresholds: each prediction falls in one bucket, and a reversed
    cumulative sum counts the buckets at or above each threshold. Inputs are (N,) or, per
    label, (N, C).
    """
    bucket = torch.ceil(y_pred.clamp(0.0, 1.0) * float(num_thresholds - 1)) - 1
    if with_epsilon:
        bucket = bucket.clamp(min=0)
    bucket = bucket.long()
    # Out-of-range buckets (a prediction of 0 without epsilon thresholds) go to a spare slot.
    bucket = torch.where((bucket >= 0) & (bucket < num_thresholds), bucket, num_thresholds)
    labels = 1 if y_pred.dim() == 1 else y_pred.shape[-1]
    if y_pred.dim() > 1:
        bucket = bucket * labels + torch.arange(labels, device=bucket.device)
    size = (num_thresholds + 1) * labels
    counts = []
    for values in (positive, negative):
        summed = torch.zeros(size, dtype=values.dtype, device=values.device)
        summed.index_add_(0, bucket.reshape(-1), values.reshape(-1))
        summed = summed.reshape(num_thresholds + 1, labels)[:num_thresholds]
        above = summed.flip(0).cumsum(0).flip(0)
        counts.append(above.reshape(num_thresholds) if y_pred.dim() == 1 else above)
    return counts[0], counts[1]


def update_confusion_matrix(
    states: dict[str, torch.Tensor],
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    thresholds: torch.Tensor,
    *,
    evenly: bool = False,
    with_epsilon: bool = False,
    top_k: int | None = None,
    class_id: int | None = None,
    sample_weight: torch.Tensor | None = None,
    multi_label: bool = False,
    label_weights: torch.Tensor | None = None,
) -> None:
    """Adds a batch's weighted true/false positive/negative counts to `states`, in place.

    Args:
        states: the counts to update, by key `'tp'`, `'fp'`, `'tn'`, `'fn'`: shape `(T,)`, or
            `(T, C)` with `multi_label`.
        y_true: labels (non-zero is positive), shaped like `y_pred`.
        y_pred: predictions; positive where strictly above a threshold.
        thresholds: the `T` thresholds, a 1-D tensor on the states' device.
        evenly: whether `thresholds` are evenly spaced over [0, 1] (maybe with epsilon ends):
            Keras then counts by buckets, which this reproduces.
        with_epsilon: whether the end thresholds lie just outside [0, 1] (AUC's): a
            prediction of exactly 0 then counts above the first one.
        top_k: only the `k` highest predictions of each row may be positive.
        class_id: only this column of the last axis counts.
        sample_weight: weights broadcastable to `y_true` (per sample or per entry).
        multi_label: keep one count per label (the last axis) instead of flattening.
        label_weights: per-label weights (without `multi_label`).

    Raises:
        ValueError: for `class_id` with 1-D predictions or out of range.
    """
    dtype = next(iter(states.values())).dtype
    y_true, y_pred = y_true.to(dtype), y_pred.to(dtype)
    y_pred, y_true = squeeze_or_expand_to_same_rank(y_pred, y_true)
    if sample_weight is not None:
        sample_weight = sample_weight.to(dtype).unsqueeze(-1)
        _, sample_weight = squeeze_or_expand_to_same_rank(y_true, sample_weight, False)
    if top_k is not None:
        y_pred = _filter_top_k(y_pred, top_k)
    if class_id is not None:
        if y_pred.dim() == 1:
            raise ValueError(
                "When class_id is provided, y_pred must be a 2D array with shape "
                f"(num_samples, num_classes), found shape: {tuple(y_pred.shape)}"
            )
        if not -y_pred.shape[-1] <= class_id < y_pred.shape[-1]:
            raise ValueError(
                f"`class_id` must be below the number of classes ({y_pred.shape[-1]}); "
                f"got class_id={class_id}."
            )
        y_true, y_pred = y_true[..., class_id, None], y_pred[..., class_id, None]
    weight = torch.ones((), dtype=dtype, device=y_pred.device)
    if sample_weight is not None:
        weight = torch.broadcast_to(sample_weight, y_pred.shape)
    if label_weights is not None and not multi_label:
        weight = weight * torch.broadcast_to(label_weights.to(dtype), y_pred.shape)
    weight = torch.broadcast_to(weight, y_pred.shape)
    label = (y_true != 0).to(dtype)
    if not multi_label:
        label, y_pred, weight = label.reshape(-1), y_pred.reshape(-1), weight.reshape(-1)
    positive, negative = label * weight, (1.0 - label) * weight
    if evenly:
        tp, fp = _bucket_counts(positive, negative, y_pred, len(thresholds), with_epsilon)
    else:
        # (T, N[, C]) comparisons; counts are weighted sums over the samples axis.
        shape = (-1,) + (1,) * y_pred.dim()
        above = (y_pred.unsqueeze(0) > thresholds.reshape(shape)).to(dtype)
        tp, fp = (above * positive).sum(1), (above * negative).sum(1)
    if "tp" in states:
        states["tp"].add_(tp)
    if "fp" in states:
        states["fp"].add_(fp)
    if "tn" in states:
        states["tn"].add_(negative.sum(0) - fp)
    if "fn" in states:
        states["fn"].add_(positive.sum(0) - tp)


def divide_no_nan(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """`numerator / denominator`, and 0 where the denominator is 0 (Keras's `divide_no_nan`)."""
    safe = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return torch.where(denominator == 0, torch.zeros_like(numerator), numerator / safe)


# --------------------------------------------------------------------------- counts


class _ConfusionCount(Metric):
    """One count of the confusion matrix at each of `thresholds` (state `accumulator`)."""

    _key = "tp"

    # State (`add_state`) and buffer: nn.Module stores them outside `__dict__`, so their
    # types are declared here.
    accumulator: torch.Tensor
    _threshold_values: torch.Tensor

    def __init__(
        self,
        thresholds: float | list[float] | None = None,
        name: str | None = None,
        dtype: Any = None,
    ):
        parsed = _threshold_list(type(self).__name__, thresholds, 0.5)
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        #: The thresholds as a list (Keras's attribute).
        self.thresholds = parsed
        self._evenly = evenly_distributed(self.thresholds)
        self.register_buffer("_threshold_values", torch.tensor(self.thresholds), persistent=False)
        self.add_state("accumulator", torch.zeros(len(self.thresholds)), dist_reduce_fx="sum")

    def update(
        self, preds: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> None:
        update_confusion_matrix(
            {self._key: self.accumulator},
            target,
            preds,
            self._threshold_values,
            evenly=self._evenly,
            sample_weight=sample_weight,
        )

    def compute(self) -> torch.Tensor:
        return self.accumulator[0] if len(self.thresholds) == 1 else self.accumulator

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype_name, "thresholds": self.init_thresholds}


class TruePositives(_ConfusionCount):
    """Weighted count of true positives (label non-zero, prediction above the threshold).

    Args:
        thresholds: one threshold or a list (the result then has one count per threshold);
            0.5 when None. Values in [0, 1].
        name: the name shown in logs.
        dtype: the dtype of the state.
    """

    higher_is_better = True
    _key = "tp"


class FalsePositives(_ConfusionCount):
    """Weighted count of false positives (label zero, prediction above the threshold).

    Args:
        thresholds: one threshold or a list (the result then has one count per threshold);
            0.5 when None. Values in [0, 1].
        name: the name shown in logs.
        dtype: the dtype of the state.
    """

    higher_is_better = False
    _key = "fp"


class TrueNegatives(_ConfusionCount):
    """Weighted count of true negatives (label zero, prediction at or below the threshold).

    Args:
        thresholds: one threshold or a list (the result then has one count per threshold);
            0.5 when None. Values in [0, 1].
        name: the name shown in logs.
        dtype: the dtype of the state.
    """

    higher_is_better = True
    _key = "tn"


class FalseNegatives(_ConfusionCount):
    """Weighted count of false negatives (label non-zero, prediction not above the threshold).

    Args:
        thresholds: one threshold or a list (the result then has one count per threshold);
            0.5 when None. Values in [0, 1].
        name: the name shown in logs.
        dtype: the dtype of the state.
    """

    higher_is_better = False
    _key = "fn"


# --------------------------------------------------------------------------- precision, recall


class _PrecisionRecall(Metric):
    """Shared by `Precision` and `Recall`: tp and one other count per threshold."""

    higher_is_better = True
    _other = "false_positives"

    # States (`add_state`; the second is `_other`) and buffer: nn.Module stores them outside
    # `__dict__`, so their types are declared here.
    true_positives: torch.Tensor
    _threshold_values: torch.Tensor

    def __init__(
        self,
        thresholds: float | list[float] | None = None,
        top_k: int | None = None,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ):
        if top_k is not None and (
            isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1
        ):
            raise ValueError(f"`top_k` must be a positive integer or None; got {top_k!r}.")
        if class_id is not None and (isinstance(class_id, bool) or not isinstance(class_id, int)):
            raise TypeError(f"`class_id` must be an integer or None; got {class_id!r}.")
        default = 0.5 if top_k is None else NEG_INF
        parsed = _threshold_list(type(self).__name__, thresholds, default)
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds, self.top_k, self.class_id = thresholds, top_k, class_id
        #: The thresholds as a list (Keras's attribute).
        self.thresholds = parsed
        self._evenly = evenly_distributed(self.thresholds)
        self.register_buffer("_threshold_values", torch.tensor(self.thresholds), persistent=False)
        for state in ("true_positives", self._other):
            self.add_state(state, torch.zeros(len(self.thresholds)), dist_reduce_fx="sum")

    def update(
        self, preds: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> None:
        other = "fp" if self._other == "false_positives" else "fn"
        update_confusion_matrix(
            {"tp": self.true_positives, other: getattr(self, self._other)},
            target,
            preds,
            self._threshold_values,
            evenly=self._evenly,
            top_k=self.top_k,
            class_id=self.class_id,
            sample_weight=sample_weight,
        )

    def compute(self) -> torch.Tensor:
        tp = self.true_positives
        value = divide_no_nan(tp, tp + getattr(self, self._other))
        return value[0] if len(self.thresholds) == 1 else value

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype_name,
            "thresholds": self.init_thresholds,
            "top_k": self.top_k,
            "class_id": self.class_id,
        }


class Precision(_PrecisionRecall):
    """Precision `tp / (tp + fp)`, over every entry (or one class, or the top k).

    Args:
        thresholds: one threshold or a list (one value per threshold); 0.5 when None (with
            `top_k`, every top-k prediction is positive). Values in [0, 1].
        top_k: only the `k` highest predictions of each row count as positive.
        class_id: only this class (column of the last axis) counts.
        name: the name shown in logs.
        dtype: the dtype of the states.

    Example:
        >>> m = kfit.metrics.Precision()
        >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
        >>> round(float(m.result()), 4)
        0.6667
    """

    _other = "false_positives"


class Recall(_PrecisionRecall):
    """Recall `tp / (tp + fn)`, over every entry (or one class, or the top k).

    Args:
        thresholds: one threshold or a list (one value per threshold); 0.5 when None (with
            `top_k`, every top-k prediction is positive). Values in [0, 1].
        top_k: only the `k` highest predictions of each row count as positive.
        class_id: only this class (column of the last axis) counts.
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    _other = "false_negatives"
