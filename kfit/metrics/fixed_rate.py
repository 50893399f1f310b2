"""The "X at fixed Y" metrics, as Keras's.

`PrecisionAtRecall`, `RecallAtPrecision`, `SensitivityAtSpecificity` and
`SpecificityAtSensitivity` each keep all four confusion counts at `num_thresholds` evenly
spaced thresholds (counted as `kfit.metrics.confusion.update_confusion_matrix` does) and
return the best of one rate among the thresholds where the other reaches the required value
(0 when none does).
"""

from __future__ import annotations

from typing import Any

import torch

from kfit.metrics.base import Metric
from kfit.metrics.confusion import divide_no_nan, update_confusion_matrix

__all__ = [
    "PrecisionAtRecall",
    "RecallAtPrecision",
    "SensitivityAtSpecificity",
    "SpecificityAtSensitivity",
]


# --------------------------------------------------------------------------- X at fixed Y


class _AtFixedValue(Metric):
    """The best of one rate among thresholds where another reaches `value`.

    Keras's `SensitivitySpecificityBase`: all four counts at `num_thresholds` even thresholds.
    """

    higher_is_better = True
    _constraint = "specificity"

    # States (`add_state`) and buffers: nn.Module stores them outside `__dict__`, so their
    # types are declared here.
    true_positives: torch.Tensor
    false_positives: torch.Tensor
    true_negatives: torch.Tensor
    false_negatives: torch.Tensor
    _threshold_values: torch.Tensor

    def __init__(
        self,
        value: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"`{self._constraint}` must be a number in [0, 1]; got {value!r}.")
        if not 0 <= value <= 1:
            raise ValueError(
                f"Argument `{self._constraint}` must be in the range [0, 1]. "
                f"Received: {self._constraint}={value}"
            )
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int):
            raise TypeError(f"`num_thresholds` must be an integer > 0; got {num_thresholds!r}.")
        if num_thresholds <= 0:
            raise ValueError(
                "Argument `num_thresholds` must be an integer > 0. "
                f"Received: num_thresholds={num_thresholds}"
            )
        super().__init__(name=name, dtype=dtype)
        self.value, self.num_thresholds, self.class_id = value, num_thresholds, class_id
        setattr(self, self._constraint, value)
        if num_thresholds == 1:
            self.thresholds, self._evenly = [0.5], False
        else:
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self.thresholds, self._evenly = [0.0, *inner, 1.0], True
        self.register_buffer("_threshold_values", torch.tensor(self.thresholds), persistent=False)
        for state in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
            self.add_state(state, torch.zeros(len(self.thresholds)), dist_reduce_fx="sum")

    def update(
        self, preds: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> None:
        update_confusion_matrix(
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
            class_id=self.class_id,
            sample_weight=sample_weight,
        )

    def _rates(self) -> dict[str, torch.Tensor]:
        tp, fp = self.true_positives, self.false_positives
        tn, fn = self.true_negatives, self.false_negatives
        recall = divide_no_nan(tp, tp + fn)
        return {
            "sensitivity": recall,
            "recall": recall,
            "specificity": divide_no_nan(tn, tn + fp),
            "precision": divide_no_nan(tp, tp + fp),
        }

    _target = "sensitivity"

    def compute(self) -> torch.Tensor:
        rates = self._rates()
        feasible = rates[self._constraint] >= self.value
        best = torch.where(feasible, rates[self._target], torch.zeros_like(rates[self._target]))
        return best.max().clamp(min=0.0)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype_name,
            "class_id": self.class_id,
            "num_thresholds": self.num_thresholds,
            self._constraint: self.value,
        }


class SensitivityAtSpecificity(_AtFixedValue):
    """The best sensitivity (recall) among thresholds whose specificity is >= `specificity`.

    Args:
        specificity: the required specificity, in [0, 1].
        num_thresholds: how many evenly spaced thresholds in [0, 1] are tried.
        class_id: only this class (column of the last axis) counts.
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    _constraint, _target = "specificity", "sensitivity"

    def __init__(
        self,
        specificity: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ):
        super().__init__(specificity, num_thresholds, class_id, name, dtype)


class SpecificityAtSensitivity(_AtFixedValue):
    """The best specificity among thresholds whose sensitivity is >= `sensitivity`.

    Args:
        sensitivity: the required sensitivity (recall), in [0, 1].
        num_thresholds: how many evenly spaced thresholds in [0, 1] are tried.
        class_id: only this class (column of the last axis) counts.
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    _constraint, _target = "sensitivity", "specificity"

    def __init__(
        self,
        sensitivity: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ):
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)


class PrecisionAtRecall(_AtFixedValue):
    """The best precision among thresholds whose recall is >= `recall`.

    Args:
        recall: the required recall, in [0, 1].
        num_thresholds: how many evenly spaced thresholds in [0, 1] are tried.
        class_id: only this class (column of the last axis) counts.
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    _constraint, _target = "recall", "precision"

    def __init__(
        self,
        recall: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ):
        super().__init__(recall, num_thresholds, class_id, name, dtype)


class RecallAtPrecision(_AtFixedValue):
    """The best recall among thresholds whose precision is >= `precision`.

    Args:
        precision: the required precision, in [0, 1].
        num_thresholds: how many evenly spaced thresholds in [0, 1] are tried.
        class_id: only this class (column of the last axis) counts.
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    _constraint, _target = "precision", "recall"

    def __init__(
        self,
        precision: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ):
        super().__init__(precision, num_thresholds, class_id, name, dtype)
