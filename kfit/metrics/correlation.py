"""Correlation metrics, as Keras's `correlation_metrics`: Pearson and concordance."""

from __future__ import annotations

from typing import Any

import torch

from kfit.losses import match_shapes
from kfit.losses.loss import l2_normalize
from kfit.metrics.reduction import MeanMetricWrapper

__all__ = [
    "ConcordanceCorrelation",
    "PearsonCorrelation",
    "concordance_correlation",
    "pearson_correlation",
]


def pearson_correlation(y_true: torch.Tensor, y_pred: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Pearson correlation between target and prediction along `axis`, per sample."""
    y_true, y_pred = match_shapes(y_true, y_pred, "pearson_correlation")
    true_c = y_true - y_true.mean(axis, keepdim=True)
    pred_c = y_pred - y_pred.mean(axis, keepdim=True)
    return (l2_normalize(true_c, axis) * l2_normalize(pred_c, axis)).sum(axis)


def concordance_correlation(
    y_true: torch.Tensor, y_pred: torch.Tensor, axis: int = -1
) -> torch.Tensor:
    """Lin's concordance correlation between target and prediction along `axis`, per sample."""
    y_true, y_pred = match_shapes(y_true, y_pred, "concordance_correlation")
    true_mean = y_true.mean(axis, keepdim=True)
    pred_mean = y_pred.mean(axis, keepdim=True)
    covariance = ((y_true - true_mean) * (y_pred - pred_mean)).mean(axis)
    spread = y_true.var(axis, unbiased=False) + y_pred.var(axis, unbiased=False)
    gap = torch.square(true_mean - pred_mean).squeeze(axis)
    return 2.0 * covariance / (spread + gap + 1e-7)


class PearsonCorrelation(MeanMetricWrapper):
    """Mean per-sample Pearson correlation between labels and predictions along `axis`.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
        axis: the axis along which the correlation is taken.
    """

    higher_is_better = True

    def __init__(self, name: str = "pearson_correlation", dtype: Any = None, axis: int = -1):
        super().__init__(pearson_correlation, name=name, dtype=dtype, axis=axis)
        self.axis = axis


class ConcordanceCorrelation(MeanMetricWrapper):
    """Mean per-sample Lin's concordance correlation along `axis`.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
        axis: the axis along which the correlation is taken.
    """

    higher_is_better = True

    def __init__(self, name: str = "concordance_correlation", dtype: Any = None, axis: int = -1):
        super().__init__(concordance_correlation, name=name, dtype=dtype, axis=axis)
        self.axis = axis
