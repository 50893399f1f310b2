"""Accuracy metrics, as Keras's `accuracy_metrics`: per-sample functions and their means."""

from __future__ import annotations

from typing import Any

import torch

from kfit.losses import match_shapes, sparse_labels
from kfit.metrics.base import squeeze_or_expand_to_same_rank
from kfit.metrics.reduction import BATCH_SUMS, MeanMetricWrapper, samplewise_total

__all__ = [
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "top_k_categorical_accuracy",
]


# --------------------------------------------------------------------------- functions


def accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """1.0 where `y_true == y_pred`, element by element (Keras's `accuracy`)."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return (y_true == y_pred).float()


def binary_accuracy(
    y_true: torch.Tensor, y_pred: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    """1.0 where `y_pred > threshold` equals the 0/1 target, element by element."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return ((y_pred > threshold).to(y_true.dtype) == y_true).float()


def categorical_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """1.0 where the arg-max of the one-hot target equals the arg-max of the prediction."""
    y_true, y_pred = match_shapes(y_true, y_pred, "categorical_accuracy")
    return (y_true.argmax(-1) == y_pred.argmax(-1)).to(y_pred.dtype)


def sparse_categorical_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """1.0 where the integer target equals the arg-max of the prediction."""
    labels = sparse_labels(y_true, y_pred, "sparse_categorical_accuracy")
    return (labels == y_pred.argmax(-1)).to(y_pred.dtype)


def _in_top_k(labels: torch.Tensor, y_pred: torch.Tensor, k: int, fn_name: str) -> torch.Tensor:
    # Keras's `in_top_k`: a target scoring as high as the k-th highest score is in (ties count).
    num_classes = y_pred.shape[-1]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num_classes:
        raise ValueError(
            f"`{fn_name}` needs an integer k in [1, the number of classes]; got k={k!r} for "
            f"{num_classes} classes."
        )
    kth = y_pred.topk(k, dim=-1).values[..., -1]
    target = y_pred.gather(-1, labels.clamp(0, num_classes - 1).unsqueeze(-1)).squeeze(-1)
    valid = (labels >= 0) & (labels < num_classes)
    return ((target >= kth) & valid).to(y_pred.dtype)


def top_k_categorical_accuracy(
    y_true: torch.Tensor, y_pred: torch.Tensor, k: int = 5
) -> torch.Tensor:
    """1.0 where the one-hot target's class is among the `k` highest predictions."""
    y_true, y_pred = match_shapes(y_true, y_pred, "top_k_categorical_accuracy")
    return _in_top_k(y_true.argmax(-1), y_pred, k, "top_k_categorical_accuracy")


def sparse_top_k_categorical_accuracy(
    y_true: torch.Tensor, y_pred: torch.Tensor, k: int = 5, from_sorted_ids: bool = False
) -> torch.Tensor:
    """1.0 where the integer target is among the `k` highest predictions.

    With `from_sorted_ids=True`, `y_pred` already holds class ids sorted by score.
    """
    labels = sparse_labels(y_true, y_pred, "sparse_top_k_categorical_accuracy")
    if from_sorted_ids:
        return (y_pred[..., :k] == labels.unsqueeze(-1).to(y_pred.dtype)).any(-1).float()
    return _in_top_k(labels, y_pred, k, "sparse_top_k_categorical_accuracy")


# --------------------------------------------------------------------------- batch sums


def _hit_count(hits: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """The number of hits, in the floating dtype the per-sample path would sum them in.

    Counted in one kernel, exactly (as a float32 or wider sum: float64 predictions give a
    float64 count, so its per-sample mean is not rounded to float32).
    """
    return hits.sum(dtype=torch.promote_types(y_pred.dtype, torch.float32))


def _sparse_accuracy_batch_sum(
    y_true: torch.Tensor, y_pred: torch.Tensor
) -> tuple[torch.Tensor, int]:
    labels = sparse_labels(y_true, y_pred, "sparse_categorical_accuracy")
    return samplewise_total(_hit_count(labels == y_pred.argmax(-1), y_pred), labels.shape)


def _categorical_accuracy_batch_sum(
    y_true: torch.Tensor, y_pred: torch.Tensor
) -> tuple[torch.Tensor, int]:
    y_true, y_pred = match_shapes(y_true, y_pred, "categorical_accuracy")
    hits = y_true.argmax(-1) == y_pred.argmax(-1)
    return samplewise_total(_hit_count(hits, y_pred), y_pred.shape[:-1])


BATCH_SUMS[sparse_categorical_accuracy] = _sparse_accuracy_batch_sum
BATCH_SUMS[categorical_accuracy] = _categorical_accuracy_batch_sum


# --------------------------------------------------------------------------- classes


class Accuracy(MeanMetricWrapper):
    """How often predictions equal labels, element by element.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    higher_is_better = True

    def __init__(self, name: str = "accuracy", dtype: Any = None):
        super().__init__(accuracy, name=name, dtype=dtype)


class BinaryAccuracy(MeanMetricWrapper):
    """How often `y_pred > threshold` matches the binary label.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
        threshold: the decision threshold on predictions.
    """

    higher_is_better = True

    def __init__(self, name: str = "binary_accuracy", dtype: Any = None, threshold: float = 0.5):
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=threshold)
        self.threshold = threshold


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of the prediction matches that of the one-hot label.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    higher_is_better = True

    def __init__(self, name: str = "categorical_accuracy", dtype: Any = None):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of the prediction matches the integer label.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    higher_is_better = True

    def __init__(self, name: str = "sparse_categorical_accuracy", dtype: Any = None):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot label's class is among the `k` highest predictions.

    Args:
        k: how many top predictions count.
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    higher_is_better = True

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype: Any = None):
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = k


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer label is among the `k` highest predictions.

    Args:
        k: how many top predictions count.
        name: the name shown in logs.
        dtype: the dtype of the states.
        from_sorted_ids: whether predictions are class ids sorted by score.
    """

    higher_is_better = True

    def __init__(
        self,
        k: int = 5,
        name: str = "sparse_top_k_categorical_accuracy",
        dtype: Any = None,
        from_sorted_ids: bool = False,
    ):
        super().__init__(
            sparse_top_k_categorical_accuracy,
            name=name,
            dtype=dtype,
            k=k,
            from_sorted_ids=from_sorted_ids,
        )
        self.k, self.from_sorted_ids = k, from_sorted_ids
