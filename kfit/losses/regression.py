"""Regression losses: squared, absolute, percentage, logarithmic, cosine, Huber, log-cosh."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kfit.losses.loss import EPSILON, LossFunctionWrapper, Reduction, l2_normalize, match_shapes

__all__ = [
    "CosineDistance",
    "CosineSimilarity",
    "Huber",
    "LogCosh",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "cosine_distance",
    "cosine_similarity",
    "huber",
    "log_cosh",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_logarithmic_error",
]

_DType = str | torch.dtype | None


def mean_squared_error(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Mean of `(y_true - y_pred)**2` over the last axis."""
    y_true, y_pred = match_shapes(y_true, y_pred, "mean_squared_error")
    return torch.square(y_pred - y_true).mean(-1)


def mean_absolute_error(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Mean of `|y_true - y_pred|` over the last axis."""
    y_true, y_pred = match_shapes(y_true, y_pred, "mean_absolute_error")
    return torch.abs(y_pred - y_true).mean(-1)


def mean_absolute_percentage_error(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """`100 * mean(|y_true - y_pred| / max(|y_true|, eps))` over the last axis."""
    y_true, y_pred = match_shapes(y_true, y_pred, "mean_absolute_percentage_error")
    diff = torch.abs(y_true - y_pred) / torch.clamp(torch.abs(y_true), min=EPSILON)
    return 100.0 * diff.mean(-1)


def mean_squared_logarithmic_error(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Mean of `(log(y_pred + 1) - log(y_true + 1))**2`, inputs floored at eps."""
    y_true, y_pred = match_shapes(y_true, y_pred, "mean_squared_logarithmic_error")
    first = torch.log(torch.clamp(y_pred, min=EPSILON) + 1.0)
    second = torch.log(torch.clamp(y_true, min=EPSILON) + 1.0)
    return torch.square(first - second).mean(-1)


def cosine_similarity(y_true: torch.Tensor, y_pred: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Keras's cosine-similarity *loss*: `-cos(y_true, y_pred)`, in [-1, 1], minimised.

    The metric `'cosine_similarity'` (`kfit.metrics.CosineSimilarity`) reports `+cos`.
    """
    y_true, y_pred = match_shapes(y_true, y_pred, "cosine_similarity")
    return -(l2_normalize(y_true, axis) * l2_normalize(y_pred, axis)).sum(axis)


def cosine_distance(y_true: torch.Tensor, y_pred: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """`1 - cos(y_true, y_pred)`, in [0, 2]: 0 for the same direction (kfit's own; not Keras)."""
    y_true, y_pred = match_shapes(y_true, y_pred, "cosine_distance")
    return 1.0 - (l2_normalize(y_true, axis) * l2_normalize(y_pred, axis)).sum(axis)


def huber(y_true: torch.Tensor, y_pred: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Quadratic for `|error| <= delta`, linear beyond, averaged over the last axis."""
    y_true, y_pred = match_shapes(y_true, y_pred, "huber")
    return F.huber_loss(y_pred, y_true, reduction="none", delta=delta).mean(-1)


def log_cosh(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Mean of `log(cosh(y_pred - y_true))` over the last axis, computed stably."""
    y_true, y_pred = match_shapes(y_true, y_pred, "log_cosh")
    error = y_pred - y_true
    return (error + F.softplus(-2.0 * error) - math.log(2.0)).mean(-1)


class MeanSquaredError(LossFunctionWrapper):
    """Mean of squares of errors: `mean((y_true - y_pred)**2)` over the last axis.

    Args:
        reduction: how per-sample values are combined (`'sum_over_batch_size'`, `'sum'`,
            `'mean'`, `'mean_with_sample_weight'`, `'none'` or None).
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.

    Example:
        >>> float(kfit.losses.MeanSquaredError()(torch.zeros(2, 1), torch.ones(2, 1)))
        1.0
    """

    def __init__(
        self,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "mean_squared_error",
        dtype: _DType = None,
    ):
        super().__init__(mean_squared_error, reduction=reduction, name=name, dtype=dtype)


class MeanAbsoluteError(LossFunctionWrapper):
    """Mean of absolute errors: `mean(|y_true - y_pred|)` over the last axis.

    Args:
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "mean_absolute_error",
        dtype: _DType = None,
    ):
        super().__init__(mean_absolute_error, reduction=reduction, name=name, dtype=dtype)


class MeanAbsolutePercentageError(LossFunctionWrapper):
    """`100 * mean(|y_true - y_pred| / max(|y_true|, eps))` over the last axis.

    Args:
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "mean_absolute_percentage_error",
        dtype: _DType = None,
    ):
        super().__init__(
            mean_absolute_percentage_error, reduction=reduction, name=name, dtype=dtype
        )


class MeanSquaredLogarithmicError(LossFunctionWrapper):
    """Mean of `(log(y_pred + 1) - log(y_true + 1))**2` over the last axis.

    Args:
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "mean_squared_logarithmic_error",
        dtype: _DType = None,
    ):
        super().__init__(
            mean_squared_logarithmic_error, reduction=reduction, name=name, dtype=dtype
        )


class CosineSimilarity(LossFunctionWrapper):
    """`-cos(y_true, y_pred)` along `axis` (Keras's loss form, minimised).

    Args:
        axis: the axis along which the cosine is taken.
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        axis: int = -1,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "cosine_similarity",
        dtype: _DType = None,
    ):
        super().__init__(cosine_similarity, reduction=reduction, name=name, dtype=dtype, axis=axis)


class CosineDistance(LossFunctionWrapper):
    """`1 - cos(y_true, y_pred)` along `axis` (kfit's own; not in Keras).

    Args:
        axis: the axis along which the cosine is taken.
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        axis: int = -1,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "cosine_distance",
        dtype: _DType = None,
    ):
        super().__init__(cosine_distance, reduction=reduction, name=name, dtype=dtype, axis=axis)


class Huber(LossFunctionWrapper):
    """Huber loss with threshold `delta`; named `huber_loss` in logs as in Keras.

    Args:
        delta: where the loss turns from quadratic to linear.
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        delta: float = 1.0,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "huber_loss",
        dtype: _DType = None,
    ):
        super().__init__(huber, reduction=reduction, name=name, dtype=dtype, delta=delta)


class LogCosh(LossFunctionWrapper):
    """Mean of `log(cosh(y_pred - y_true))` over the last axis.

    Args:
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "log_cosh",
        dtype: _DType = None,
    ):
        super().__init__(log_cosh, reduction=reduction, name=name, dtype=dtype)
