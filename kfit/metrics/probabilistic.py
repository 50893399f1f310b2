"""Probabilistic metrics, as Keras's `probabilistic_metrics`: cross-entropies, KL, Poisson."""

from __future__ import annotations

from typing import Any

import torch

from kfit.losses import (
    binary_crossentropy,
    categorical_crossentropy,
    kl_divergence,
    poisson,
    sparse_categorical_crossentropy,
    sparse_labels,
)
from kfit.metrics.base import squeeze_or_expand_to_same_rank
from kfit.metrics.reduction import MeanMetricWrapper

__all__ = [
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "KLDivergence",
    "Poisson",
    "SparseCategoricalCrossentropy",
]


class KLDivergence(MeanMetricWrapper):
    """Mean Kullback-Leibler divergence `sum(y_true * log(y_true / y_pred))`.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    def __init__(self, name: str = "kl_divergence", dtype: Any = None):
        super().__init__(kl_divergence, name=name, dtype=dtype)


class Poisson(MeanMetricWrapper):
    """Mean Poisson deviance `y_pred - y_true * log(y_pred)`.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    def __init__(self, name: str = "poisson", dtype: Any = None):
        super().__init__(poisson, name=name, dtype=dtype)


class BinaryCrossentropy(MeanMetricWrapper):
    """Mean binary cross-entropy between 0/1 labels and predicted probabilities.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
        from_logits: whether predictions are logits.
        label_smoothing: in [0, 1]; labels are squeezed towards 0.5 by this amount.
    """

    def __init__(
        self,
        name: str = "binary_crossentropy",
        dtype: Any = None,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
    ):
        super().__init__(
            binary_crossentropy,
            name=name,
            dtype=dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
        )
        self.from_logits, self.label_smoothing = from_logits, label_smoothing


class CategoricalCrossentropy(MeanMetricWrapper):
    """Mean cross-entropy between one-hot labels and predicted class distributions.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
        from_logits: whether predictions are logits.
        label_smoothing: in [0, 1]; one-hot labels are smoothed by this amount.
        axis: the class axis.
    """

    def __init__(
        self,
        name: str = "categorical_crossentropy",
        dtype: Any = None,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
    ):
        options: dict[str, Any] = {"from_logits": from_logits, "label_smoothing": label_smoothing}
        if axis != -1:  # only passed when set: the loss function decides what it supports
            options["axis"] = axis
        super().__init__(categorical_crossentropy, name=name, dtype=dtype, **options)
        self.from_logits, self.label_smoothing, self.axis = from_logits, label_smoothing, axis

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """Mean cross-entropy between integer labels and predicted class distributions.

    Entries whose label is `ignore_class` contribute 0. As in Keras, with sample weights they
    are also left out of the (weighted) count, so the value is the mean over the other
    entries; without sample weights they still count (Keras applies the ignore mask only to
    weights).

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
        from_logits: whether predictions are logits.
        ignore_class: a label left out of the metric (e.g. padding).
        axis: the class axis.
    """

    def __init__(
        self,
        name: str = "sparse_categorical_crossentropy",
        dtype: Any = None,
        from_logits: bool = False,
        ignore_class: int | None = None,
        axis: int = -1,
    ):
        options: dict[str, Any] = {"from_logits": from_logits, "ignore_class": ignore_class}
        if axis != -1:  # only passed when set: the loss function decides what it supports
            options["axis"] = axis
        super().__init__(sparse_categorical_crossentropy, name=name, dtype=dtype, **options)
        self.from_logits, self.ignore_class, self.axis = from_logits, ignore_class, axis

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}

    def update(
        self, preds: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> None:
        if self.ignore_class is None or sample_weight is None:
            super().update(preds, target, sample_weight)
            return
        # With sample weights, Keras masks the ignored entries: weight * mask.
        labels = sparse_labels(target, preds.movedim(self.axis, -1), self.name)
        mask = (labels != self.ignore_class).float()
        if sample_weight is not None:
            mask, weight = squeeze_or_expand_to_same_rank(mask, sample_weight.to(mask.dtype))
            mask = mask * weight
        super().update(preds, target, mask)
