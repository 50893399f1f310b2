"""`AUC`: area under the ROC, precision-recall or precision-recall-gain curve, as Keras's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from kfit.metrics.base import Metric, config_value
from kfit.metrics.confusion import EPSILON, divide_no_nan, evenly_distributed
from kfit.metrics.confusion import update_confusion_matrix as _update

__all__ = ["AUC"]

_CURVES = {"ROC": "ROC", "roc": "ROC", "PR": "PR", "pr": "PR", "PRGAIN": "PRGAIN"}
_CURVES["prgain"] = "PRGAIN"
_SUMMATIONS = {
    "interpolation": "interpolation",
    "Interpolation": "interpolation",
    "majoring": "majoring",
    "Majoring": "majoring",
    "minoring": "minoring",
    "Minoring": "minoring",
}


class AUC(Metric):
    """Approximate area under a curve, from confusion counts at fixed thresholds (Keras's AUC).

    Predictions are counted against `num_thresholds` thresholds (evenly spaced in [0, 1], the
    end ones moved out by 1e-7, or `thresholds` plus those two ends) and the curve is summed
    with a Riemann sum; for `curve='PR'` with `'interpolation'`, precision is interpolated as
    in Davis & Goadrich (2006), as Keras does.

    Args:
        num_thresholds: how many thresholds discretise the curve (> 1); ignored when
            `thresholds` is given.
        curve: `'ROC'`, `'PR'` (precision-recall) or `'PRGAIN'` (precision-recall gain).
        summation_method: `'interpolation'` (trapezoids), `'minoring'` (lower sums) or
            `'majoring'` (upper sums).
        name: the name shown in logs.
        dtype: the dtype of the states.
        thresholds: explicit thresholds in [0, 1] (sorted here; -1e-7 and 1 + 1e-7 are added).
        multi_label: keep a curve per label (the last axis of 2-D inputs) and average the
            areas (weighted by `label_weights` when given), instead of one curve over all
            entries.
        num_labels: the number of labels with `multi_label` (else taken from the first batch).
        label_weights: per-label weights: they weigh the entries of each label in the counts
            (without `multi_label`) or the per-label areas (with it).
        from_logits: whether predictions are logits (a sigmoid is applied).

    Raises:
        ValueError: for an unknown `curve` or `summation_method`, `num_thresholds` <= 1, or
            `num_labels` without `multi_label`.

    Example:
        >>> m = kfit.metrics.AUC(num_thresholds=3)
        >>> m.update_state([0, 0, 1, 1], [0.0, 0.5, 0.3, 0.9])
        >>> float(m.result())
        0.75
    """

    higher_is_better = True
    # States sized by the first batch: torchmetrics' `forward` must update the epoch states
    # first (its "full state" path) rather than add a batch's states to unsized ones.
    full_state_update = True

    # States (`add_state`) and buffers: nn.Module stores them outside `__dict__`, so their
    # types are declared here.
    true_positives: torch.Tensor
    false_positives: torch.Tensor
    true_negatives: torch.Tensor
    false_negatives: torch.Tensor
    _threshold_values: torch.Tensor
    _label_weights: torch.Tensor  # registered only when `label_weights` is given

    def __init__(
        self,
        num_thresholds: int = 200,
        curve: Literal["ROC", "PR", "PRGAIN"] = "ROC",
        summation_method: Literal["interpolation", "minoring", "majoring"] = "interpolation",
        name: str | None = None,
        dtype: Any = None,
        thresholds: Sequence[float] | None = None,
        multi_label: bool = False,
        num_labels: int | None = None,
        label_weights: Sequence[float] | torch.Tensor | None = None,
        from_logits: bool = False,
    ):
        if curve not in _CURVES:
            raise ValueError(
                f'Invalid AUC curve value: "{curve}". Expected values are ["PR", "ROC", "PRGAIN"]'
            )
        if summation_method not in _SUMMATIONS:
            raise ValueError(
                f'Invalid AUC summation method value: "{summation_method}". Expected values '
                'are ["interpolation", "majoring", "minoring"] (`summation_method`)'
            )
        if thresholds is not None:
            inner = sorted(float(t) for t in thresholds)
            num_thresholds = len(inner) + 2
            evenly = evenly_distributed([0.0, *inner, 1.0])
        else:
            if (
                isinstance(num_thresholds, bool)
                or not isinstance(num_thresholds, int)
                or num_thresholds <= 1
            ):
                raise ValueError(
                    "Argument `num_thresholds` must be an integer > 1. "
                    f"Received: num_thresholds={num_thresholds}"
                )
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            evenly = True
        if num_labels and not multi_label:
            raise ValueError("`num_labels` is needed only when `multi_label` is True.")
        super().__init__(name=name, dtype=dtype)
        self.num_thresholds, self.multi_label, self.num_labels = (
            num_thresholds,
            multi_label,
            num_labels,
        )
        self.curve, self.summation_method = _CURVES[curve], _SUMMATIONS[summation_method]
        self.from_logits = from_logits
        self._init_from_thresholds = thresholds is not None
        self._evenly = evenly
        #: Every threshold, the two end ones included (Keras's attribute).
        self.thresholds = [0.0 - EPSILON, *inner, 1.0 + EPSILON]
        self.register_buffer(
            "_threshold_values",
            torch.tensor(self.thresholds, dtype=torch.float64).float(),
            persistent=False,
        )
        self.label_weights = (
            None if label_weights is None else torch.as_tensor(label_weights).float()
        )
        if self.label_weights is not None:
            self.register_buffer("_label_weights", self.label_weights, persistent=False)
        # (T,) counts, or (T, labels) with multi_label (sized on the first batch unless
        # num_labels says).
        shape = (num_thresholds, num_labels) if multi_label and num_labels else (num_thresholds,)
        if multi_label and not num_labels:
            shape = (0,)
        for state in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
            self.add_state(state, torch.zeros(shape), dist_reduce_fx="sum")

    def _build(self, preds: torch.Tensor) -> None:
        if preds.dim() != 2:
            raise ValueError(
                "`y_pred` must have rank 2 when `multi_label=True`; got shape "
                f"{tuple(preds.shape)}."
            )
        labels = preds.shape[1]
        built = self.true_positives.shape
        if built[0] == self.num_thresholds and built[-1] == labels and len(built) == 2:
            return
        if len(built) == 2:
            raise ValueError(f"`{self.name}` was built for {built[1]} labels; got {labels}.")
        for state in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
            self.resize_state(state, (self.num_thresholds, labels), preds.device)

    def update(
        self, preds: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> None:
        if self.multi_label:
            self._build(preds)
        if self.from_logits:
            preds = torch.sigmoid(preds)
        label_weights = None
        if self.label_weights is not None and not self.multi_label:
            label_weights = self._label_weights
        _update(
            {
                "tp": self.true_positives,
                "fp": self.false_positives,
                "tn": self.true_negatives,
                "fn": self.false_negatives,
            },
            target,
            preds,
            self._threshold_values,
            evenly=self._evenly,
            with_epsilon=True,
            sample_weight=sample_weight,
            multi_label=self.multi_label,
            label_weights=label_weights,
        )

    def _over_labels(self, per_threshold: torch.Tensor) -> torch.Tensor:
        if not self.multi_label:
            return per_threshold.sum()
        by_label = per_threshold.sum(0)
        if self.label_weights is None:
            return by_label.mean()
        weights = self._label_weights.to(by_label.dtype)
        return divide_no_nan((by_label * weights).sum(), weights.sum())

    def _interpolated_pr_auc(self) -> torch.Tensor:
        # Keras's PR interpolation (Davis & Goadrich 2006): precision interpolated between
        # thresholds rather than trapezoids.
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        d_tp = tp[:-1] - tp[1:]
        predicted = tp + fp
        d_predicted = predicted[:-1] - predicted[1:]
        slope = divide_no_nan(d_tp, d_predicted.clamp(min=0))
        intercept = tp[1:] - slope * predicted[1:]
        both = (predicted[:-1] > 0) & (predicted[1:] > 0)
        ratio = torch.where(
            both,
            divide_no_nan(predicted[:-1], predicted[1:].clamp(min=0)),
            torch.ones_like(predicted[1:]),
        )
        area = divide_no_nan(
            slope * (d_tp + intercept * torch.log(ratio)), (tp[1:] + fn[1:]).clamp(min=0)
        )
        return self._over_labels(area)

    def compute(self) -> torch.Tensor:
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolated_pr_auc()
        tp, fp = self.true_positives, self.false_positives
        tn, fn = self.true_negatives, self.false_negatives
        recall = divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, divide_no_nan(tp, tp + fp)
        else:  # PRGAIN
            scaling = divide_no_nan(tp + fn, tn + fp)
            recall_gain = 1.0 - scaling * divide_no_nan(fn, tp)
            precision_gain = 1.0 - scaling * divide_no_nan(fp, tp)
            no_tp = tp == 0
            recall_gain = torch.where(no_tp, torch.zeros_like(recall_gain), recall_gain)
            precision_gain = torch.where(no_tp, torch.ones_like(precision_gain), precision_gain)
            x, y = recall_gain.clamp(min=0.0), precision_gain
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = torch.minimum(y[:-1], y[1:])
        else:
            heights = torch.maximum(y[:-1], y[1:])
        return self._over_labels((x[:-1] - x[1:]) * heights)

    def get_config(self) -> dict[str, Any]:
        config = {
            "name": self.name,
            "dtype": self.dtype_name,
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": config_value(self.label_weights),
            "from_logits": self.from_logits,
        }
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config
