"""The unweighted batch mean of some per-sample losses, as one fused torch call.

The same number as `fn(...).mean()` with fewer kernels per step. Each returns None for the
cases it does not cover, and the per-sample path runs instead. Importing this module fills
`kfit.losses.loss.BATCH_MEANS`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from kfit.internals import aten_loss
from kfit.losses.crossentropy import (
    binary_crossentropy,
    categorical_crossentropy,
    sparse_categorical_crossentropy,
)
from kfit.losses.loss import BATCH_MEANS, match_shapes, sparse_labels
from kfit.losses.regression import mean_absolute_error, mean_squared_error

__all__ = ["l1_sum", "mse_sum", "same_shape_loss"]


def same_shape_loss(name: str, reduction: str) -> Callable[..., torch.Tensor]:
    """`F.<name>(y_pred, y_true, reduction=...)` for inputs already of one shape and dtype.

    `F.mse_loss` and `F.l1_loss` broadcast their inputs before the ATen op (two expand views
    and two more backward nodes) and cost ~10 µs of Python per call on small tensors, which is
    more than the kernel. After `match_shapes` there is nothing to broadcast, so the ATen op
    (the same kernel, the same numbers) is called directly; the public function is the
    fallback should torch move it.
    """
    fused = aten_loss(name, reduction)
    if fused is None:
        public = getattr(F, name)
        return lambda y_pred, y_true: public(y_pred, y_true, reduction=reduction)
    return fused


_mse_mean = same_shape_loss("mse_loss", "mean")
_l1_mean = same_shape_loss("l1_loss", "mean")
#: `sum((y_pred - y_true)**2)` and `sum(|y_pred - y_true|)` for same-shape inputs.
mse_sum = same_shape_loss("mse_loss", "sum")
l1_sum = same_shape_loss("l1_loss", "sum")


def _mse_batch_mean(y_true, y_pred):
    y_true, y_pred = match_shapes(y_true, y_pred, "mean_squared_error")
    return _mse_mean(y_pred, y_true)


def _mae_batch_mean(y_true, y_pred):
    y_true, y_pred = match_shapes(y_true, y_pred, "mean_absolute_error")
    return _l1_mean(y_pred, y_true)


def _bce_batch_mean(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    if not from_logits:
        return None
    y_true, y_pred = match_shapes(y_true, y_pred, "binary_crossentropy")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return F.binary_cross_entropy_with_logits(y_pred, y_true)


def _cce_batch_mean(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    if not from_logits or y_pred.dim() != 2 or axis not in (-1, 1) or y_pred.shape[-1] == 1:
        return None  # one class: the per-sample path warns, as Keras does
    y_true, y_pred = match_shapes(y_true, y_pred, "categorical_crossentropy")
    return F.cross_entropy(y_pred, y_true, label_smoothing=label_smoothing)


def _sparse_cce_batch_mean(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    if not from_logits or ignore_class is not None or y_pred.dim() != 2 or axis not in (-1, 1):
        return None
    labels = sparse_labels(y_true, y_pred, "sparse_categorical_crossentropy")
    return F.cross_entropy(y_pred, labels)


BATCH_MEANS.update(
    {
        mean_squared_error: _mse_batch_mean,
        mean_absolute_error: _mae_batch_mean,
        binary_crossentropy: _bce_batch_mean,
        categorical_crossentropy: _cce_batch_mean,
        sparse_categorical_crossentropy: _sparse_cce_batch_mean,
    }
)
