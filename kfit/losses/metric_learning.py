"""Metric-learning losses on embeddings: Circle loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kfit.losses.loss import LossFunctionWrapper, Reduction

__all__ = ["Circle", "circle"]

_DType = str | torch.dtype | None


def _as_column(labels: torch.Tensor) -> torch.Tensor:
    labels = labels.long()
    return labels.reshape(-1, 1) if labels.dim() == 1 else labels


def circle(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    ref_labels: torch.Tensor | None = None,
    ref_embeddings: torch.Tensor | None = None,
    remove_diagonal: bool = True,
    gamma: float = 80.0,
    margin: float = 0.4,
) -> torch.Tensor:
    """Circle loss (Sun et al., 2020) between integer labels and L2-normalised embeddings.

    Pulls each embedding towards the others of its class and away from the rest, weighting
    every pair by how far it is from its optimum.

    Args:
        y_true: integer labels, shape `(batch_size,)` or `(batch_size, 1)`.
        y_pred: L2-normalised embeddings, shape `(batch_size, dim)`.
        ref_labels: labels of the reference embeddings; None uses `y_true`.
        ref_embeddings: L2-normalised reference embeddings; None uses `y_pred`.
        remove_diagonal: leave each sample's similarity with itself out of its positives.
        gamma: the scale of the similarities.
        margin: the relaxation margin.

    Returns:
        The per-sample loss; 0 for a sample with no positive or no negative pair (a
        `Circle` loss leaves those out of its mean, as Keras's mask does).
    """
    query_labels = _as_column(y_true)
    key_labels = query_labels if ref_labels is None else _as_column(ref_labels)
    references = y_pred if ref_embeddings is None else ref_embeddings.to(y_pred.dtype)
    distances = torch.clamp(1.0 - y_pred @ references.T, min=0.0)
    positive = query_labels == key_labels.T
    negative = ~positive
    if remove_diagonal:
        eye = torch.eye(
            query_labels.numel(), key_labels.numel(), dtype=torch.bool, device=y_pred.device
        )
        positive = positive & ~eye
    pos_weights = torch.clamp((margin + distances) * positive, min=0.0)
    neg_weights = torch.clamp((1.0 + margin - distances) * negative, min=0.0)
    pos_logits = -gamma * pos_weights * (margin - distances)
    neg_logits = gamma * neg_weights * ((1.0 - margin) - distances)
    minus_inf = torch.full_like(distances, float("-inf"))
    pos_loss = torch.logsumexp(torch.where(positive, pos_logits, minus_inf), dim=1)
    neg_loss = torch.logsumexp(torch.where(negative, neg_logits, minus_inf), dim=1)
    return F.softplus(pos_loss + neg_loss)


class Circle(LossFunctionWrapper):
    """Circle loss between integer labels and L2-normalised embeddings; see `circle`.

    Samples whose loss is 0 (no positive or no negative pair in the batch) count neither in
    the sum nor in the divisor of the reduction, as in Keras.

    Args:
        gamma: the scale of the similarities.
        margin: the relaxation margin.
        remove_diagonal: leave each sample's similarity with itself out of its positives.
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.

    Example:
        >>> loss = kfit.losses.Circle()
        >>> embeddings = torch.nn.functional.normalize(torch.randn(8, 4), dim=-1)
        >>> value = loss(torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), embeddings)
    """

    def __init__(
        self,
        gamma: float = 80.0,
        margin: float = 0.4,
        remove_diagonal: bool = True,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "circle",
        dtype: _DType = None,
    ):
        super().__init__(
            circle,
            reduction=reduction,
            name=name,
            dtype=dtype,
            gamma=gamma,
            margin=margin,
            remove_diagonal=remove_diagonal,
        )

    def compute_mask(
        self, y_true: torch.Tensor, y_pred: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor | None:
        return values > 0
