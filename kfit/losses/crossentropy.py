"""Cross-entropies: binary, categorical, sparse, their focal forms, and generalized (GCE)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from kfit.losses.loss import (
    EPSILON,
    LossFunctionWrapper,
    Reduction,
    as_tensors,
    check_axis,
    match_shapes,
    sparse_labels,
)

__all__ = [
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy",
    "CategoricalGeneralizedCrossEntropy",
    "SparseCategoricalCrossentropy",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "categorical_generalized_cross_entropy",
    "sparse_categorical_crossentropy",
]

_DType = str | torch.dtype | None


def _elementwise_bce(y_true: torch.Tensor, y_pred: torch.Tensor, from_logits: bool):
    if from_logits:
        return F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    probs = torch.clamp(y_pred, EPSILON, 1.0 - EPSILON)
    return -(y_true * torch.log(probs) + (1.0 - y_true) * torch.log1p(-probs))


def _smooth_binary(y_true: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    return y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing if label_smoothing else y_true


def _smooth_categorical(y_true: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    if not label_smoothing:
        return y_true
    # Keras counts the classes along the last axis, whatever `axis` is.
    return y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]


def _warn_one_class(fn_name: str, y_pred: torch.Tensor) -> None:
    if y_pred.shape[-1] == 1:
        warnings.warn(
            f"In loss {fn_name}, expected y_pred.shape to be (batch_size, num_classes) with "
            f"num_classes > 1. Received: y_pred.shape={tuple(y_pred.shape)}. Consider using "
            "'binary_crossentropy' if you only have 2 classes.",
            SyntaxWarning,
            stacklevel=3,
        )


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
    y_true = _smooth_binary(y_true, label_smoothing)
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
    """Binary cross-entropy down-weighted by `(1 - p_t)**gamma` for easy examples.

    Args:
        y_true: 0/1 targets, shaped like `y_pred`.
        y_pred: probabilities, or logits when `from_logits=True`.
        apply_class_balancing: weigh class 1 by `alpha` and class 0 by `1 - alpha`.
        alpha: the class-1 weight when balancing.
        gamma: the focusing exponent (0 gives binary cross-entropy).
        from_logits: whether `y_pred` holds logits.
        label_smoothing: squeezes targets towards 0.5 by this fraction.
        axis: the axis to average over.

    Returns:
        The per-sample loss.
    """
    y_true, y_pred = match_shapes(y_true, y_pred, "binary_focal_crossentropy")
    y_true = _smooth_binary(y_true, label_smoothing)
    probs = torch.sigmoid(y_pred) if from_logits else y_pred
    bce = _elementwise_bce(y_true, probs, from_logits=False)  # as Keras: clipped probabilities
    p_t = y_true * probs + (1.0 - y_true) * (1.0 - probs)
    focal = torch.pow(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        focal = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal
    return focal.mean(axis)


def _probabilities(y_pred: torch.Tensor, axis: int) -> torch.Tensor:
    probs = y_pred / y_pred.sum(axis, keepdim=True)
    return torch.clamp(probs, EPSILON, 1.0 - EPSILON)


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

    Raises:
        ValueError: for a non-integer `axis`, or shapes that differ.
    """
    check_axis(axis)
    y_true, y_pred = match_shapes(y_true, y_pred, "categorical_crossentropy")
    _warn_one_class("categorical_crossentropy", y_pred)
    y_true = _smooth_categorical(y_true, label_smoothing)
    if from_logits:
        log_probs = F.log_softmax(y_pred, dim=axis)
    else:
        log_probs = torch.log(_probabilities(y_pred, axis))
    return -(y_true * log_probs).sum(axis)


def categorical_focal_crossentropy(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    alpha: float | Sequence[float] = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Categorical cross-entropy weighted by `alpha * (1 - p)**gamma`.

    Args:
        y_true: one-hot targets, shaped like `y_pred`.
        y_pred: class probabilities, or logits when `from_logits=True`.
        alpha: a weight for all classes, or one weight per class (a list).
        gamma: the focusing exponent (0 gives weighted categorical cross-entropy).
        from_logits: whether `y_pred` holds logits.
        label_smoothing: mixes the targets with the uniform distribution by this fraction.
        axis: the class axis.

    Returns:
        The per-sample loss.

    Raises:
        ValueError: for a non-integer `axis`, or shapes that differ.
    """
    check_axis(axis)
    y_true, y_pred = match_shapes(y_true, y_pred, "categorical_focal_crossentropy")
    _warn_one_class("categorical_focal_crossentropy", y_pred)
    y_true = _smooth_categorical(y_true, label_smoothing)
    probs = torch.softmax(y_pred, dim=axis) if from_logits else y_pred
    output = _probabilities(probs, axis)
    class_weight: float | torch.Tensor = (
        alpha
        if isinstance(alpha, int | float)
        else torch.as_tensor(alpha, dtype=output.dtype, device=output.device)
    )
    weighting = torch.pow(1.0 - output, gamma) * class_weight
    return (weighting * (-y_true * torch.log(output))).sum(axis)


def sparse_categorical_crossentropy(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    from_logits: bool = False,
    ignore_class: int | None = None,
    axis: int = -1,
) -> torch.Tensor:
    """Cross-entropy between integer class ids and predicted class distributions.

    Args:
        y_true: integer class ids, shaped like `y_pred` without its class axis (or with a
            size-1 class axis).
        y_pred: class probabilities, or logits when `from_logits=True`.
        from_logits: whether `y_pred` holds logits.
        ignore_class: a class id whose entries contribute 0 and, in a `Loss`, count neither
            in the sum nor in the divisor (e.g. padding).
        axis: the class axis of `y_pred`.

    Returns:
        The loss per entry of `y_true`.

    Raises:
        ValueError: for a non-integer `axis`, or class ids of the wrong shape.
    """
    check_axis(axis)
    y_true, y_pred = as_tensors(y_true, y_pred)
    if y_pred.dim() == 1:  # one sample's class scores
        return sparse_categorical_crossentropy(
            y_true.reshape(1), y_pred.unsqueeze(0), from_logits, ignore_class
        ).squeeze(0)
    labels = sparse_labels(y_true, y_pred, "sparse_categorical_crossentropy", axis)
    class_axis = axis % y_pred.dim()
    if class_axis != y_pred.dim() - 1:
        y_pred = y_pred.movedim(class_axis, -1)
    if ignore_class is not None:
        keep = labels != ignore_class
        labels = torch.where(keep, labels, torch.zeros_like(labels))
    if from_logits:
        log_probs = F.log_softmax(y_pred, dim=-1)
    else:
        log_probs = torch.log(_probabilities(y_pred, -1))
    loss = -log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    if ignore_class is not None:
        loss = torch.where(keep, loss, torch.zeros_like(loss))
    return loss


def categorical_generalized_cross_entropy(
    y_true: torch.Tensor, y_pred: torch.Tensor, q: float
) -> torch.Tensor:
    """Generalized cross-entropy `(1 - p**q) / q`, `p` the predicted probability of the class.

    Noise-robust: as `q` approaches 0 it behaves like cross-entropy, as `q` approaches 1 like
    mean absolute error (Zhang and Sabuncu, 2018).

    Args:
        y_true: integer class ids of shape `(batch_size,)` or `(batch_size, 1)`.
        y_pred: class probabilities of shape `(batch_size, num_classes)`.
        q: the noise parameter, in (0, 1).

    Returns:
        The per-sample loss.
    """
    y_true, y_pred = as_tensors(y_true, y_pred)
    labels = sparse_labels(y_true, y_pred, "categorical_generalized_cross_entropy")
    probability = y_pred.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (1.0 - torch.pow(probability, q)) / q


class BinaryCrossentropy(LossFunctionWrapper):
    """Binary cross-entropy; see `binary_crossentropy` for the arguments.

    Args:
        from_logits: whether `y_pred` holds logits.
        label_smoothing: squeezes targets towards 0.5 by this fraction.
        axis: the axis to average over.
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.

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
        dtype: _DType = None,
    ):
        super().__init__(
            binary_crossentropy,
            reduction=reduction,
            name=name,
            dtype=dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class BinaryFocalCrossentropy(LossFunctionWrapper):
    """Binary focal cross-entropy; see `binary_focal_crossentropy` for the arguments.

    Args:
        apply_class_balancing: weigh class 1 by `alpha` and class 0 by `1 - alpha`.
        alpha: the class-1 weight when balancing.
        gamma: the focusing exponent.
        from_logits: whether `y_pred` holds logits.
        label_smoothing: squeezes targets towards 0.5 by this fraction.
        axis: the axis to average over.
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

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
        dtype: _DType = None,
    ):
        super().__init__(
            binary_focal_crossentropy,
            reduction=reduction,
            name=name,
            dtype=dtype,
            apply_class_balancing=apply_class_balancing,
            alpha=alpha,
            gamma=gamma,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class CategoricalCrossentropy(LossFunctionWrapper):
    """Categorical cross-entropy; see `categorical_crossentropy` for the arguments.

    Args:
        from_logits: whether `y_pred` holds logits.
        label_smoothing: mixes the targets with the uniform distribution by this fraction.
        axis: the class axis.
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "categorical_crossentropy",
        dtype: _DType = None,
    ):
        check_axis(axis)
        super().__init__(
            categorical_crossentropy,
            reduction=reduction,
            name=name,
            dtype=dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class CategoricalFocalCrossentropy(LossFunctionWrapper):
    """Categorical focal cross-entropy; see `categorical_focal_crossentropy`.

    Args:
        alpha: a weight for all classes, or one weight per class (a list).
        gamma: the focusing exponent.
        from_logits: whether `y_pred` holds logits.
        label_smoothing: mixes the targets with the uniform distribution by this fraction.
        axis: the class axis.
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        alpha: float | Sequence[float] = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "categorical_focal_crossentropy",
        dtype: _DType = None,
    ):
        check_axis(axis)
        super().__init__(
            categorical_focal_crossentropy,
            reduction=reduction,
            name=name,
            dtype=dtype,
            alpha=alpha,
            gamma=gamma,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Cross-entropy for integer labels; see `sparse_categorical_crossentropy`.

    With `ignore_class`, entries of that class count neither in the sum nor in the divisor
    of the reduction (Keras's mask); their sample weights are left out too.

    Args:
        from_logits: whether `y_pred` holds logits.
        ignore_class: a class id to leave out (e.g. padding), or None.
        reduction: how per-sample values are combined.
        axis: the class axis of `y_pred`.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.

    Example:
        >>> loss = kfit.losses.SparseCategoricalCrossentropy(from_logits=True)
    """

    def __init__(
        self,
        from_logits: bool = False,
        ignore_class: int | None = None,
        reduction: Reduction | None = "sum_over_batch_size",
        axis: int = -1,
        name: str = "sparse_categorical_crossentropy",
        dtype: _DType = None,
    ):
        check_axis(axis)
        super().__init__(
            sparse_categorical_crossentropy,
            reduction=reduction,
            name=name,
            dtype=dtype,
            from_logits=from_logits,
            ignore_class=ignore_class,
            axis=axis,
        )

    def compute_mask(
        self, y_true: torch.Tensor, y_pred: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor | None:
        ignore_class = self.fn_kwargs["ignore_class"]
        if ignore_class is None:
            return None
        labels = sparse_labels(y_true, y_pred, self.name, self.fn_kwargs["axis"])
        return (labels != ignore_class).reshape(values.shape)


class CategoricalGeneralizedCrossEntropy(LossFunctionWrapper):
    """Generalized cross-entropy `(1 - p**q) / q` for integer labels (noise-robust).

    `p` is the predicted probability of the true class. As `q` approaches 0 the loss behaves
    like cross-entropy, as it approaches 1 like mean absolute error.

    Args:
        q: the noise parameter, in (0, 1).
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.

    Raises:
        ValueError: if `q` is not in (0, 1).

    Example:
        >>> loss = kfit.losses.CategoricalGeneralizedCrossEntropy(q=0.7)
        >>> y_pred = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
        >>> round(float(loss(torch.tensor([0, 1]), y_pred)), 4)
        0.3604
    """

    def __init__(
        self,
        q: float = 0.5,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "categorical_generalized_cross_entropy",
        dtype: _DType = None,
    ):
        if isinstance(q, bool) or not isinstance(q, int | float) or not 0 < q < 1:
            raise ValueError(f"q must be in the interval (0, 1); got q={q!r}.")
        super().__init__(
            categorical_generalized_cross_entropy,
            reduction=reduction,
            name=name,
            dtype=dtype,
            q=q,
        )
        self.q = q
