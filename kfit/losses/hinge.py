"""Hinge losses for -1/1 (or 0/1) targets, and the categorical hinge for one-hot targets."""

from __future__ import annotations

import torch

from kfit.losses.loss import LossFunctionWrapper, Reduction, match_shapes

__all__ = [
    "CategoricalHinge",
    "Hinge",
    "SquaredHinge",
    "categorical_hinge",
    "hinge",
    "squared_hinge",
]

_DType = str | torch.dtype | None


def _hinge_labels(y_true: torch.Tensor) -> torch.Tensor:
    # Keras turns 0/1 labels into -1/1; decided on the device, with no host read.
    is_binary = ((y_true == 0) | (y_true == 1)).all()
    return torch.where(is_binary, 2.0 * y_true - 1.0, y_true)


def hinge(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Mean of `max(1 - y_true * y_pred, 0)`; 0/1 labels are taken as -1/1."""
    y_true, y_pred = match_shapes(y_true, y_pred, "hinge")
    return torch.clamp(1.0 - _hinge_labels(y_true) * y_pred, min=0.0).mean(-1)


def squared_hinge(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Mean of `max(1 - y_true * y_pred, 0)**2`; 0/1 labels are taken as -1/1."""
    y_true, y_pred = match_shapes(y_true, y_pred, "squared_hinge")
    return torch.square(torch.clamp(1.0 - _hinge_labels(y_true) * y_pred, min=0.0)).mean(-1)


def categorical_hinge(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """`max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)` for one-hot targets."""
    y_true, y_pred = match_shapes(y_true, y_pred, "categorical_hinge")
    positive = (y_true * y_pred).sum(-1)
    negative = ((1.0 - y_true) * y_pred).amax(-1)
    return torch.clamp(negative - positive + 1.0, min=0.0)


class Hinge(LossFunctionWrapper):
    """Mean of `max(1 - y_true * y_pred, 0)`; 0/1 targets are taken as -1/1.

    Args:
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "hinge",
        dtype: _DType = None,
    ):
        super().__init__(hinge, reduction=reduction, name=name, dtype=dtype)


class SquaredHinge(LossFunctionWrapper):
    """Mean of `max(1 - y_true * y_pred, 0)**2`; 0/1 targets are taken as -1/1.

    Args:
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "squared_hinge",
        dtype: _DType = None,
    ):
        super().__init__(squared_hinge, reduction=reduction, name=name, dtype=dtype)


class CategoricalHinge(LossFunctionWrapper):
    """`max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)` for one-hot targets.

    Args:
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "categorical_hinge",
        dtype: _DType = None,
    ):
        super().__init__(categorical_hinge, reduction=reduction, name=name, dtype=dtype)
