"""Overlap losses for segmentation masks: Dice and Tversky."""

from __future__ import annotations

from typing import Any

import torch

from kfit.losses.loss import EPSILON, LossFunctionWrapper, Reduction, match_shapes

__all__ = ["Dice", "Tversky", "dice", "tversky"]

_DType = str | torch.dtype | None


def _dims(y_pred: torch.Tensor, axis: Any) -> Any:
    return tuple(range(y_pred.dim())) if axis is None else axis


def dice(y_true: torch.Tensor, y_pred: torch.Tensor, axis: Any = None) -> torch.Tensor:
    """`1 - 2|A∩B| / (|A| + |B|)`, over `axis` (the whole batch when None).

    Args:
        y_true: the target mask.
        y_pred: the predicted mask (probabilities).
        axis: the axes summed over (an int or a tuple); None sums over all of them, giving
            one value for the batch.

    Returns:
        The Dice loss: one value per entry left after summing over `axis`.
    """
    y_true, y_pred = match_shapes(y_true, y_pred, "dice")
    dims = _dims(y_pred, axis)
    intersection = (y_true * y_pred).sum(dims)
    return 1.0 - 2.0 * intersection / (y_true.sum(dims) + y_pred.sum(dims) + EPSILON)


def tversky(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    alpha: float = 0.5,
    beta: float = 0.5,
    axis: Any = None,
) -> torch.Tensor:
    """Tversky loss: Dice with false positives weighted `alpha` and false negatives `beta`.

    Args:
        y_true: the target mask.
        y_pred: the predicted mask (probabilities).
        alpha: the weight of false positives.
        beta: the weight of false negatives.
        axis: the axes summed over; None sums over all of them.

    Returns:
        The Tversky loss: one value per entry left after summing over `axis`.
    """
    y_true, y_pred = match_shapes(y_true, y_pred, "tversky")
    dims = _dims(y_pred, axis)
    intersection = (y_true * y_pred).sum(dims)
    false_pos = ((1.0 - y_pred) * y_true).sum(dims)
    false_neg = (y_pred * (1.0 - y_true)).sum(dims)
    return 1.0 - intersection / (intersection + alpha * false_pos + beta * false_neg + EPSILON)


class Dice(LossFunctionWrapper):
    """Dice loss over `axis` (the whole batch when None).

    Args:
        reduction: how per-sample values are combined.
        name: the name used in logs.
        axis: the axes summed over; None sums over all of them.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "dice",
        axis: Any = None,
        dtype: _DType = None,
    ):
        super().__init__(dice, reduction=reduction, name=name, dtype=dtype, axis=axis)


class Tversky(LossFunctionWrapper):
    """Tversky loss with false-positive weight `alpha` and false-negative weight `beta`.

    Args:
        alpha: the weight of false positives.
        beta: the weight of false negatives.
        reduction: how per-sample values are combined.
        name: the name used in logs.
        axis: the axes summed over; None sums over all of them.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.5,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "tversky",
        axis: Any = None,
        dtype: _DType = None,
    ):
        super().__init__(
            tversky, reduction=reduction, name=name, dtype=dtype, alpha=alpha, beta=beta, axis=axis
        )
