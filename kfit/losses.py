"""Loss functions and classes with Keras 3's names, formulas, defaults and reduction.

Every function here takes `(y_true, y_pred)` and returns one value per sample (the last axis
reduced), so the same function serves as a loss and as a metric:
`kfit.losses.mean_squared_error is kfit.metrics.mean_squared_error`.

Shapes are checked, never silently broadcast: a `(N,)` target for an `(N, 1)` prediction is
reshaped as Keras does; any other mismatch raises a `ValueError` naming both shapes.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy",
    "CategoricalHinge",
    "CosineDistance",
    "CosineSimilarity",
    "Dice",
    "Hinge",
    "Huber",
    "KLDivergence",
    "LogCosh",
    "Loss",
    "LossFunctionWrapper",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "Poisson",
    "SparseCategoricalCrossentropy",
    "SquaredHinge",
    "Tversky",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "categorical_hinge",
    "cosine_distance",
    "cosine_similarity",
    "dice",
    "get",
    "hinge",
    "huber",
    "kl_divergence",
    "log_cosh",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_logarithmic_error",
    "poisson",
    "sparse_categorical_crossentropy",
    "squared_hinge",
    "tversky",
]

EPSILON = 1e-7  # keras.config.epsilon()

Reduction = Literal["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none"]
_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


# --------------------------------------------------------------------------- shape handling


def match_shapes(
    y_true: torch.Tensor, y_pred: torch.Tensor, fn_name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns `y_true` cast to `y_pred`'s dtype and shaped like it, or raises.

    Keras's rule: when the ranks differ by one and the extra axis has size 1, that axis is
    added to (or squeezed from) the target. Any other difference is an error here, where Keras
    would broadcast silently. One-dimensional `(N,)` pairs are treated as `(N, 1)`, one value
    per sample.
    """
    if y_true.dim() + 1 == y_pred.dim() and y_pred.shape[-1] == 1:
        y_true = y_true.unsqueeze(-1)
    elif y_true.dim() == y_pred.dim() + 1 and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if y_true.shape != y_pred.shape:
        hint = ""
        class_ids = y_true.shape == y_pred.shape[:-1] or (
            y_true.shape[:-1] == y_pred.shape[:-1] and y_true.shape[-1] == 1
        )
        if class_ids and y_pred.shape[-1] > 1 and fn_name == "categorical_crossentropy":
            hint = (
                f". y_true looks like integer class ids: use `sparse_{fn_name}` for those, or "
                "one-hot encode them"
            )
        raise ValueError(
            f"`{fn_name}` needs y_true and y_pred of the same shape; got y_true "
            f"{tuple(y_true.shape)} and y_pred {tuple(y_pred.shape)}{hint}."
        )
    if y_true.dtype != y_pred.dtype:
        y_true = y_true.to(y_pred.dtype)
    if y_pred.dim() == 1:
        # An (N,) output holds one value per sample: reducing its "last axis" would average
        # the batch (Keras does), which breaks sample weights and exact epoch means.
        return y_true.unsqueeze(-1), y_pred.unsqueeze(-1)
    return y_true, y_pred


def sparse_labels(y_true: torch.Tensor, y_pred: torch.Tensor, fn_name: str) -> torch.Tensor:
    """Returns integer class ids shaped like `y_pred` without its class axis, or raises."""
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError(
            f"`{fn_name}` needs integer class ids of shape {tuple(y_pred.shape[:-1])} "
            f"(or with a trailing axis of 1) for y_pred of shape {tuple(y_pred.shape)}; "
            f"got y_true {tuple(y_true.shape)}."
        )
    if y_true.dtype != torch.long:  # floats, and uint8/int8/int16/int32 class ids
        y_true = y_true.long()
    return y_true


def _l2_normalize(x: torch.Tensor, axis: int) -> torch.Tensor:
    return x * torch.rsqrt(torch.clamp((x * x).sum(axis, keepdim=True), min=1e-12))


# --------------------------------------------------------------------------- regression


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
    return -(_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis)).sum(axis)


def cosine_distance(y_true: torch.Tensor, y_pred: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """`1 - cos(y_true, y_pred)`, in [0, 2]: 0 for the same direction (kfit's own; not Keras)."""
    y_true, y_pred = match_shapes(y_true, y_pred, "cosine_distance")
    return 1.0 - (_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis)).sum(axis)


def huber(y_true: torch.Tensor, y_pred: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Quadratic for `|error| <= delta`, linear beyond, averaged over the last axis."""
    y_true, y_pred = match_shapes(y_true, y_pred, "huber")
    return F.huber_loss(y_pred, y_true, reduction="none", delta=delta).mean(-1)


def log_cosh(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Mean of `log(cosh(y_pred - y_true))` over the last axis, computed stably."""
    y_true, y_pred = match_shapes(y_true, y_pred, "log_cosh")
    error = y_pred - y_true
    return (error + F.softplus(-2.0 * error) - math.log(2.0)).mean(-1)


# --------------------------------------------------------------------------- hinge


def _hinge_labels(y_true: torch.Tensor) -> torch.Tensor:
    # Keras turns 0/1 labels into -1/1; decided on the device, with no host read.
    is_binary = ((y_true == 0) | (y_true == 1)).all()
    return torch.where(is_binary, 2.0 * y_true - 1.0, y_true)


def hinge(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Mean of `max(1 - y_true * y_pred, 0)`; 0/1 labels are taken as -1/1."""
    y_true, y_pred = match_shapes(y_true, y_pred, "hinge")
    return torch.clamp(1.0 - _hinge_labels(y_true) * y_pred, min=0.0).mean(-1)


def squared_hinge(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Mean of `max(1 - y_true * y_pred, 0)**2`; 0/1 labels are taken as -1/1."""
    y_true, y_pred = match_shapes(y_true, y_pred, "squared_hinge")
    return torch.square(torch.clamp(1.0 - _hinge_labels(y_true) * y_pred, min=0.0)).mean(-1)


def categorical_hinge(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """`max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)` for one-hot targets."""
    y_true, y_pred = match_shapes(y_true, y_pred, "categorical_hinge")
    positive = (y_true * y_pred).sum(-1)
    negative = ((1.0 - y_true) * y_pred).amax(-1)
    return torch.clamp(negative - positive + 1.0, min=0.0)


# --------------------------------------------------------------------------- probabilistic


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


def _elementwise_bce(y_true: torch.Tensor, y_pred: torch.Tensor, from_logits: bool):
    if from_logits:
        return F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    probs = torch.clamp(y_pred, EPSILON, 1.0 - EPSILON)
    return -(y_true * torch.log(probs) + (1.0 - y_true) * torch.log1p(-probs))


def binary_crossentropy(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Binary cross-entropy averaged over `axis`.

    Args:
        y_true: 0/1 targets (or soft targets), shaped like `y_pred`.
        y_pred: probabilities, or logits when `from_logits=True`.
        from_logits: whether `y_pred` holds logits rather than probabilities.
        label_smoothing: squeezes targets towards 0.5 by this fraction.
        axis: the axis to average over.

    Returns:
        The per-sample loss.
    """
    y_true, y_pred = match_shapes(y_true, y_pred, "binary_crossentropy")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return _elementwise_bce(y_true, y_pred, from_logits).mean(axis)


def binary_focal_crossentropy(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    apply_class_balancing: bool = False,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Binary cross-entropy down-weighted by `(1 - p_t)**gamma` for easy examples."""
    y_true, y_pred = match_shapes(y_true, y_pred, "binary_focal_crossentropy")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    bce = _elementwise_bce(y_true, y_pred, from_logits)
    probs = torch.sigmoid(y_pred) if from_logits else y_pred
    p_t = y_true * probs + (1.0 - y_true) * (1.0 - probs)
    focal = torch.pow(1.0 - p_t, gamma)
    if apply_class_balancing:
        focal = focal * (y_true * alpha + (1.0 - y_true) * (1.0 - alpha))
    return (focal * bce).mean(axis)


def _log_probabilities(y_pred: torch.Tensor, from_logits: bool, axis: int) -> torch.Tensor:
    if from_logits:
        return F.log_softmax(y_pred, dim=axis)
    probs = y_pred / y_pred.sum(axis, keepdim=True)
    return torch.log(torch.clamp(probs, EPSILON, 1.0 - EPSILON))


def categorical_crossentropy(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Cross-entropy between one-hot (or soft) targets and predicted class distributions.

    Args:
        y_true: one-hot targets, shaped like `y_pred`.
        y_pred: class probabilities (renormalised to sum to 1), or logits.
        from_logits: whether `y_pred` holds logits.
        label_smoothing: mixes the targets with the uniform distribution by this fraction.
        axis: the class axis.

    Returns:
        The per-sample loss.
    """
    y_true, y_pred = match_shapes(y_true, y_pred, "categorical_crossentropy")
    if label_smoothing:
        num_classes = y_pred.shape[axis]
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / num_classes
    return -(y_true * _log_probabilities(y_pred, from_logits, axis)).sum(axis)


def categorical_focal_crossentropy(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Categorical cross-entropy weighted by `alpha * (1 - p)**gamma`."""
    y_true, y_pred = match_shapes(y_true, y_pred, "categorical_focal_crossentropy")
    if label_smoothing:
        num_classes = y_pred.shape[axis]
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / num_classes
    log_probs = _log_probabilities(y_pred, from_logits, axis)
    weighting = alpha * torch.pow(1.0 - log_probs.exp(), gamma)
    return -(weighting * y_true * log_probs).sum(axis)


def sparse_categorical_crossentropy(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    from_logits: bool = False,
    ignore_class: int | None = None,
    axis: int = -1,
) -> torch.Tensor:
    """Cross-entropy between integer class ids and predicted class distributions.

    Args:
        y_true: integer class ids, shaped like `y_pred` without its class axis.
        y_pred: class probabilities, or logits when `from_logits=True`.
        from_logits: whether `y_pred` holds logits.
        ignore_class: a class id whose samples contribute 0 (e.g. padding).
        axis: the class axis; must be the last one.

    Returns:
        The per-sample loss.
    """
    if axis not in (-1, y_pred.dim() - 1):
        raise ValueError(
            f"`axis` must be the last axis for sparse_categorical_crossentropy; got {axis}."
        )
    labels = sparse_labels(y_true, y_pred, "sparse_categorical_crossentropy")
    if ignore_class is not None:
        keep = labels != ignore_class
        labels = torch.where(keep, labels, torch.zeros_like(labels))
    log_probs = _log_probabilities(y_pred, from_logits, -1)
    loss = -log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    if ignore_class is not None:
        loss = loss * keep
    return loss


# --------------------------------------------------------------------------- segmentation


def dice(y_true: torch.Tensor, y_pred: torch.Tensor, axis: Any = None) -> torch.Tensor:
    """`1 - 2|A∩B| / (|A| + |B|)`, over `axis` (the whole batch when None)."""
    y_true, y_pred = match_shapes(y_true, y_pred, "dice")
    dims = tuple(range(y_pred.dim())) if axis is None else axis
    intersection = (y_true * y_pred).sum(dims)
    return 1.0 - 2.0 * intersection / (y_true.sum(dims) + y_pred.sum(dims) + EPSILON)


def tversky(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    alpha: float = 0.5,
    beta: float = 0.5,
    axis: Any = None,
) -> torch.Tensor:
    """Tversky loss: Dice with false positives weighted `alpha` and false negatives `beta`."""
    y_true, y_pred = match_shapes(y_true, y_pred, "tversky")
    dims = tuple(range(y_pred.dim())) if axis is None else axis
    intersection = (y_true * y_pred).sum(dims)
    false_pos = ((1.0 - y_pred) * y_true).sum(dims)
    false_neg = (y_pred * (1.0 - y_true)).sum(dims)
    return 1.0 - intersection / (intersection + alpha * false_pos + beta * false_neg + EPSILON)


# --------------------------------------------------------------------------- batch means
# The unweighted mean over a batch of some per-sample losses, as one fused torch call: the
# same number as `fn(...).mean()` with fewer kernels per step. Each returns None for the cases
# it does not cover, and the per-sample path runs instead.


def _same_shape_loss(name: str, reduction: str) -> Callable[..., torch.Tensor]:
    """`F.<name>(y_pred, y_true, reduction=...)` for inputs already of one shape and dtype.

    `F.mse_loss` and `F.l1_loss` broadcast their inputs before the ATen op (two expand views
    and two more backward nodes) and cost ~10 µs of Python per call on small tensors, which is
    more than the kernel. After `match_shapes` there is nothing to broadcast, so the ATen op
    (the same kernel, the same numbers) is called directly; the public function is the
    fallback should torch move it.
    """
    aten_op = getattr(torch._C._nn, name, None)
    if aten_op is None:
        public = getattr(F, name)
        return lambda y_pred, y_true: public(y_pred, y_true, reduction=reduction)
    enum = {"mean": 1, "sum": 2}[reduction]  # torch.nn._reduction.get_enum
    return lambda y_pred, y_true: aten_op(y_pred, y_true, enum)


_mse_mean = _same_shape_loss("mse_loss", "mean")
_l1_mean = _same_shape_loss("l1_loss", "mean")
_mse_sum = _same_shape_loss("mse_loss", "sum")
_l1_sum = _same_shape_loss("l1_loss", "sum")


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
    if not from_logits or y_pred.dim() != 2 or axis not in (-1, 1):
        return None
    y_true, y_pred = match_shapes(y_true, y_pred, "categorical_crossentropy")
    return F.cross_entropy(y_pred, y_true, label_smoothing=label_smoothing)


def _sparse_cce_batch_mean(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    if not from_logits or ignore_class is not None or y_pred.dim() != 2:
        return None
    labels = sparse_labels(y_true, y_pred, "sparse_categorical_crossentropy")
    return F.cross_entropy(y_pred, labels)


_BATCH_MEANS: dict[Callable[..., torch.Tensor], Callable[..., torch.Tensor | None]] = {
    mean_squared_error: _mse_batch_mean,
    mean_absolute_error: _mae_batch_mean,
    binary_crossentropy: _bce_batch_mean,
    categorical_crossentropy: _cce_batch_mean,
    sparse_categorical_crossentropy: _sparse_cce_batch_mean,
}


# --------------------------------------------------------------------------- loss objects


def reduce_weighted(
    values: torch.Tensor,
    sample_weight: torch.Tensor | None,
    reduction: str | None = "sum_over_batch_size",
) -> torch.Tensor:
    """Applies Keras's reduction to per-sample loss values.

    Args:
        values: per-sample (or per-timestep) losses.
        sample_weight: weights broadcast against `values` along the leading axes, or None.
        reduction: `'sum_over_batch_size'`/`'mean'` (`sum(w*l) / numel(l)`), `'sum'`,
            `'mean_with_sample_weight'` (`sum(w*l) / sum(w)`) or `'none'`.

    Returns:
        The reduced loss (a scalar unless `reduction` is `'none'`).
    """
    if sample_weight is None and reduction in ("sum_over_batch_size", "mean"):
        return values.mean()
    if sample_weight is not None:
        sample_weight = sample_weight.to(values.dtype)
        while sample_weight.dim() < values.dim():
            sample_weight = sample_weight.unsqueeze(-1)
        while sample_weight.dim() > values.dim() and sample_weight.shape[-1] == 1:
            sample_weight = sample_weight.squeeze(-1)
        values = values * sample_weight
    if reduction in (None, "none"):
        return values
    total = values.sum()
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        return total / torch.broadcast_to(sample_weight, values.shape).sum()
    return total / max(values.numel(), 1)


def _checked_values(values: Any, name: str) -> torch.Tensor:
    """`values`, or a `TypeError` naming the loss when its function returned no tensor."""
    if not isinstance(values, torch.Tensor):
        what = "None" if values is None else f"a {type(values).__name__} ({values!r:.40})"
        raise TypeError(
            f"The loss {name!r} returned {what}; a loss function must return a tensor (one "
            "value per sample, or a scalar)."
        )
    return values


class Loss:
    """Base class of Keras-style losses: per-sample `call`, then a reduction.

    Subclasses implement `call(y_true, y_pred)` returning one value per sample.

    Args:
        name: the name used in logs.
        reduction: how per-sample values are combined; see `reduce_weighted`.

    Example:
        >>> loss = kfit.losses.MeanSquaredError()
        >>> float(loss(torch.zeros(2, 1), torch.ones(2, 1)))
        1.0
    """

    def __init__(
        self, name: str | None = None, reduction: Reduction | None = "sum_over_batch_size"
    ):
        if reduction not in _REDUCTIONS:
            raise ValueError(
                f"`reduction` must be one of {[r for r in _REDUCTIONS if r]}; got {reduction!r}."
            )
        self.name = name or _snake_case(type(self).__name__)
        self.reduction = reduction

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred).")

    def __call__(
        self, y_true: torch.Tensor, y_pred: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        values = _checked_values(self.call(y_true, y_pred), self.name)
        return reduce_weighted(values, sample_weight, self.reduction)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class LossFunctionWrapper(Loss):
    """Turns a per-sample function `fn(y_true, y_pred, **kwargs)` into a `Loss`.

    Args:
        fn: the per-sample loss function.
        name: the name used in logs; defaults to `fn.__name__`.
        reduction: how per-sample values are combined.
        **kwargs: options passed to `fn` on every call.
    """

    def __init__(
        self,
        fn: Callable[..., torch.Tensor],
        name: str | None = None,
        reduction: Reduction | None = "sum_over_batch_size",
        **kwargs: Any,
    ):
        super().__init__(name=name or getattr(fn, "__name__", "loss"), reduction=reduction)
        self.fn = fn
        self.fn_kwargs = kwargs

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return self.fn(y_true, y_pred, **self.fn_kwargs)

    def __call__(
        self, y_true: torch.Tensor, y_pred: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        if sample_weight is None and self.reduction in ("sum_over_batch_size", "mean"):
            batch_mean = _BATCH_MEANS.get(self.fn)
            loss = batch_mean(y_true, y_pred, **self.fn_kwargs) if batch_mean else None
            if loss is not None:
                return loss
        values = _checked_values(self.call(y_true, y_pred), self.name)
        return reduce_weighted(values, sample_weight, self.reduction)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self.fn_kwargs}

    @property
    def from_logits(self) -> bool:
        return bool(self.fn_kwargs.get("from_logits", False))


def _wrapper_class(fn: Callable[..., torch.Tensor], class_name: str, default_name: str):
    """Makes a Keras loss class for a function that has no options."""

    def __init__(
        self, reduction: Reduction | None = "sum_over_batch_size", name: str = default_name
    ):
        LossFunctionWrapper.__init__(self, fn, name=name, reduction=reduction)

    doc = (
        f"Loss class for `{fn.__name__}`: {fn.__doc__}\n\n    Args:\n        reduction: how "
        "per-sample values are combined.\n        name: the name used in logs.\n"
    )
    return type(
        class_name,
        (LossFunctionWrapper,),
        {"__init__": __init__, "__doc__": doc, "__module__": __name__},
    )


MeanSquaredError = _wrapper_class(mean_squared_error, "MeanSquaredError", "mean_squared_error")
MeanAbsoluteError = _wrapper_class(mean_absolute_error, "MeanAbsoluteError", "mean_absolute_error")
MeanAbsolutePercentageError = _wrapper_class(
    mean_absolute_percentage_error, "MeanAbsolutePercentageError", "mean_absolute_percentage_error"
)
MeanSquaredLogarithmicError = _wrapper_class(
    mean_squared_logarithmic_error, "MeanSquaredLogarithmicError", "mean_squared_logarithmic_error"
)
LogCosh = _wrapper_class(log_cosh, "LogCosh", "log_cosh")
Hinge = _wrapper_class(hinge, "Hinge", "hinge")
SquaredHinge = _wrapper_class(squared_hinge, "SquaredHinge", "squared_hinge")
CategoricalHinge = _wrapper_class(categorical_hinge, "CategoricalHinge", "categorical_hinge")
KLDivergence = _wrapper_class(kl_divergence, "KLDivergence", "kl_divergence")
Poisson = _wrapper_class(poisson, "Poisson", "poisson")


class CosineSimilarity(LossFunctionWrapper):
    """`-cos(y_true, y_pred)` along `axis` (Keras's loss form, minimised)."""

    def __init__(
        self,
        axis: int = -1,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "cosine_similarity",
    ):
        super().__init__(cosine_similarity, name=name, reduction=reduction, axis=axis)


class CosineDistance(LossFunctionWrapper):
    """`1 - cos(y_true, y_pred)` along `axis` (kfit's own)."""

    def __init__(
        self,
        axis: int = -1,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "cosine_distance",
    ):
        super().__init__(cosine_distance, name=name, reduction=reduction, axis=axis)


class Huber(LossFunctionWrapper):
    """Huber loss with threshold `delta`; named `huber_loss` in logs as in Keras."""

    def __init__(
        self,
        delta: float = 1.0,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "huber_loss",
    ):
        super().__init__(huber, name=name, reduction=reduction, delta=delta)


class BinaryCrossentropy(LossFunctionWrapper):
    """Binary cross-entropy; see `binary_crossentropy` for the arguments.

    Example:
        >>> loss = kfit.losses.BinaryCrossentropy(from_logits=True)
    """

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "binary_crossentropy",
    ):
        super().__init__(
            binary_crossentropy,
            name=name,
            reduction=reduction,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class BinaryFocalCrossentropy(LossFunctionWrapper):
    """Binary focal cross-entropy; see `binary_focal_crossentropy` for the arguments."""

    def __init__(
        self,
        apply_class_balancing: bool = False,
        alpha: float = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "binary_focal_crossentropy",
    ):
        super().__init__(
            binary_focal_crossentropy,
            name=name,
            reduction=reduction,
            apply_class_balancing=apply_class_balancing,
            alpha=alpha,
            gamma=gamma,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class CategoricalCrossentropy(LossFunctionWrapper):
    """Categorical cross-entropy; see `categorical_crossentropy` for the arguments."""

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "categorical_crossentropy",
    ):
        super().__init__(
            categorical_crossentropy,
            name=name,
            reduction=reduction,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class CategoricalFocalCrossentropy(LossFunctionWrapper):
    """Categorical focal cross-entropy; see `categorical_focal_crossentropy`."""

    def __init__(
        self,
        alpha: float = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "categorical_focal_crossentropy",
    ):
        super().__init__(
            categorical_focal_crossentropy,
            name=name,
            reduction=reduction,
            alpha=alpha,
            gamma=gamma,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Cross-entropy for integer labels; see `sparse_categorical_crossentropy`.

    Example:
        >>> loss = kfit.losses.SparseCategoricalCrossentropy(from_logits=True)
    """

    def __init__(
        self,
        from_logits: bool = False,
        ignore_class: int | None = None,
        axis: int = -1,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "sparse_categorical_crossentropy",
    ):
        super().__init__(
            sparse_categorical_crossentropy,
            name=name,
            reduction=reduction,
            from_logits=from_logits,
            ignore_class=ignore_class,
            axis=axis,
        )

    def __call__(
        self, y_true: torch.Tensor, y_pred: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        ignore_class = self.fn_kwargs["ignore_class"]
        if ignore_class is None or self.reduction in (None, "none", "sum"):
            return super().__call__(y_true, y_pred, sample_weight)
        # As Keras masks them: ignored samples count neither in the sum nor in the divisor.
        values = self.call(y_true, y_pred)
        keep = (sparse_labels(y_true, y_pred, self.name) != ignore_class).to(values.dtype)
        total = reduce_weighted(values, sample_weight, "sum")
        if self.reduction == "mean_with_sample_weight" and sample_weight is not None:
            return total / reduce_weighted(keep, sample_weight, "sum")
        return total / keep.sum().clamp(min=1.0)


class Dice(LossFunctionWrapper):
    """Dice loss over `axis` (the whole batch when None)."""

    def __init__(
        self,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "dice",
        axis: Any = None,
    ):
        super().__init__(dice, name=name, reduction=reduction, axis=axis)


class Tversky(LossFunctionWrapper):
    """Tversky loss with false-positive weight `alpha` and false-negative weight `beta`."""

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.5,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "tversky",
        axis: Any = None,
    ):
        super().__init__(tversky, name=name, reduction=reduction, alpha=alpha, beta=beta, axis=axis)


# --------------------------------------------------------------------------- registry


def _snake_case(name: str) -> str:
    """Keras's `to_snake_case`: `TopKCategoricalAccuracy` -> `top_k_categorical_accuracy`."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


_CLASSES = [
    BinaryCrossentropy,
    BinaryFocalCrossentropy,
    CategoricalCrossentropy,
    CategoricalFocalCrossentropy,
    CategoricalHinge,
    CosineDistance,
    CosineSimilarity,
    Dice,
    Hinge,
    Huber,
    KLDivergence,
    LogCosh,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    Poisson,
    SparseCategoricalCrossentropy,
    SquaredHinge,
    Tversky,
]
_FUNCTIONS = [
    binary_crossentropy,
    binary_focal_crossentropy,
    categorical_crossentropy,
    categorical_focal_crossentropy,
    categorical_hinge,
    cosine_distance,
    cosine_similarity,
    dice,
    hinge,
    huber,
    kl_divergence,
    log_cosh,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
    poisson,
    sparse_categorical_crossentropy,
    squared_hinge,
    tversky,
]
_ALIASES = {
    "bce": binary_crossentropy,
    "BCE": binary_crossentropy,
    "kld": kl_divergence,
    "KLD": kl_divergence,
    "mae": mean_absolute_error,
    "MAE": mean_absolute_error,
    "mape": mean_absolute_percentage_error,
    "MAPE": mean_absolute_percentage_error,
    "mse": mean_squared_error,
    "MSE": mean_squared_error,
    "msle": mean_squared_logarithmic_error,
    "MSLE": mean_squared_logarithmic_error,
}

#: Every string id `compile(loss=...)` accepts (case-sensitive, as in Keras), besides the
#: shape-dependent `'crossentropy'`/`'ce'` that `compile` settles from the data.
ALL_OBJECTS_DICT: dict[str, Any] = {
    **{cls.__name__: cls for cls in _CLASSES},
    **{fn.__name__: fn for fn in _FUNCTIONS},
    **_ALIASES,
}

#: Keras ids kfit knows but does not implement, with the reason.
UNSUPPORTED = {
    "CTC": "CTC needs label/logit lengths; use torch.nn.CTCLoss() as the loss instead",
    "ctc": "CTC needs label/logit lengths; use torch.nn.CTCLoss() as the loss instead",
    "Circle": "not implemented in kfit yet",
    "circle": "not implemented in kfit yet",
}


def closest_name(name: str, names: list[str]) -> str | None:
    """Returns the valid name nearest to `name` (ignoring case), or None."""
    lowered = {n.lower(): n for n in names}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=5, cutoff=0.4)
    if not matches:
        return None
    # difflib's ratio misses swapped letters ('adma' scores 'adamax' above 'adam'): among its
    # candidates take the fewest edits, a swap counting as one; ties keep difflib's order.
    return lowered[min(matches, key=lambda match: _edit_distance(name.lower(), match))]


def _edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps."""
    before, previous = None, list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        row = [i]
        for j, char_b in enumerate(b, 1):
            cost = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            if before is not None and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                cost = min(cost, before[j - 2] + 1)
            row.append(cost)
        before, previous = previous, row
    return previous[-1]


def unknown_id_error(kind: str, identifier: str, names: list[str], where: str) -> ValueError:
    """Builds the `ValueError` for an unknown string id, naming the closest valid one."""
    suggestion = closest_name(identifier, names)
    hint = f" Did you mean {suggestion!r}?" if suggestion else ""
    return ValueError(
        f"Unknown {kind} identifier {identifier!r}.{hint} The valid ids are the keys of `{where}`."
    )


def get(identifier: Any) -> Loss | Callable[..., torch.Tensor]:
    """Resolves a loss identifier to a callable.

    Args:
        identifier: a string id (`'mse'`, `'BinaryCrossentropy'`, ...), a `Loss`, a function
            `f(y_true, y_pred)`, or a torch loss module such as `nn.CrossEntropyLoss()`.

    Returns:
        A `Loss` instance for class ids, the function itself for function ids, or the
        identifier unchanged when it is already callable.

    Raises:
        ValueError: for an unknown string id (naming the closest valid one).
        TypeError: for anything that is neither a string nor callable.
    """
    if isinstance(identifier, str):
        if identifier in UNSUPPORTED:
            raise ValueError(f"Loss {identifier!r} is not supported: {UNSUPPORTED[identifier]}.")
        if identifier not in ALL_OBJECTS_DICT:
            raise unknown_id_error(
                "loss", identifier, list(ALL_OBJECTS_DICT), "kfit.losses.ALL_OBJECTS_DICT"
            )
        found = ALL_OBJECTS_DICT[identifier]
        return found() if isinstance(found, type) else found
    if isinstance(identifier, type) and issubclass(identifier, (Loss, nn.Module)):
        return identifier()
    if callable(identifier):
        return identifier
    raise TypeError(
        f"`loss` must be a string id, a Loss, a function f(y_true, y_pred) or a torch loss "
        f"module; got {identifier!r} of type {type(identifier).__name__}."
    )
