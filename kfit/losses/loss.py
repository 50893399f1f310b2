"""The `Loss` base class, Keras's reductions, and the shape rules every loss shares.

Every loss function takes `(y_true, y_pred)` and returns one value per sample (the last axis
reduced); a `Loss` object then combines them with Keras's reduction, sample weights and mask.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
import torch

from kfit.registry import snake_case

__all__ = [
    "BATCH_MEANS",
    "EPSILON",
    "Loss",
    "LossFunctionWrapper",
    "Reduction",
    "as_tensors",
    "check_axis",
    "l2_normalize",
    "match_shapes",
    "reduce_weighted",
    "sparse_labels",
]

EPSILON = 1e-7  # keras.config.epsilon()

Reduction = Literal["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none"]
_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)

_MEAN_REDUCTIONS = ("sum_over_batch_size", "mean")

#: The fused paths of the losses. Per-sample loss function `fn` -> `batch_mean(y_true, y_pred,
#: **options)`, the same number as `fn(y_true, y_pred, **options).mean()` (the unweighted
#: `'sum_over_batch_size'` reduction) in one fused torch call, or None for the options or
#: inputs it does not cover. `kfit.losses.batch_means` fills it in; `LossFunctionWrapper` is the
#: only place that chooses an entry (see `LossFunctionWrapper.batch_mean`), and
#: tests/test_fast_paths.py checks every entry against the per-sample path.
BATCH_MEANS: dict[Callable[..., torch.Tensor], Callable[..., torch.Tensor | None]] = {}


# --------------------------------------------------------------------------- shape handling


def as_tensors(*values: Any) -> tuple[Any, ...]:
    """Arrays and lists as tensors (floats as the default float dtype), tensors unchanged.

    Lets the loss functions take what Keras's take: `kfit.losses.mse(np_array, [[1.0]])`.
    """
    return tuple(
        value
        if value is None or isinstance(value, torch.Tensor)
        else _as_tensor(value, torch.get_default_dtype(), torch.device("cpu"))
        for value in values
    )


def match_shapes(
    y_true: torch.Tensor, y_pred: torch.Tensor, fn_name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns `y_true` cast to `y_pred`'s dtype and shaped like it, or raises.

    Keras's rule: when the ranks differ by one and the extra axis has size 1, that axis is
    added to (or squeezed from) the target. Any other difference is an error here, where Keras
    would broadcast silently. One-dimensional `(N,)` pairs are treated as `(N, 1)`, one value
    per sample.

    Args:
        y_true: the targets.
        y_pred: the predictions.
        fn_name: the loss's name, for the error message.

    Returns:
        `(y_true, y_pred)` of one shape and dtype.

    Raises:
        ValueError: naming both shapes when they cannot be matched.
    """
    if not (isinstance(y_true, torch.Tensor) and isinstance(y_pred, torch.Tensor)):
        y_true, y_pred = as_tensors(y_true, y_pred)
        if not y_pred.is_floating_point():
            y_pred = y_pred.to(torch.get_default_dtype())
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
            f"`{fn_name}`: y_true and y_pred must have the same shape; got y_true "
            f"{tuple(y_true.shape)} and y_pred {tuple(y_pred.shape)}{hint}."
        )
    if y_true.dtype != y_pred.dtype:
        y_true = y_true.to(y_pred.dtype)
    if y_pred.dim() == 1:
        # An (N,) output holds one value per sample: reducing its "last axis" would average
        # the batch (Keras does), which breaks sample weights and exact epoch means.
        return y_true.unsqueeze(-1), y_pred.unsqueeze(-1)
    return y_true, y_pred


def sparse_labels(
    y_true: torch.Tensor, y_pred: torch.Tensor, fn_name: str, axis: int = -1
) -> torch.Tensor:
    """Returns integer class ids shaped like `y_pred` without its class axis, or raises.

    Args:
        y_true: class ids, with or without a size-1 class axis.
        y_pred: the predictions, with classes along `axis`.
        fn_name: the loss's name, for the error message.
        axis: the class axis of `y_pred`.

    Returns:
        The class ids as int64.

    Raises:
        ValueError: naming both shapes when they do not fit.
    """
    y_true, y_pred = as_tensors(y_true, y_pred)
    class_axis = axis % y_pred.dim()
    expected = y_pred.shape[:class_axis] + y_pred.shape[class_axis + 1 :]
    if y_true.dim() == y_pred.dim() and y_true.shape[class_axis] == 1:
        y_true = y_true.squeeze(class_axis)
    if y_true.shape != expected:
        raise ValueError(
            f"`{fn_name}` needs integer class ids of shape {tuple(expected)} "
            f"(or with a size-1 class axis) for y_pred of shape {tuple(y_pred.shape)} with "
            f"classes on axis {axis}; got y_true {tuple(y_true.shape)}."
        )
    if y_true.dtype != torch.long:  # floats, and uint8/int8/int16/int32 class ids
        y_true = y_true.long()
    return y_true


def l2_normalize(x: torch.Tensor, axis: int) -> torch.Tensor:
    """`x / ||x||` along `axis`, as Keras's `normalize` (norms floored at 1e-6)."""
    return x * torch.rsqrt(torch.clamp((x * x).sum(axis, keepdim=True), min=1e-12))


def check_axis(axis: Any) -> None:
    """Keras's check for a class axis: an int, not a bool.

    Raises:
        ValueError: for a bool or non-integer `axis`.
    """
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise ValueError(
            f"`axis` must be of type `int`. Received: axis={axis!r} of type {type(axis)}"
        )


# --------------------------------------------------------------------------- reduction


def _broadcast_weight(weight: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    weight = weight.to(values.dtype)
    while weight.dim() < values.dim():
        weight = weight.unsqueeze(-1)
    while weight.dim() > values.dim() and weight.shape[-1] == 1:
        weight = weight.squeeze(-1)
    return weight


def _divide_no_nan(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    safe = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return torch.where(denominator == 0, torch.zeros_like(numerator), numerator / safe)


def reduce_weighted(
    values: torch.Tensor,
    sample_weight: torch.Tensor | None,
    reduction: str | None = "sum_over_batch_size",
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Applies Keras's reduction to per-sample loss values.

    Args:
        values: per-sample (or per-timestep) losses.
        sample_weight: weights broadcast against `values` along the leading axes, or None.
        reduction: `'sum_over_batch_size'`/`'mean'` (`sum(w*l) / numel(l)`), `'sum'`,
            `'mean_with_sample_weight'` (`sum(w*l) / sum(w)`) or `'none'`/None.
        mask: entries of `values` that count (a boolean tensor of its shape), or None. As in
            Keras, masked-out entries count neither in the sum nor in the divisor.

    Returns:
        The reduced loss (a scalar unless `reduction` is `'none'`); a mean over nothing (all
        weights or the whole mask zero) is 0, as Keras's `divide_no_nan` gives.
    """
    if sample_weight is None and mask is None and reduction in ("sum_over_batch_size", "mean"):
        return values.mean() if values.numel() else values.sum()
    if mask is not None:
        keep = mask.to(values.dtype)
        if reduction in ("sum_over_batch_size", "mean"):
            # Keras's apply_mask: kept entries weigh total/valid, so the mean is over them.
            total = torch.full(
                (), float(max(mask.numel(), 1)), dtype=keep.dtype, device=keep.device
            )
            keep = keep * _divide_no_nan(total, keep.sum())
        if sample_weight is not None:
            keep = _broadcast_weight(sample_weight, keep) * keep
        sample_weight = keep
    if sample_weight is not None:
        sample_weight = _broadcast_weight(sample_weight, values)
        values = values * sample_weight
    if reduction in (None, "none"):
        return values
    total = values.sum()
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        return _divide_no_nan(total, torch.broadcast_to(sample_weight, values.shape).sum())
    return total / max(values.numel(), 1)


# --------------------------------------------------------------------------- Loss


def _dtype_from(dtype: Any) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        found = getattr(torch, dtype, None)
        if isinstance(found, torch.dtype) and found.is_floating_point:
            return found
    raise ValueError(
        f"`dtype` must be None, a floating torch dtype or its name ('float32', 'bfloat16', ...); "
        f"got {dtype!r}."
    )


class Loss:
    """Base class of Keras-style losses: per-sample `call`, then a reduction.

    Subclasses implement `call(y_true, y_pred)` returning one value per sample, and may
    override `compute_mask` to leave some entries out of the reduction (as Keras's masks do).

    Args:
        name: the name used in logs; defaults to the class name in snake case.
        reduction: how per-sample values are combined; see `reduce_weighted`.
        dtype: the dtype to compute in (`'float32'`, `torch.bfloat16`, ...); inputs are cast
            to it. None (default) keeps the predictions' dtype, and converts arrays and lists
            to `torch.get_default_dtype()`.

    Example:
        >>> loss = kfit.losses.MeanSquaredError()
        >>> float(loss(torch.zeros(2, 1), torch.ones(2, 1)))
        1.0
    """

    def __init__(
        self,
        name: str | None = None,
        reduction: Reduction | None = "sum_over_batch_size",
        dtype: str | torch.dtype | None = None,
    ):
        if reduction not in _REDUCTIONS:
            raise ValueError(
                "Invalid value for argument `reduction`. Expected one of "
                f"{[r for r in _REDUCTIONS if r]} or None. Received: reduction={reduction!r}"
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be a string or None; got {name!r}.")
        self.name = name or snake_case(type(self).__name__)
        self.reduction = reduction
        self._dtype = _dtype_from(dtype)

    @property
    def dtype(self) -> str | None:
        """The dtype the loss computes in, by name (None: the predictions' own)."""
        return None if self._dtype is None else str(self._dtype).removeprefix("torch.")

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        """Returns the per-sample losses; subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred).")

    def compute_mask(
        self, y_true: torch.Tensor, y_pred: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor | None:
        """The entries of `values` the reduction counts (None: all of them)."""
        return None

    def convert_inputs(
        self, y_true: Any, y_pred: Any, sample_weight: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Turns arrays and lists into tensors on `y_pred`'s device, in the loss's dtype.

        Floating inputs (and all predictions) take `dtype`; integer targets stay integers
        (class ids), as the loss functions cast them where they need to.
        """
        dtype = self._dtype
        if not isinstance(y_pred, torch.Tensor):
            y_pred = torch.as_tensor(np.asarray(y_pred), dtype=dtype or torch.get_default_dtype())
        elif dtype is not None and y_pred.dtype != dtype:
            y_pred = y_pred.to(dtype)
        elif not (y_pred.is_floating_point() or y_pred.is_complex()):
            y_pred = y_pred.to(torch.get_default_dtype())
        float_dtype = dtype or y_pred.dtype
        y_true = _as_tensor(y_true, float_dtype, y_pred.device)
        if sample_weight is not None:
            sample_weight = _as_tensor(sample_weight, float_dtype, y_pred.device)
        return y_true, y_pred, sample_weight

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> torch.Tensor:
        """The reduced loss.

        Args:
            y_true: the targets.
            y_pred: the predictions.
            sample_weight: one weight per sample, or per element of the per-sample losses.

        Returns:
            A scalar, or the weighted per-sample losses when `reduction` is `'none'`/None.
        """
        y_true, y_pred, sample_weight = self.convert_inputs(y_true, y_pred, sample_weight)
        values = _checked_values(self.call(y_true, y_pred), self.name)
        mask = self.compute_mask(y_true, y_pred, values)
        loss = reduce_weighted(values, sample_weight, self.reduction, mask)
        return loss if self._dtype is None else loss.to(self._dtype)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, as plain values (Keras's keys)."""
        config: dict[str, Any] = {"name": self.name, "reduction": self.reduction}
        if self._dtype is not None:
            config["dtype"] = self.dtype
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Loss:
        """Builds the loss from `get_config()`'s dict (Keras's own config dict also works)."""
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _checked_values(values: Any, name: str) -> torch.Tensor:
    """`values`, or a `TypeError` naming the loss when its function returned no tensor."""
    if not isinstance(values, torch.Tensor):
        what = "None" if values is None else f"a {type(values).__name__} ({values!r:.40})"
        raise TypeError(
            f"The loss {name!r} returned {what}; a loss function must return a tensor (one "
            "value per sample, or a scalar)."
        )
    return values


def _as_tensor(value: Any, float_dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        value = torch.as_tensor(np.asarray(value))
        if value.dtype == torch.float64:
            value = value.to(float_dtype)
    if value.is_floating_point() and value.dtype != float_dtype or value.dtype == torch.bool:
        value = value.to(float_dtype)
    if value.device != device:
        value = value.to(device)
    return value


#: The methods a fused batch mean stands in for (see `LossFunctionWrapper.fused_mean_allowed`).
_FUSED_STAND_INS = ("__call__", "call", "compute_mask", "convert_inputs")


def _defining_module(cls: type, method: str) -> str:
    """The module of the class in `cls`'s MRO that defines `method`."""
    owner = next(klass for klass in cls.__mro__ if method in vars(klass))
    return owner.__module__


class LossFunctionWrapper(Loss):
    """Turns a per-sample function `fn(y_true, y_pred, **kwargs)` into a `Loss`.

    Two paths give the same number: the general one (`call`, `compute_mask`, then
    `reduce_weighted`), and, for an unweighted mean of a function with an entry in
    `BATCH_MEANS`, that entry's fused batch mean (fewer kernels per step). `batch_mean` is the
    one place that chooses between them; `__call__` and `kfit.compiled`'s step loss both ask it.

    Args:
        fn: the per-sample loss function.
        reduction: how per-sample values are combined.
        name: the name used in logs; defaults to `fn.__name__`.
        dtype: the dtype to compute in; see `Loss`.
        **kwargs: options passed to `fn` on every call.
    """

    #: Whether this class may use the fused batch means. A fused mean stands in for `call`,
    #: `compute_mask`, `convert_inputs` and `__call__` as kfit defines them (its entry declines
    #: the options those would change, e.g. `ignore_class`), so a subclass that overrides one
    #: of them outside kfit always takes the general path. Set per class, when it is defined.
    fused_mean_allowed: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.fused_mean_allowed = all(
            _defining_module(cls, method).startswith("kfit.") for method in _FUSED_STAND_INS
        )

    def __init__(
        self,
        fn: Callable[..., torch.Tensor],
        reduction: Reduction | None = "sum_over_batch_size",
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
        **kwargs: Any,
    ):
        if not callable(fn):
            raise TypeError(f"`fn` must be a function f(y_true, y_pred); got {fn!r}.")
        super().__init__(
            name=name or getattr(fn, "__name__", "loss"), reduction=reduction, dtype=dtype
        )
        self.fn = fn
        self.fn_kwargs = kwargs

    @property
    def fn(self) -> Callable[..., torch.Tensor]:
        """The per-sample loss function; setting it chooses its fused batch mean again."""
        return self._fn

    @fn.setter
    def fn(self, fn: Callable[..., torch.Tensor]) -> None:
        self._fn = fn
        fused = None
        if type(self).fused_mean_allowed:
            try:
                fused = BATCH_MEANS.get(fn)
            except TypeError:  # an unhashable callable object has no entry
                fused = None
        self._fused_mean = fused

    @property
    def has_batch_mean(self) -> bool:
        """Whether `batch_mean` may apply: `fn` has a fused mean and `reduction` is a mean.

        The fused function can still decline particular options or inputs (then `batch_mean`
        returns None); `kfit.compiled` reads this once, at build, to skip asking at all.
        """
        return self._fused_mean is not None and self.reduction in _MEAN_REDUCTIONS

    def batch_mean(self, y_true: Any, y_pred: Any) -> torch.Tensor | None:
        """The unweighted loss by the fused path, or None where only the general path applies.

        It applies when `fn` has an entry in `BATCH_MEANS`, `reduction` is
        `'sum_over_batch_size'`/`'mean'`, the class keeps kfit's own methods
        (`fused_mean_allowed`), and the entry covers these options and inputs.

        Args:
            y_true: the targets.
            y_pred: the predictions.

        Returns:
            `self(y_true, y_pred)` without sample weights (the same value as the general path,
            to rounding), or None.
        """
        fused = self._fused_mean
        if fused is None or self.reduction not in _MEAN_REDUCTIONS:
            return None
        if self._dtype is not None or not (
            isinstance(y_true, torch.Tensor) and isinstance(y_pred, torch.Tensor)
        ):
            y_true, y_pred, _ = self.convert_inputs(y_true, y_pred)
        options = self.fn_kwargs
        return fused(y_true, y_pred, **options) if options else fused(y_true, y_pred)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return self.fn(y_true, y_pred, **self.fn_kwargs)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> torch.Tensor:
        if sample_weight is None:
            loss = self.batch_mean(y_true, y_pred)
            if loss is not None:
                return loss
        return super().__call__(y_true, y_pred, sample_weight)

    def get_config(self) -> dict[str, Any]:
        """`{name, reduction, fn, **options}` for a plain wrapper; subclasses drop `fn`."""
        config = super().get_config()
        if type(self) is LossFunctionWrapper:
            config["fn"] = getattr(self.fn, "__name__", repr(self.fn))
        return {**config, **self.fn_kwargs}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Loss:
        config = dict(config)
        if cls is LossFunctionWrapper:
            from kfit.losses import get  # the registry resolves the function's name

            fn = config.pop("fn")
            config["fn"] = get(fn) if isinstance(fn, str) else fn
        return cls(**config)

    @property
    def from_logits(self) -> bool:
        """Whether the wrapped function takes logits."""
        return bool(self.fn_kwargs.get("from_logits", False))
