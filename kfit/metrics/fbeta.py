"""F-scores, as Keras's `f_score_metrics`: `FBetaScore` and `F1Score`."""

from __future__ import annotations

from typing import Any, Literal

import torch

from kfit.metrics.base import Metric
from kfit.metrics.confusion import EPSILON

__all__ = ["F1Score", "FBetaScore"]


class FBetaScore(Metric):
    """F-beta score of one-hot or multi-label targets, per class or averaged (Keras's).

    `(1 + beta²) * precision * recall / (beta² * precision + recall)`, from weighted counts
    accumulated over the epoch.

    Args:
        average: `None` (one value per class), `'micro'` (counts over all classes),
            `'macro'` (mean over classes) or `'weighted'` (mean weighted by each class's
            (weighted) number of true labels).
        beta: a float > 0: the weight of recall against precision.
        threshold: a float in (0, 1]: predictions above it are positive; None marks each
            row's highest prediction(s) as positive.
        name: the name shown in logs.
        dtype: the dtype of the states.

    Raises:
        ValueError: for an unknown `average`, a `beta` that is not a float > 0, or a
            `threshold` that is not a float in (0, 1], with Keras's messages.
    """

    higher_is_better = True
    # States sized by the first batch: torchmetrics' `forward` must update the epoch states
    # first (its "full state" path) rather than add a batch's states to unsized ones.
    full_state_update = True

    # States (`add_state`): nn.Module stores them outside `__dict__`, so their types are
    # declared here.
    true_positives: torch.Tensor
    false_positives: torch.Tensor
    false_negatives: torch.Tensor
    intermediate_weights: torch.Tensor

    def __init__(
        self,
        average: Literal["micro", "macro", "weighted"] | None = None,
        beta: float = 1.0,
        threshold: float | None = None,
        name: str = "fbeta_score",
        dtype: Any = None,
    ):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(
                "Invalid `average` argument value. Expected one of: "
                f"{{None, 'micro', 'macro', 'weighted'}}. Received: average={average}"
            )
        if not isinstance(beta, float):
            raise ValueError(
                "Invalid `beta` argument value. It should be a Python float. "
                f"Received: beta={beta} of type '{type(beta)}'"
            )
        if beta <= 0.0:
            raise ValueError(
                f"Invalid `beta` argument value. It should be > 0. Received: beta={beta}"
            )
        if threshold is not None:
            if not isinstance(threshold, float):
                raise ValueError(
                    "Invalid `threshold` argument value. It should be a Python float. "
                    f"Received: threshold={threshold} of type '{type(threshold)}'"
                )
            if threshold > 1.0 or threshold <= 0.0:
                raise ValueError(
                    "Invalid `threshold` argument value. It should verify 0 < threshold <= 1. "
                    f"Received: threshold={threshold}"
                )
        super().__init__(name=name, dtype=dtype)
        self.average, self.beta, self.threshold = average, beta, threshold
        # Per class (sized on the first batch), or one number for 'micro'.
        shape = (0,) if average != "micro" else ()
        for state in ("true_positives", "false_positives", "false_negatives"):
            self.add_state(state, torch.zeros(shape), dist_reduce_fx="sum")
        self.add_state("intermediate_weights", torch.zeros(shape), dist_reduce_fx="sum")

    def update(
        self, preds: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> None:
        dtype = self.true_positives.dtype
        preds, target = preds.to(dtype), target.to(dtype)
        if preds.dim() != 2 or target.dim() != 2:
            raise ValueError(
                "FBetaScore expects 2D inputs with shape (batch_size, output_dim). Received "
                f"input shapes: y_pred.shape={tuple(preds.shape)} and "
                f"y_true.shape={tuple(target.shape)}."
            )
        if self.average != "micro" and self.true_positives.numel() != preds.shape[-1]:
            for state in (
                "true_positives",
                "false_positives",
                "false_negatives",
                "intermediate_weights",
            ):
                self.resize_state(state, (preds.shape[-1],), preds.device)
        if self.threshold is None:
            top = preds.max(-1, keepdim=True).values
            predicted = (preds >= top) & (preds.abs() > 1e-9)
        else:
            predicted = preds > self.threshold
        predicted = predicted.to(dtype)
        dims = (0, 1) if self.average == "micro" else (0,)
        weight = None
        if sample_weight is not None:
            weight = sample_weight.to(dtype)
            weight = weight.unsqueeze(-1) if weight.dim() == 1 else weight

        def weighted_sum(values: torch.Tensor) -> torch.Tensor:
            return (values if weight is None else values * weight).sum(dims)

        self.true_positives.add_(weighted_sum(predicted * target))
        self.false_positives.add_(weighted_sum(predicted * (1 - target)))
        self.false_negatives.add_(weighted_sum((1 - predicted) * target))
        self.intermediate_weights.add_(weighted_sum(target))

    def compute(self) -> torch.Tensor:
        tp = self.true_positives
        precision = tp / (tp + self.false_positives + EPSILON)
        recall = tp / (tp + self.false_negatives + EPSILON)
        beta2 = self.beta**2
        score = precision * recall / (beta2 * precision + recall + EPSILON) * (1 + beta2)
        if self.average == "weighted":
            weights = self.intermediate_weights
            return (score * weights / (weights.sum() + EPSILON)).sum()
        if self.average is not None:
            return score.mean()
        return score


class F1Score(FBetaScore):
    """F1 score: `FBetaScore` with `beta=1`.

    Args:
        average: `None`, `'micro'`, `'macro'` or `'weighted'` (see `FBetaScore`).
        threshold: a float in (0, 1], or None for each row's highest prediction.
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    def __init__(
        self,
        average: Literal["micro", "macro", "weighted"] | None = None,
        threshold: float | None = None,
        name: str = "f1_score",
        dtype: Any = None,
    ):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("beta", None)
        return config
