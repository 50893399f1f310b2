"""Reduction metrics: `Mean`, `Sum` and `MeanMetricWrapper` (the mean of a per-sample function).

They accumulate as Keras's `reduction_metrics` do: each batch's values are first reduced to one
value per sample (the mean over every axis after the first), then summed; a sample weight of
lower rank than the values weighs the mean of the axes it does not cover, and per-element
weights count as their per-sample mean.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from kfit.internals import mark_updated
from kfit.metrics.base import (
    Accumulator,
    Metric,
    as_tensor,
    squeeze_or_expand_to_same_rank,
)
from kfit.registry import snake_case

__all__ = ["BATCH_SUMS", "Mean", "MeanMetricWrapper", "Sum", "samplewise_total", "weighted_sums"]

#: The fast paths of the metrics. Per-sample function `fn` (used without options) ->
#: `batch_sum(y_true, y_pred)` returning `(sum of per-sample values, number of samples)` in
#: fewer kernels: the same as `samplewise_total(fn(y_true, y_pred).sum(), shape)`. The modules
#: defining the functions fill it in; `MeanMetricWrapper` is the only place that chooses an
#: entry, and tests/test_fast_paths.py checks every entry against the per-sample path.
BATCH_SUMS: dict[Callable[..., torch.Tensor], Callable[..., tuple[torch.Tensor, int]]] = {}


def samplewise_total(total: torch.Tensor, shape: torch.Size) -> tuple[torch.Tensor, int]:
    """`(total, count)` of per-sample means for values of `shape` summing to `total`.

    Keras averages each sample's values (every axis after the first) and counts samples; a
    scalar is one sample.
    """
    if len(shape) == 0:
        return total, 1
    samples = shape[0]
    per_sample = 1
    for size in shape[1:]:
        per_sample *= size
    if per_sample == 1 or samples == 0 or per_sample == 0:
        return total, samples
    return total / per_sample, samples


def weighted_sums(
    values: torch.Tensor, sample_weight: torch.Tensor, reduce: str = "mean"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keras's `reduce_to_samplewise_values`, summed over the batch.

    Args:
        values: the batch's values.
        sample_weight: weights of rank up to the values' (broadcastable after Keras's
            squeeze/expand of a trailing size-1 axis).
        reduce: `'mean'` (Mean's per-sample reduction) or `'sum'` (Sum's).

    Returns:
        `(sum of weighted per-sample values, sum of per-sample weights)`.
    """
    weight = sample_weight.to(values.dtype)
    values, weight = squeeze_or_expand_to_same_rank(values, weight)
    reducer = torch.mean if reduce == "mean" else torch.sum
    if values.dim() > weight.dim():
        values = reducer(values, dim=tuple(range(weight.dim(), values.dim())))
    weight = torch.broadcast_to(weight, values.shape)
    total, count = (values * weight).sum(), weight.sum()
    if reduce == "mean" and values.dim() > 1:
        per_sample = values[0].numel() if values.shape[0] else 0
        if per_sample > 1:
            total, count = total / per_sample, count / per_sample
    return total, count


def _float_values(values: torch.Tensor) -> torch.Tensor:
    return values if values.is_floating_point() else values.float()


class Mean(Accumulator):
    """The (weighted) mean of the values it is given, as Keras's `Mean`.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.

    Example:
        >>> m = kfit.metrics.Mean()
        >>> m.update(torch.tensor([1.0, 3.0]))
        >>> float(m.compute())
        2.0
    """

    total: torch.Tensor  # the states, typed (nn.Module's attributes are not)
    count: torch.Tensor

    def __init__(self, name: str = "mean", dtype: Any = None):
        super().__init__(name=name, dtype=dtype)

    def update(self, values: torch.Tensor, sample_weight: torch.Tensor | None = None) -> None:
        values = _float_values(values)
        if sample_weight is None:
            self._accumulate(*samplewise_total(values.sum(), values.shape))
            return
        self._accumulate(*weighted_sums(values, sample_weight))

    def update_state(  # type: ignore[override]  # Keras's Mean: (values, sample_weight)
        self, values: Any, sample_weight: Any = None
    ) -> None:
        """Keras spelling of `update` (takes tensors, lists or arrays)."""
        self.update(as_tensor(values, self.device), as_tensor(sample_weight, self.device))


class Sum(Metric):
    """The (weighted) sum of the values it is given, as Keras's `Sum`.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the state.

    Example:
        >>> m = kfit.metrics.Sum()
        >>> m.update(torch.tensor([1.0, 3.0, 5.0, 7.0]), torch.tensor([1.0, 1.0, 0.0, 0.0]))
        >>> float(m.compute())
        4.0
    """

    total: torch.Tensor  # the state, typed (nn.Module's attributes are not)

    def __init__(self, name: str = "sum", dtype: Any = None):
        super().__init__(name=name, dtype=dtype)
        self.add_state("total", torch.zeros(()), dist_reduce_fx="sum")

    def update(self, values: torch.Tensor, sample_weight: torch.Tensor | None = None) -> None:
        values = _float_values(values)
        if sample_weight is None:
            self.total.add_(values.sum())
        else:
            self.total.add_(weighted_sums(values, sample_weight, reduce="sum")[0])

    def update_state(  # type: ignore[override]  # Keras's Sum: (values, sample_weight)
        self, values: Any, sample_weight: Any = None
    ) -> None:
        """Keras spelling of `update` (takes tensors, lists or arrays)."""
        self.update(as_tensor(values, self.device), as_tensor(sample_weight, self.device))

    def compute(self) -> torch.Tensor:
        return self.total


class MeanMetricWrapper(Accumulator):
    """The weighted mean over samples of a per-sample function `fn(y_true, y_pred)`.

    The epoch value is the sample-weighted mean, over every sample seen, of `fn`'s values
    averaged within each sample (`w = 1` without weights), accumulated on the device.

    Two paths give the same value: the general one (`fn`, then a per-sample reduction), and,
    for an unweighted update of a function with an entry in `BATCH_SUMS` and no options, that
    entry's batch sum. The entry is chosen when `fn` is set; `update` takes it for unweighted
    batches, and `fast_update` offers it to per-step callers (the compiled metrics).

    Args:
        fn: a per-sample function such as `kfit.metrics.mean_absolute_error`.
        name: the name shown in logs; defaults to `fn.__name__`.
        dtype: the dtype of the states.
        higher_is_better: the metric's direction, used by monitoring callbacks.
        **kwargs: options passed to `fn`.

    Example:
        >>> m = kfit.metrics.MeanMetricWrapper(kfit.metrics.mean_absolute_error)
        >>> m.update(torch.ones(4, 1), torch.zeros(4, 1))
        >>> float(m.compute())
        1.0
    """

    higher_is_better = False
    total: torch.Tensor  # the states, typed (nn.Module's attributes are not)
    count: torch.Tensor
    _fn: Callable[..., torch.Tensor]
    _batch_sum: Callable[..., tuple[torch.Tensor, int]] | None

    def __init__(
        self,
        fn: Callable[..., torch.Tensor],
        name: str | None = None,
        dtype: Any = None,
        higher_is_better: bool | None = None,
        **kwargs: Any,
    ):
        super().__init__(name=name or snake_case(getattr(fn, "__name__", "metric")), dtype=dtype)
        self.fn_kwargs = kwargs
        self.fn = fn
        if higher_is_better is not None:
            self.direction = "up" if higher_is_better else "down"

    @property
    def fn(self) -> Callable[..., torch.Tensor]:
        """The per-sample function; setting it chooses its batch sum again."""
        return self._fn

    @fn.setter
    def fn(self, fn: Callable[..., torch.Tensor]) -> None:
        self._fn = fn
        batch_sum = None
        if not self.fn_kwargs:  # the batch sums take no options
            try:
                batch_sum = BATCH_SUMS.get(fn)
            except TypeError:  # an unhashable callable object has no entry
                batch_sum = None
        self._batch_sum = batch_sum

    @property
    def fast_update(self) -> Callable[..., None] | None:
        """`f(preds, target, *ignored)`: one unweighted update in one call, or None.

        For a caller that updates the metric once per step without sample weights and with
        gradients off (the compiled metrics): the batch sum, with the update wrapper's
        bookkeeping written inline. None when `fn` has no batch sum, or when a subclass
        overrides `update`: such a metric must always be updated through its `update`.
        """
        if self._batch_sum is None or type(self).update is not MeanMetricWrapper.update:
            return None
        return self._update_unweighted

    def update(
        self, preds: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> None:
        if sample_weight is None and self._batch_sum is not None:
            total, count = self._batch_sum(target, preds)
            self.total.add_(total)  # the hot path, inlined: one device op per step
            self.__dict__["_host_count"] += count
            return
        values = _float_values(self.fn(target, preds, **self.fn_kwargs))
        if sample_weight is None:
            self._accumulate(*samplewise_total(values.sum(), values.shape))
            return
        self._accumulate(*weighted_sums(values, sample_weight))

    def _update_unweighted(self, preds: torch.Tensor, target: torch.Tensor, *_: Any) -> None:
        """`update(preds, target)` for the compiled metrics' per-step call (gradients off).

        The update wrapper's bookkeeping is written inline: this is the common metric
        update of every step (a `'mae'`, an `'accuracy'`), and each Python call counts for
        small models. Reached through `fast_update` (which checks that it applies).
        """
        assert self._batch_sum is not None  # for mypy: `fast_update` checked it
        state = self.__dict__
        mark_updated(state)
        total, count = self._batch_sum(target, preds)
        state["total"].add_(total)
        state["_host_count"] += count

    def get_config(self) -> dict[str, Any]:
        """Keras's config: `name`, `dtype` and the options passed to `fn`.

        A plain `MeanMetricWrapper` records `fn` itself too.
        """
        config: dict[str, Any] = {"name": self.name, "dtype": self.dtype_name, **self.fn_kwargs}
        if type(self) is MeanMetricWrapper:
            config["fn"] = self.fn
        return config
