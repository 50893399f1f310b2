"""Losses between distributions that are not cross-entropies: KL divergence and Poisson."""

from __future__ import annotations

import torch

from kfit.losses.loss import EPSILON, LossFunctionWrapper, Reduction, match_shapes

__all__ = ["KLDivergence", "Poisson", "kl_divergence", "poisson"]

_DType = str | torch.dtype | None


def kl_divergence(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """`sum(y_true * log(y_true / y_pred))` over the last axis, both clipped to [eps, 1]."""
    y_true, y_pred = match_shapes(y_true, y_pred, "kl_divergence")
    y_true = torch.clamp(y_true, EPSILON, 1.0)
    y_pred = torch.clamp(y_pred, EPSILON, 1.0)
    return (y_true * torch.log(y_true / y_pred)).sum(-1)


def poisson(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Mean of `y_pred - y_true * log(y_pred + eps)` over the last axis."""
    y_true, y_pred = match_shapes(y_true, y_pred, "poisson")
    return (y_pred - y_true * torch.log(y_pred + EPSILON)).mean(-1)


class KLDivergence(LossFunctionWrapper):
    """Kullback-Leibler divergence `sum(y_true * log(y_true / y_pred))` over the last axis.

    Args:
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "kl_divergence",
        dtype: _DType = None,
    ):
        super().__init__(kl_divergence, reduction=reduction, name=name, dtype=dtype)


class Poisson(LossFunctionWrapper):
    """Poisson loss: mean of `y_pred - y_true * log(y_pred + eps)` over the last axis.

    Args:
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "poisson",
        dtype: _DType = None,
    ):
        super().__init__(poisson, reduction=reduction, name=name, dtype=dtype)
