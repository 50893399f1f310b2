"""Regression metrics, as Keras's `regression_metrics`: error means, cosine, log-cosh and R²."""

from __future__ import annotations

import warnings
from typing import Any, Literal

import torch

from kfit.losses import (
    cosine_distance,
    log_cosh,
    match_shapes,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
)
from kfit.losses.batch_means import l1_sum, mse_sum
from kfit.losses.loss import l2_normalize
from kfit.metrics.base import Metric, squeeze_or_expand_to_same_rank
from kfit.metrics.reduction import BATCH_SUMS, MeanMetricWrapper, samplewise_total

__all__ = [
    "CosineDistance",
    "CosineSimilarity",
    "LogCoshError",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "R2Score",
    "RootMeanSquaredError",
]


def _positive_cosine(y_true: torch.Tensor, y_pred: torch.Tensor, axis: int = -1) -> torch.Tensor:
    y_true, y_pred = match_shapes(y_true, y_pred, "cosine_similarity")
    return (l2_normalize(y_true, axis) * l2_normalize(y_pred, axis)).sum(axis)


def _mae_batch_sum(y_true: torch.Tensor, y_pred: torch.Tensor):
    y_true, y_pred = match_shapes(y_true, y_pred, "mean_absolute_error")
    return samplewise_total(l1_sum(y_pred, y_true), y_pred.shape)  # one kernel


def _mse_batch_sum(y_true: torch.Tensor, y_pred: torch.Tensor):
    y_true, y_pred = match_shapes(y_true, y_pred, "mean_squared_error")
    if not y_pred.is_floating_point():  # the ATen op has no integer kernel
        return samplewise_total((y_pred - y_true).square().sum(), y_pred.shape)
    return samplewise_total(mse_sum(y_pred, y_true), y_pred.shape)


BATCH_SUMS[mean_absolute_error] = _mae_batch_sum
BATCH_SUMS[mean_squared_error] = _mse_batch_sum


class MeanSquaredError(MeanMetricWrapper):
    """Mean of `(y_true - y_pred)**2` over every sample seen.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    def __init__(self, name: str = "mean_squared_error", dtype: Any = None):
        super().__init__(mean_squared_error, name=name, dtype=dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    """Mean of `|y_true - y_pred|` over every sample seen.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    def __init__(self, name: str = "mean_absolute_error", dtype: Any = None):
        super().__init__(mean_absolute_error, name=name, dtype=dtype)


class MeanAbsolutePercentageError(MeanMetricWrapper):
    """Mean of `100 * |y_true - y_pred| / |y_true|` over every sample seen.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    def __init__(self, name: str = "mean_absolute_percentage_error", dtype: Any = None):
        super().__init__(mean_absolute_percentage_error, name=name, dtype=dtype)


class MeanSquaredLogarithmicError(MeanMetricWrapper):
    """Mean of `(log1p(y_true) - log1p(y_pred))**2` over every sample seen.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    def __init__(self, name: str = "mean_squared_logarithmic_error", dtype: Any = None):
        super().__init__(mean_squared_logarithmic_error, name=name, dtype=dtype)


class RootMeanSquaredError(MeanMetricWrapper):
    """`sqrt` of the epoch's mean squared error (not a mean of per-batch roots).

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    def __init__(self, name: str = "root_mean_squared_error", dtype: Any = None):
        super().__init__(mean_squared_error, name=name, dtype=dtype)

    def compute(self) -> torch.Tensor:
        return torch.sqrt(super().compute())


class CosineSimilarity(MeanMetricWrapper):
    """Mean cosine similarity between labels and predictions along `axis`.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
        axis: the axis along which the cosine is taken.
    """

    higher_is_better = True

    def __init__(self, name: str = "cosine_similarity", dtype: Any = None, axis: int = -1):
        super().__init__(_positive_cosine, name=name, dtype=dtype, axis=axis)
        self.axis = axis


class CosineDistance(MeanMetricWrapper):
    """Mean of `1 - cosine similarity` along `axis` (a kfit addition).

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
        axis: the axis along which the cosine is taken.
    """

    def __init__(self, name: str = "cosine_distance", dtype: Any = None, axis: int = -1):
        super().__init__(cosine_distance, name=name, dtype=dtype, axis=axis)
        self.axis = axis


class LogCoshError(MeanMetricWrapper):
    """Mean of `log(cosh(y_pred - y_true))` over every sample seen.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    def __init__(self, name: str = "logcosh", dtype: Any = None):
        super().__init__(log_cosh, name=name, dtype=dtype)


_AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")


class R2Score(Metric):
    """Coefficient of determination over the epoch, as Keras's `R2Score`.

    Args:
        class_aggregation: how the per-output scores combine: `'uniform_average'` (their
            mean), `'variance_weighted_average'` (weighted by each output's variance) or None
            (one score per output).
        num_regressors: for the adjusted R², the number of regressors `p` (0: not adjusted).
            With `p >= n - 1` (`n` the number of target elements seen), the plain R² is
            returned with a warning, as Keras does.
        name: the name shown in logs.
        dtype: the dtype of the states.

    Raises:
        ValueError: for an unknown `class_aggregation` or a negative `num_regressors`.
    """

    higher_is_better = True
    sum: torch.Tensor  # the states, typed (nn.Module's attributes are not)
    squared_sum: torch.Tensor
    total_mse: torch.Tensor
    count: torch.Tensor
    num_samples: torch.Tensor
    # States sized by the first batch: torchmetrics' `forward` must update the epoch states
    # first (its "full state" path) rather than add a batch's states to unsized ones.
    full_state_update = True

    def __init__(
        self,
        class_aggregation: Literal["uniform_average", "variance_weighted_average"]
        | None = "uniform_average",
        num_regressors: int = 0,
        name: str = "r2_score",
        dtype: Any = None,
    ):
        if class_aggregation not in _AGGREGATIONS:
            raise ValueError(
                f"`class_aggregation` must be one of {list(_AGGREGATIONS)}; "
                f"got {class_aggregation!r}."
            )
        if isinstance(num_regressors, bool) or not isinstance(num_regressors, int):
            raise TypeError(f"`num_regressors` must be an integer; got {num_regressors!r}.")
        if num_regressors < 0:
            raise ValueError(f"`num_regressors` must be >= 0; got {num_regressors}.")
        super().__init__(name=name, dtype=dtype)
        self.class_aggregation, self.num_regressors = class_aggregation, num_regressors
        # One accumulator per output column, sized on the first batch.
        for state in ("sum", "squared_sum", "total_mse", "count"):
            self.add_state(state, torch.zeros(0), dist_reduce_fx="sum")
        self.add_state("num_samples", torch.zeros(()), dist_reduce_fx="sum")

    def update(
        self, preds: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> None:
        target, preds = squeeze_or_expand_to_same_rank(target.to(self.num_samples.dtype), preds)
        preds = preds.to(target.dtype)
        if target.dim() == 1:  # kfit: an (N,) pair is one output
            target, preds = target.unsqueeze(-1), preds.unsqueeze(-1)
        if target.dim() != 2 or preds.shape != target.shape:
            raise ValueError(
                f"`{self.name}` needs y_true and y_pred of one shape (batch_size, outputs); got "
                f"{tuple(target.shape)} and {tuple(preds.shape)}."
            )
        width = target.shape[-1]
        if self.sum.numel() != width:
            if self.sum.numel():
                raise ValueError(
                    f"`{self.name}` was built for {self.sum.numel()} outputs; got {width}."
                )
            for state in ("sum", "squared_sum", "total_mse", "count"):
                self.resize_state(state, (width,), target.device)
        if sample_weight is None:
            weight = torch.ones_like(target)
        else:
            weight = sample_weight.to(target.dtype)
            if weight.dim() == 1:
                weight = weight.unsqueeze(-1)
            weight = torch.broadcast_to(weight, target.shape)
        weighted = target * weight
        self.sum.add_(weighted.sum(0))
        self.squared_sum.add_((target * weighted).sum(0))
        self.total_mse.add_((torch.square(target - preds) * weight).sum(0))
        self.count.add_(weight.sum(0))
        self.num_samples.add_(target.numel())

    def compute(self) -> torch.Tensor:
        mean = self.sum / self.count
        total = self.squared_sum - self.sum * mean
        raw = 1.0 - self.total_mse / total
        raw = torch.where(torch.isinf(raw), torch.zeros_like(raw), raw)
        if self.class_aggregation == "uniform_average":
            score = raw.mean()
        elif self.class_aggregation == "variance_weighted_average":
            score = (total * raw).sum() / total.sum()
        else:
            score = raw
        if self.num_regressors:
            n = int(self.num_samples)  # once per compute, not per step
            if self.num_regressors > n - 1:
                warnings.warn(
                    "More independent predictors than datapoints in adjusted R2 score. "
                    "Falling back to standard R2 score.",
                    stacklevel=2,
                )
            elif self.num_regressors == n - 1:
                warnings.warn(
                    "Division by zero in Adjusted R2 score. Falling back to standard R2 score.",
                    stacklevel=2,
                )
            else:
                score = 1.0 - (1.0 - score) * (n - 1) / (n - self.num_regressors - 1)
        return score
