"""Intersection-over-union metrics, as Keras's `iou_metrics`, from a confusion matrix."""

from __future__ import annotations

from typing import Any

import torch

from kfit.metrics.base import Metric

__all__ = ["BinaryIoU", "IoU", "MeanIoU", "OneHotIoU", "OneHotMeanIoU"]


class IoU(Metric):
    """Intersection-over-union for `target_class_ids`, from a confusion matrix on the device.

    IoU of a class is `tp / (tp + fp + fn)`; the result is their mean over the target classes
    present in the data (absent classes are left out, as in Keras).

    Args:
        num_classes: the number of classes.
        target_class_ids: the classes to average over.
        name: the name shown in logs.
        dtype: the dtype of the confusion matrix.
        ignore_class: a class id whose samples are skipped.
        sparse_y_true: whether targets are class ids (else one-hot, arg-maxed along `axis`).
        sparse_y_pred: whether predictions are class ids (else scores, arg-maxed).
        axis: the class axis for arg-max.
    """

    higher_is_better = True

    # State (`add_state`) and buffer: nn.Module stores them outside `__dict__`, so their
    # types are declared here.
    confusion: torch.Tensor
    _ids: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        target_class_ids: list[int] | tuple[int, ...],
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
    ):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"`num_classes` must be a positive integer; got {num_classes!r}.")
        bad = [c for c in target_class_ids if not 0 <= c < num_classes]
        if bad:
            raise ValueError(f"`target_class_ids` must be in [0, {num_classes}); got {bad}.")
        super().__init__(name=name, dtype=dtype)
        self.num_classes, self.target_class_ids = num_classes, list(target_class_ids)
        self.ignore_class, self.axis = ignore_class, axis
        self.sparse_y_true, self.sparse_y_pred = sparse_y_true, sparse_y_pred
        self.add_state("confusion", torch.zeros(num_classes * num_classes), dist_reduce_fx="sum")
        self.register_buffer("_ids", torch.tensor(self.target_class_ids), persistent=False)

    def _class_ids(
        self, preds: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.sparse_y_true:
            target = target.argmax(self.axis)
        if not self.sparse_y_pred:
            preds = preds.argmax(self.axis)
        return preds.reshape(-1).long(), target.reshape(-1).long()

    def update(
        self, preds: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> None:
        preds, target = self._class_ids(preds, target)
        if preds.shape != target.shape:
            raise ValueError(
                f"`{self.name}` needs as many predicted as true class ids; got "
                f"{tuple(preds.shape)} and {tuple(target.shape)}."
            )
        keep = (
            (target >= 0) & (target < self.num_classes) & (preds >= 0) & (preds < self.num_classes)
        )
        if self.ignore_class is not None:
            keep &= target != self.ignore_class
        weight = keep.to(self.confusion.dtype)
        if sample_weight is not None:
            per_entry = sample_weight.reshape(-1).to(weight.dtype)
            if per_entry.numel() not in (1, weight.numel()):  # one weight per sample
                per_entry = per_entry.repeat_interleave(weight.numel() // per_entry.numel())
            weight = weight * per_entry
        cells = torch.where(keep, target * self.num_classes + preds, torch.zeros_like(target))
        # index_add_ on a fixed-size matrix: no data-dependent size, so no host read.
        self.confusion.index_add_(0, cells, weight)

    def compute(self) -> torch.Tensor:
        matrix = self.confusion.reshape(self.num_classes, self.num_classes)
        true_positives = matrix.diagonal()
        denominator = matrix.sum(0) + matrix.sum(1) - true_positives
        true_positives, denominator = true_positives[self._ids], denominator[self._ids]
        valid = denominator > 1e-9
        iou = torch.where(
            valid, true_positives / (denominator + 1e-7), torch.zeros_like(denominator)
        )
        return iou.sum() / (valid.sum() + 1e-7)


class MeanIoU(IoU):
    """Mean intersection-over-union over all `num_classes` classes (class ids as inputs)."""

    def __init__(
        self,
        num_classes: int,
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
    ):
        super().__init__(
            num_classes,
            list(range(num_classes)),
            name=name,
            dtype=dtype,
            ignore_class=ignore_class,
            sparse_y_true=sparse_y_true,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
        )


class BinaryIoU(IoU):
    """IoU of classes 0 and/or 1, predictions thresholded at `threshold` (>= is class 1)."""

    def __init__(
        self,
        target_class_ids: list[int] | tuple[int, ...] = (0, 1),
        threshold: float = 0.5,
        name: str | None = None,
        dtype: Any = None,
    ):
        super().__init__(2, target_class_ids, name=name, dtype=dtype)
        self.threshold = threshold

    def _class_ids(
        self, preds: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return (preds >= self.threshold).reshape(-1).long(), target.reshape(-1).long()


class OneHotIoU(IoU):
    """`IoU` for one-hot targets and per-class scores (both arg-maxed)."""

    def __init__(
        self,
        num_classes: int,
        target_class_ids: list[int] | tuple[int, ...],
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_pred: bool = False,
        axis: int = -1,
    ):
        super().__init__(
            num_classes,
            target_class_ids,
            name=name,
            dtype=dtype,
            ignore_class=ignore_class,
            sparse_y_true=False,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
        )


class OneHotMeanIoU(MeanIoU):
    """`MeanIoU` for one-hot targets and per-class scores (both arg-maxed)."""

    def __init__(
        self,
        num_classes: int,
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_pred: bool = False,
        axis: int = -1,
    ):
        super().__init__(
            num_classes,
            name=name,
            dtype=dtype,
            ignore_class=ignore_class,
            sparse_y_true=False,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
        )
