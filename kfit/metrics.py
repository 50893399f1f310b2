"""Metrics with Keras 3's names and formulas, as torchmetrics accumulators.

Every metric here is a `torchmetrics.Metric`: its state lives on the model's device, it syncs
across processes, and `update` never reads a value back to the host. A metric's epoch value is
the exact (sample-weighted) mean over every sample seen, whatever the batch size.

Argument order: `update(preds, target, sample_weight=None)` follows torchmetrics; the Keras
spellings `update_state(y_true, y_pred, sample_weight=None)` and `result()` are aliases.

The per-sample functions are the loss functions themselves:
`kfit.metrics.mean_squared_error is kfit.losses.mean_squared_error`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torchmetrics
from lightning_utilities import apply_to_collection

from kfit.losses import (
    _l1_sum,
    _l2_normalize,
    _mse_sum,
    _snake_case,
    binary_crossentropy,
    categorical_crossentropy,
    categorical_hinge,
    cosine_distance,
    hinge,
    kl_divergence,
    log_cosh,
    match_shapes,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
    poisson,
    sparse_categorical_crossentropy,
    sparse_labels,
    squared_hinge,
    unknown_id_error,
)
from kfit.variables import MetricVariable, _unwrap

__all__ = [
    "AUC",
    "Accuracy",
    "BinaryIoU",
    "BinaryAccuracy",
    "BinaryCrossentropy",
    "CategoricalAccuracy",
    "CategoricalCrossentropy",
    "CategoricalHinge",
    "ConcordanceCorrelation",
    "CosineDistance",
    "CosineSimilarity",
    "F1Score",
    "FBetaScore",
    "FalseNegatives",
    "FalsePositives",
    "Hinge",
    "IoU",
    "KLDivergence",
    "LogCoshError",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "Mean",
    "MeanMetricWrapper",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "Metric",
    "OneHotIoU",
    "OneHotMeanIoU",
    "PearsonCorrelation",
    "Poisson",
    "Precision",
    "R2Score",
    "Recall",
    "RootMeanSquaredError",
    "SparseCategoricalAccuracy",
    "SparseCategoricalCrossentropy",
    "SparseTopKCategoricalAccuracy",
    "SquaredHinge",
    "TopKCategoricalAccuracy",
    "TrueNegatives",
    "TruePositives",
    "binary_accuracy",
    "binary_crossentropy",
    "categorical_accuracy",
    "categorical_crossentropy",
    "categorical_hinge",
    "concordance_correlation",
    "cosine_distance",
    "get",
    "hinge",
    "kl_divergence",
    "log_cosh",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_logarithmic_error",
    "pearson_correlation",
    "poisson",
    "sparse_categorical_accuracy",
    "sparse_categorical_crossentropy",
    "sparse_top_k_categorical_accuracy",
    "squared_hinge",
    "top_k_categorical_accuracy",
]


# --------------------------------------------------------------------------- functions


def binary_accuracy(
    y_true: torch.Tensor, y_pred: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    """Fraction of entries where `y_pred > threshold` equals the 0/1 target (last axis)."""
    y_true, y_pred = match_shapes(y_true, y_pred, "binary_accuracy")
    return ((y_pred > threshold).to(y_pred.dtype) == y_true).to(y_pred.dtype).mean(-1)


def categorical_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """1 where the arg-max of the one-hot target equals the arg-max of the prediction."""
    y_true, y_pred = match_shapes(y_true, y_pred, "categorical_accuracy")
    return (y_true.argmax(-1) == y_pred.argmax(-1)).to(y_pred.dtype)


def sparse_categorical_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """1 where the integer target equals the arg-max of the prediction."""
    labels = sparse_labels(y_true, y_pred, "sparse_categorical_accuracy")
    return (labels == y_pred.argmax(-1)).to(y_pred.dtype)


def _in_top_k(labels: torch.Tensor, y_pred: torch.Tensor, k: int, fn_name: str) -> torch.Tensor:
    num_classes = y_pred.shape[-1]
    if k > num_classes:
        raise ValueError(
            f"`{fn_name}` needs k <= the number of classes; got k={k} for {num_classes} classes."
        )
    top = y_pred.topk(k, dim=-1).indices
    return (top == labels.unsqueeze(-1)).any(-1).to(y_pred.dtype)


def top_k_categorical_accuracy(
    y_true: torch.Tensor, y_pred: torch.Tensor, k: int = 5
) -> torch.Tensor:
    """1 where the one-hot target's class is among the `k` highest predictions."""
    y_true, y_pred = match_shapes(y_true, y_pred, "top_k_categorical_accuracy")
    return _in_top_k(y_true.argmax(-1), y_pred, k, "top_k_categorical_accuracy")


def sparse_top_k_categorical_accuracy(
    y_true: torch.Tensor, y_pred: torch.Tensor, k: int = 5, from_sorted_ids: bool = False
) -> torch.Tensor:
    """1 where the integer target is among the `k` highest predictions.

    With `from_sorted_ids=True`, `y_pred` already holds class ids sorted by score.
    """
    if from_sorted_ids:
        labels = sparse_labels(y_true, y_pred, "sparse_top_k_categorical_accuracy")
        return (y_pred[..., :k] == labels.unsqueeze(-1)).any(-1).float()
    labels = sparse_labels(y_true, y_pred, "sparse_top_k_categorical_accuracy")
    return _in_top_k(labels, y_pred, k, "sparse_top_k_categorical_accuracy")


def _equal_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    y_true, y_pred = match_shapes(y_true, y_pred, "accuracy")
    return (y_true == y_pred).to(y_pred.dtype).mean(-1)


def _positive_cosine(y_true: torch.Tensor, y_pred: torch.Tensor, axis: int = -1):
    y_true, y_pred = match_shapes(y_true, y_pred, "cosine_similarity")
    return (_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis)).sum(axis)


def pearson_correlation(y_true: torch.Tensor, y_pred: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Pearson correlation between target and prediction along `axis`, per sample."""
    y_true, y_pred = match_shapes(y_true, y_pred, "pearson_correlation")
    true_c = y_true - y_true.mean(axis, keepdim=True)
    pred_c = y_pred - y_pred.mean(axis, keepdim=True)
    return (_l2_normalize(true_c, axis) * _l2_normalize(pred_c, axis)).sum(axis)


def concordance_correlation(
    y_true: torch.Tensor, y_pred: torch.Tensor, axis: int = -1
) -> torch.Tensor:
    """Lin's concordance correlation between target and prediction along `axis`, per sample."""
    y_true, y_pred = match_shapes(y_true, y_pred, "concordance_correlation")
    true_mean = y_true.mean(axis, keepdim=True)
    pred_mean = y_pred.mean(axis, keepdim=True)
    covariance = ((y_true - true_mean) * (y_pred - pred_mean)).mean(axis)
    spread = y_true.var(axis, unbiased=False) + y_pred.var(axis, unbiased=False)
    gap = torch.square(true_mean - pred_mean).squeeze(axis)
    return 2.0 * covariance / (spread + gap + 1e-7)


# --------------------------------------------------------------------------- batch sums
# The sum over a batch of some per-sample metrics, and how many per-sample values it covers,
# in fewer device operations than `fn(...).sum()`; used for unweighted updates.


def _per_sample_total(total: torch.Tensor, y_pred: torch.Tensor) -> tuple[torch.Tensor, int]:
    # Per-sample values are means over the last axis: divide the grand total by its length.
    if y_pred.dim() == 0:
        return total, 1
    width = y_pred.shape[-1]
    return (total if width == 1 else total / width), y_pred.numel() // max(width, 1)


def _mae_batch_sum(y_true, y_pred):
    y_true, y_pred = match_shapes(y_true, y_pred, "mean_absolute_error")
    return _per_sample_total(_l1_sum(y_pred, y_true), y_pred)  # one kernel


def _mse_batch_sum(y_true, y_pred):
    y_true, y_pred = match_shapes(y_true, y_pred, "mean_squared_error")
    if not y_pred.is_floating_point():  # the ATen op has no integer kernel
        return _per_sample_total((y_pred - y_true).square().sum(), y_pred)
    return _per_sample_total(_mse_sum(y_pred, y_true), y_pred)


def _sparse_accuracy_batch_sum(y_true, y_pred):
    labels = sparse_labels(y_true, y_pred, "sparse_categorical_accuracy")
    return (labels == y_pred.argmax(-1)).sum(), labels.numel()


def _categorical_accuracy_batch_sum(y_true, y_pred):
    y_true, y_pred = match_shapes(y_true, y_pred, "categorical_accuracy")
    return (y_true.argmax(-1) == y_pred.argmax(-1)).sum(), y_pred.numel() // y_pred.shape[-1]


# --------------------------------------------------------------------------- base classes


def _squeezed_copy(value: Any) -> Any:
    """What torchmetrics' `compute` returns: one-element tensors squeezed, tensors copied."""
    if isinstance(value, torch.Tensor):
        return (value.squeeze() if value.dim() and value.numel() == 1 else value).clone()
    return apply_to_collection(value, torch.Tensor, _squeezed_copy)


class Metric(torchmetrics.Metric):
    """Base of kfit's metrics: a torchmetrics metric with a Keras name and Keras aliases.

    Subclasses declare state with `add_state` and implement `update(preds, target,
    sample_weight=None)` and `compute()`, as in torchmetrics.

    Args:
        name: the name shown in logs and History.
    """

    full_state_update = False

    def __init__(self, name: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.name = name or _snake_case(type(self).__name__)
        #: 'up' when higher values are better, else 'down' (Keras's `_direction`).
        self.direction = "up" if self.higher_is_better else "down"

    def _wrap_update(self, update: Callable[..., None]) -> Callable[..., None]:
        # torchmetrics wraps `update` to reset its compute cache and count calls; its wrapper
        # goes through nn.Module.__setattr__ twice per call, which costs more than a small
        # model's whole step. This one keeps the same bookkeeping, written directly.
        state = self.__dict__

        def wrapped(*args: Any, **kwargs: Any) -> None:
            state["_computed"] = None
            state["_update_count"] += 1
            if torch.is_grad_enabled():
                with torch.no_grad():
                    update(*args, **kwargs)
            else:
                update(*args, **kwargs)

        return wrapped

    def _wrap_compute(self, compute: Callable[..., Any]) -> Callable[..., Any]:
        # torchmetrics' compute wrapper gathers states across processes inside a sync
        # context, which costs ~50 µs per metric even in one process. Outside torch.distributed
        # there is nothing to gather: the same value is computed directly (cloned and cached,
        # as torchmetrics does). Under torchrun, and before any update (for torchmetrics'
        # warning), its wrapper runs.
        synced = super()._wrap_compute(compute)
        state = self.__dict__

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if state["_computed"] is not None:
                return state["_computed"]
            if not state["_update_count"] or self.distributed_available_fn():
                return synced(*args, **kwargs)
            value = _squeezed_copy(compute(*args, **kwargs))
            if self.compute_with_cache:
                state["_computed"] = value
            return value

        return wrapped

    #: True for a subclass written the Keras way (`update_state`/`result`, not
    #: `update`/`compute`): `update` then takes Keras's argument order.
    keras_style = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A Keras-style subclass: `update`/`compute` (which torchmetrics wraps with its
        # bookkeeping and cache) call the user's `update_state`/`result`, and the Keras
        # names call the wrapped ones, so both spellings count updates and clear the cache.
        if "update_state" in cls.__dict__ and getattr(cls.update, "__isabstractmethod__", False):
            cls.keras_style = True
            cls._keras_update_state = cls.__dict__["update_state"]
            cls.update = _keras_update
            cls.update_state = _keras_update_state
        if "result" in cls.__dict__ and getattr(cls.compute, "__isabstractmethod__", False):
            cls._keras_result = cls.__dict__["result"]
            cls.compute = _keras_compute
            cls.result = Metric.result

    def add_variable(
        self,
        shape: tuple[int, ...] | list[int] = (),
        initializer: Any = "zeros",
        dtype: Any = None,
        aggregation: str = "sum",
        name: str | None = None,
    ) -> MetricVariable:
        """Adds a state, Keras style; returns a variable with `assign`/`assign_add`.

        The state is a torchmetrics state: it moves with the metric to the model's device,
        `reset()` puts it back to its initial value, and it is summed (or averaged, with
        `aggregation='mean'`) across processes under torchrun.

        Args:
            shape: the state's shape.
            initializer: `'zeros'`, `'ones'`, a number, a tensor, or a function
                `(shape, dtype) -> tensor`.
            dtype: a torch dtype or its name (default float32).
            aggregation: `'sum'`, `'mean'`, `'max'`, `'min'` or `'cat'` across processes.
            name: the state's name (default `variable_<n>`).

        Returns:
            A `kfit.variables.MetricVariable`.

        Raises:
            ValueError: for an unknown `initializer` or `aggregation`, or a name in use.
        """
        if aggregation not in ("sum", "mean", "max", "min", "cat"):
            raise ValueError(
                f"`aggregation` must be 'sum', 'mean', 'max', 'min' or 'cat'; got {aggregation!r}."
            )
        dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype or torch.float32
        shape = tuple(shape)
        if callable(initializer) and not isinstance(initializer, torch.Tensor):
            default = torch.as_tensor(initializer(shape, dtype), dtype=dtype)
        elif isinstance(initializer, str):
            fills = {"zeros": 0.0, "ones": 1.0}
            if initializer not in fills:
                raise ValueError(
                    f"`initializer` must be 'zeros', 'ones', a number, a tensor or a function; "
                    f"got {initializer!r}."
                )
            default = torch.full(shape, fills[initializer], dtype=dtype)
        else:
            default = torch.broadcast_to(torch.as_tensor(initializer, dtype=dtype), shape)
        name = name or f"variable_{len(self._defaults)}"
        # Stored apart from the name, which the subclass often gives its attribute too.
        state = f"keras_variable_{name}"
        if state in self._defaults:
            raise ValueError(f"The metric {self.name!r} already has a variable named {name!r}.")
        self.add_state(state, default.clone(), dist_reduce_fx=aggregation)
        return MetricVariable(self, state, name)

    def add_weight(
        self,
        shape: tuple[int, ...] | list[int] = (),
        initializer: Any = "zeros",
        dtype: Any = None,
        aggregation: str = "sum",
        name: str | None = None,
    ) -> MetricVariable:
        """Keras's older name for `add_variable`."""
        return self.add_variable(shape, initializer, dtype, aggregation, name)

    def update_state(
        self, y_true: torch.Tensor, y_pred: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> None:
        """Keras spelling of `update` (note the argument order: target first)."""
        self.update(y_pred, y_true, sample_weight)

    def result(self) -> torch.Tensor:
        """Keras spelling of `compute`."""
        return self.compute()

    def reset_state(self) -> None:
        """Keras spelling of `reset`."""
        self.reset()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class _Accumulator(Metric):
    """A sum and a count on the device; the value is their ratio.

    Counts that are plain Python numbers (batch sizes, element counts) are kept on the host and
    folded into the `count` state before any read or sync, which saves one device operation
    per update.
    """

    def __init__(self, name: str | None = None):
        super().__init__(name=name)
        self.add_state("total", torch.zeros(()), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(()), dist_reduce_fx="sum")
        self._host_count = 0

    def _accumulate(self, total: torch.Tensor, count: int | torch.Tensor) -> None:
        self.total.add_(total)
        self._accumulate_count(count)

    def _accumulate_count(self, count: int | torch.Tensor) -> None:
        if isinstance(count, torch.Tensor):
            self.count.add_(count)
        else:
            self.__dict__["_host_count"] += count  # not nn.Module.__setattr__: hot path

    def _fold_host_count(self) -> None:
        if self._host_count:
            self.count.add_(self._host_count)
            self.__dict__["_host_count"] = 0

    def sync(self, *args: Any, **kwargs: Any) -> None:
        self._fold_host_count()
        super().sync(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self._fold_host_count()  # torchmetrics snapshots the states, then resets
        return super().forward(*args, **kwargs)

    def merge_state(self, incoming_state: Any) -> None:
        self._fold_host_count()
        if isinstance(incoming_state, _Accumulator):
            incoming_state._fold_host_count()
        super().merge_state(incoming_state)

    @property
    def metric_state(self) -> dict[str, Any]:
        """The state as in torchmetrics' `metric_state`, the host-side count folded in first."""
        self._fold_host_count()
        return super().metric_state

    def compute(self) -> torch.Tensor:
        self._fold_host_count()
        return self.total / self.count

    def reset(self) -> None:
        # torchmetrics' reset, minus nn.Module.__setattr__ per state (~25 µs a metric, paid
        # by every metric every epoch). New zero tensors, not zeroed in place: torchmetrics'
        # `forward` keeps the old ones to merge back.
        state = self.__dict__
        for name, default in self._defaults.items():
            if not isinstance(default, torch.Tensor):  # a subclass's list state
                super().reset()
                break
            state[name] = default.detach().clone().to(state[name].device)
        state.update(
            _update_count=0,
            _forward_cache=None,
            _computed=None,
            _cache=None,
            _is_synced=False,
            _host_count=0,
        )


def _keras_update(self: Metric, *args: Any, **kwargs: Any) -> None:
    self._keras_update_state(*args, **kwargs)


def _keras_update_state(self: Metric, *args: Any, **kwargs: Any) -> None:
    self.update(*args, **kwargs)


def _keras_compute(self: Metric) -> Any:
    return _unwrap(self._keras_result())


class Mean(_Accumulator):
    """The (weighted) mean of the values it is given, as Keras's `Mean`.

    Args:
        name: the name shown in logs.

    Example:
        >>> m = kfit.metrics.Mean()
        >>> m.update(torch.tensor([1.0, 3.0]))
        >>> float(m.compute())
        2.0
    """

    def update(self, values: torch.Tensor, sample_weight: torch.Tensor | None = None) -> None:
        if sample_weight is None:
            self._accumulate(values.sum(), values.numel())
            return
        weight = torch.broadcast_to(_expand_weight(sample_weight, values), values.shape)
        self._accumulate((values * weight).sum(), weight.sum())

    def update_state(self, values: torch.Tensor, sample_weight: torch.Tensor | None = None):
        """Keras spelling of `update`."""
        self.update(values, sample_weight)


def _expand_weight(sample_weight: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    weight = sample_weight.to(values.dtype)
    while weight.dim() < values.dim():
        weight = weight.unsqueeze(-1)
    return weight.reshape(weight.shape[: values.dim()])


class MeanMetricWrapper(_Accumulator):
    """The weighted mean over samples of a per-sample function `fn(y_true, y_pred)`.

    The epoch value is `sum(w * fn) / sum(w)` over every sample seen (`w = 1` without weights),
    accumulated on the device.

    Args:
        fn: a per-sample function such as `kfit.metrics.mean_absolute_error`.
        name: the name shown in logs; defaults to `fn.__name__`.
        higher_is_better: the metric's direction, used by monitoring callbacks.
        **kwargs: options passed to `fn`.

    Example:
        >>> m = kfit.metrics.MeanMetricWrapper(kfit.metrics.mean_absolute_error)
        >>> m.update(torch.ones(4, 1), torch.zeros(4, 1))
        >>> float(m.compute())
        1.0
    """

    higher_is_better = False

    def __init__(
        self,
        fn: Callable[..., torch.Tensor],
        name: str | None = None,
        higher_is_better: bool | None = None,
        **kwargs: Any,
    ):
        super().__init__(name=name or _snake_case(getattr(fn, "__name__", "metric")))
        self.fn = fn
        self.fn_kwargs = kwargs
        self._batch_sum = _BATCH_SUMS.get(fn) if not kwargs else None
        if higher_is_better is not None:
            self.direction = "up" if higher_is_better else "down"

    def update(
        self, preds: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> None:
        if sample_weight is None and self._batch_sum is not None:
            total, count = self._batch_sum(target, preds)
            self.total.add_(total)  # the hot path, inlined: one device op per step
            self.__dict__["_host_count"] += count
            return
        values = self.fn(target, preds, **self.fn_kwargs)
        if sample_weight is None:
            self._accumulate(values.sum(), values.numel())
            return
        weight = torch.broadcast_to(_expand_weight(sample_weight, values), values.shape)
        self._accumulate((values * weight).sum(), weight.sum())

    def _update_unweighted(self, preds: torch.Tensor, target: torch.Tensor, *_: Any) -> None:
        """`update(preds, target)` for the compiled metrics' per-step call (gradients off).

        The update wrapper's bookkeeping is written inline: this is the common metric
        update of every step (a `'mae'`, an `'accuracy'`), and each Python call counts for
        small models. Only for functions with a batch sum (`_batch_sum` is not None).
        """
        state = self.__dict__
        state["_computed"] = None
        state["_update_count"] += 1
        total, count = self._batch_sum(target, preds)
        state["total"].add_(total)
        state["_host_count"] += count


def _mean_metric_class(
    fn,
    class_name: str,
    default_name: str,
    higher_is_better: bool,
    options: dict[str, Any] | None = None,
):
    """Makes a Keras metric class averaging `fn`, with keyword `options` and their defaults."""
    options = options or {}

    def __init__(self, name: str = default_name, **kwargs: Any):
        unknown = set(kwargs) - set(options)
        if unknown:
            raise TypeError(
                f"{class_name}() got unexpected arguments {sorted(unknown)}; "
                f"it takes {['name', *options]}."
            )
        MeanMetricWrapper.__init__(
            self, fn, name=name, higher_is_better=higher_is_better, **{**options, **kwargs}
        )

    shown = ", ".join(f"{k}={v!r}" for k, v in options.items())
    doc = (
        f"The mean of `{fn.__name__}` over the epoch ({'higher' if higher_is_better else 'lower'}"
        f" is better).\n\n    Args:\n        name: the name shown in logs (default "
        f"{default_name!r}).\n" + (f"        Options (defaults): {shown}.\n" if shown else "")
    )
    return type(
        class_name,
        (MeanMetricWrapper,),
        {
            "__init__": __init__,
            "__doc__": doc,
            "__module__": __name__,
            "higher_is_better": higher_is_better,
        },
    )


Accuracy = _mean_metric_class(_equal_accuracy, "Accuracy", "accuracy", True)
BinaryAccuracy = _mean_metric_class(
    binary_accuracy, "BinaryAccuracy", "binary_accuracy", True, {"threshold": 0.5}
)
CategoricalAccuracy = _mean_metric_class(
    categorical_accuracy, "CategoricalAccuracy", "categorical_accuracy", True
)
SparseCategoricalAccuracy = _mean_metric_class(
    sparse_categorical_accuracy, "SparseCategoricalAccuracy", "sparse_categorical_accuracy", True
)
TopKCategoricalAccuracy = _mean_metric_class(
    top_k_categorical_accuracy,
    "TopKCategoricalAccuracy",
    "top_k_categorical_accuracy",
    True,
    {"k": 5},
)
SparseTopKCategoricalAccuracy = _mean_metric_class(
    sparse_top_k_categorical_accuracy,
    "SparseTopKCategoricalAccuracy",
    "sparse_top_k_categorical_accuracy",
    True,
    {"k": 5, "from_sorted_ids": False},
)
MeanSquaredError = _mean_metric_class(
    mean_squared_error, "MeanSquaredError", "mean_squared_error", False
)
MeanAbsoluteError = _mean_metric_class(
    mean_absolute_error, "MeanAbsoluteError", "mean_absolute_error", False
)
MeanAbsolutePercentageError = _mean_metric_class(
    mean_absolute_percentage_error,
    "MeanAbsolutePercentageError",
    "mean_absolute_percentage_error",
    False,
)
MeanSquaredLogarithmicError = _mean_metric_class(
    mean_squared_logarithmic_error,
    "MeanSquaredLogarithmicError",
    "mean_squared_logarithmic_error",
    False,
)
CosineSimilarity = _mean_metric_class(
    _positive_cosine, "CosineSimilarity", "cosine_similarity", True, {"axis": -1}
)
CosineDistance = _mean_metric_class(
    cosine_distance, "CosineDistance", "cosine_distance", False, {"axis": -1}
)
LogCoshError = _mean_metric_class(log_cosh, "LogCoshError", "logcosh", False)
BinaryCrossentropy = _mean_metric_class(
    binary_crossentropy,
    "BinaryCrossentropy",
    "binary_crossentropy",
    False,
    {"from_logits": False, "label_smoothing": 0.0},
)
CategoricalCrossentropy = _mean_metric_class(
    categorical_crossentropy,
    "CategoricalCrossentropy",
    "categorical_crossentropy",
    False,
    {"from_logits": False, "label_smoothing": 0.0},
)
SparseCategoricalCrossentropy = _mean_metric_class(
    sparse_categorical_crossentropy,
    "SparseCategoricalCrossentropy",
    "sparse_categorical_crossentropy",
    False,
    {"from_logits": False, "ignore_class": None},
)
KLDivergence = _mean_metric_class(kl_divergence, "KLDivergence", "kl_divergence", False)
Poisson = _mean_metric_class(poisson, "Poisson", "poisson", False)
Hinge = _mean_metric_class(hinge, "Hinge", "hinge", False)
SquaredHinge = _mean_metric_class(squared_hinge, "SquaredHinge", "squared_hinge", False)
CategoricalHinge = _mean_metric_class(
    categorical_hinge, "CategoricalHinge", "categorical_hinge", False
)
PearsonCorrelation = _mean_metric_class(
    pearson_correlation, "PearsonCorrelation", "pearson_correlation", True, {"axis": -1}
)
ConcordanceCorrelation = _mean_metric_class(
    concordance_correlation, "ConcordanceCorrelation", "concordance_correlation", True, {"axis": -1}
)


class RootMeanSquaredError(MeanSquaredError):
    """`sqrt` of the epoch's mean squared error (not a mean of per-batch roots)."""

    def __init__(self, name: str = "root_mean_squared_error"):
        super().__init__(name=name)

    def compute(self) -> torch.Tensor:
        return torch.sqrt(super().compute())


# --------------------------------------------------------------------------- classification


def _binary_inputs(
    metric_name: str, preds: torch.Tensor, target: torch.Tensor, class_id: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened predictions and boolean targets (one column when `class_id` is set)."""
    target, preds = match_shapes(target, preds, metric_name)
    if class_id is not None:
        preds, target = preds[..., class_id], target[..., class_id]
    return preds.reshape(-1), target.reshape(-1) > 0.5


def _no_weights(metric: Metric, sample_weight: torch.Tensor | None) -> None:
    if sample_weight is not None:
        raise TypeError(
            f"Metric {metric.name!r} does not take sample weights; list it in "
            "`metrics`, not `weighted_metrics`."
        )


class _ConfusionMetric(Metric):
    """Counts of true/false positives/negatives at one threshold, accumulated on the device.

    Args:
        thresholds: predictions above it count as positive (0.5 when None).
        class_id: restrict to this column of one-hot or multi-label data.
        name: the name shown in logs.
    """

    def __init__(
        self, thresholds: float | None = None, class_id: int | None = None, name: str | None = None
    ):
        if thresholds is not None and (
            isinstance(thresholds, bool) or not isinstance(thresholds, float | int)
        ):
            raise TypeError(f"`thresholds` must be one number in [0, 1]; got {thresholds!r}.")
        super().__init__(name=name)
        self.threshold = 0.5 if thresholds is None else float(thresholds)
        self.class_id = class_id
        for state in ("tp", "fp", "tn", "fn"):
            self.add_state(state, torch.zeros(()), dist_reduce_fx="sum")

    def update(
        self, preds: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> None:
        _no_weights(self, sample_weight)
        preds, positive = _binary_inputs(self.name, preds, target, self.class_id)
        predicted = preds > self.threshold
        self.tp.add_((predicted & positive).sum())
        self.fp.add_((predicted & ~positive).sum())
        self.tn.add_((~predicted & ~positive).sum())
        self.fn.add_((~predicted & positive).sum())


def _divide_no_nan(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    return torch.where(
        denominator > 0, numerator / denominator.clamp(min=1e-30), torch.zeros_like(numerator)
    )


class Precision(_ConfusionMetric):
    """Precision `tp / (tp + fp)` at `thresholds` (0.5 by default) over all entries."""

    higher_is_better = True

    def compute(self) -> torch.Tensor:
        return _divide_no_nan(self.tp, self.tp + self.fp)


class Recall(_ConfusionMetric):
    """Recall `tp / (tp + fn)` at `thresholds` (0.5 by default) over all entries."""

    higher_is_better = True

    def compute(self) -> torch.Tensor:
        return _divide_no_nan(self.tp, self.tp + self.fn)


class TruePositives(_ConfusionMetric):
    """Count of true positives at `thresholds` (0.5 by default)."""

    higher_is_better = True

    def compute(self) -> torch.Tensor:
        return self.tp


class FalsePositives(_ConfusionMetric):
    """Count of false positives at `thresholds` (0.5 by default)."""

    def compute(self) -> torch.Tensor:
        return self.fp


class TrueNegatives(_ConfusionMetric):
    """Count of true negatives at `thresholds` (0.5 by default)."""

    higher_is_better = True

    def compute(self) -> torch.Tensor:
        return self.tn


class FalseNegatives(_ConfusionMetric):
    """Count of false negatives at `thresholds` (0.5 by default)."""

    def compute(self) -> torch.Tensor:
        return self.fn


class AUC(Metric):
    """Area under the ROC (or precision-recall) curve, from `num_thresholds` thresholds.

    As in Keras, predictions are counted against evenly spaced thresholds in [0, 1] (the end
    ones nudged by epsilon) and the curve is integrated with the trapezoidal rule; all entries
    form one binary problem.

    Args:
        num_thresholds: how many thresholds discretise the curve (> 1).
        curve: `'ROC'` or `'PR'`.
        from_logits: whether predictions are logits (a sigmoid is applied).
        name: the name shown in logs.
    """

    higher_is_better = True

    def __init__(
        self,
        num_thresholds: int = 200,
        curve: str = "ROC",
        from_logits: bool = False,
        name: str = "auc",
    ):
        if curve not in ("ROC", "PR"):
            raise ValueError(f"`curve` must be 'ROC' or 'PR'; got {curve!r}.")
        if (
            isinstance(num_thresholds, bool)
            or not isinstance(num_thresholds, int)
            or num_thresholds < 2
        ):
            raise ValueError(f"`num_thresholds` must be an integer > 1; got {num_thresholds!r}.")
        super().__init__(name=name)
        self.curve, self.from_logits = curve, from_logits
        thresholds = torch.linspace(0.0, 1.0, num_thresholds)
        thresholds[0], thresholds[-1] = -1e-7, 1.0 + 1e-7
        self.register_buffer("thresholds", thresholds, persistent=False)
        for state in ("tp", "fp"):
            self.add_state(state, torch.zeros(num_thresholds), dist_reduce_fx="sum")
        for state in ("positives", "negatives"):
            self.add_state(state, torch.zeros(()), dist_reduce_fx="sum")

    def update(
        self, preds: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> None:
        _no_weights(self, sample_weight)
        preds, positive = _binary_inputs(self.name, preds, target, None)
        if self.from_logits:
            preds = torch.sigmoid(preds)
        above = preds.unsqueeze(-1) > self.thresholds.to(preds.dtype)
        self.tp.add_((above & positive.unsqueeze(-1)).sum(0))
        self.fp.add_((above & ~positive.unsqueeze(-1)).sum(0))
        self.positives.add_(positive.sum())
        self.negatives.add_((~positive).sum())

    def compute(self) -> torch.Tensor:
        recall = _divide_no_nan(self.tp, self.positives.expand_as(self.tp))
        if self.curve == "PR":
            return self._interpolated_pr_auc()
        fpr = _divide_no_nan(self.fp, self.negatives.expand_as(self.fp))
        return ((fpr[:-1] - fpr[1:]) * (recall[:-1] + recall[1:]) / 2.0).sum()

    def _interpolated_pr_auc(self) -> torch.Tensor:
        # Keras's PR summation (Davis & Goadrich 2006): precision interpolated between
        # thresholds, not trapezoids; see keras/src/metrics/confusion_metrics.py.
        tp, predicted = self.tp, self.tp + self.fp
        d_tp, d_predicted = tp[:-1] - tp[1:], predicted[:-1] - predicted[1:]
        slope = _divide_no_nan(d_tp, d_predicted.clamp(min=0))
        intercept = tp[1:] - slope * predicted[1:]
        both = (predicted[:-1] > 0) & (predicted[1:] > 0)
        ratio = torch.where(
            both, _divide_no_nan(predicted[:-1], predicted[1:]), torch.ones_like(d_tp)
        )
        area = slope * (d_tp + intercept * torch.log(ratio))
        return _divide_no_nan(area, self.positives.expand_as(area)).sum()


class FBetaScore(Metric):
    """F-beta score of one-hot (or multi-label) targets, per class or averaged.

    Args:
        average: `None` (one value per class), `'micro'`, `'macro'` or `'weighted'`.
        beta: weight of recall against precision.
        threshold: predictions above it count as positive; None takes each row's arg-max.
        name: the name shown in logs.
    """

    higher_is_better = True

    def __init__(
        self,
        average: str | None = None,
        beta: float = 1.0,
        threshold: float | None = None,
        name: str = "fbeta_score",
    ):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(
                f"`average` must be None, 'micro', 'macro' or 'weighted'; got {average!r}."
            )
        if beta <= 0:
            raise ValueError(f"`beta` must be > 0; got {beta}.")
        super().__init__(name=name)
        self.average, self.beta, self.threshold = average, beta, threshold
        for state in ("tp", "fp", "fn"):
            self.add_state(state, torch.zeros(0), dist_reduce_fx="sum")

    def update(
        self, preds: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> None:
        _no_weights(self, sample_weight)
        target, preds = match_shapes(target, preds, self.name)
        num_classes = preds.shape[-1]
        if self.threshold is None:
            predicted = torch.nn.functional.one_hot(preds.argmax(-1), num_classes).bool()
        else:
            predicted = preds > self.threshold
        predicted = predicted.reshape(-1, num_classes)
        positive = (target > 0.5).reshape(-1, num_classes)
        if self.tp.numel() == 0:  # first batch: one counter per class
            for state in ("tp", "fp", "fn"):
                setattr(self, state, torch.zeros(num_classes, device=preds.device))
        self.tp.add_((predicted & positive).sum(0))
        self.fp.add_((predicted & ~positive).sum(0))
        self.fn.add_((~predicted & positive).sum(0))

    def compute(self) -> torch.Tensor:
        tp, fp, fn = self.tp, self.fp, self.fn
        if self.average == "micro":
            tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
        beta2 = self.beta**2
        score = _divide_no_nan((1 + beta2) * tp, (1 + beta2) * tp + beta2 * fn + fp)
        if self.average == "macro":
            return score.mean()
        if self.average == "weighted":
            support = tp + fn
            return _divide_no_nan((score * support).sum(), support.sum())
        return score


class F1Score(FBetaScore):
    """F1 score (`FBetaScore` with `beta=1`)."""

    def __init__(
        self, average: str | None = None, threshold: float | None = None, name: str = "f1_score"
    ):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name)


class IoU(Metric):
    """Intersection-over-union for `target_class_ids`, from a confusion matrix on the device.

    IoU of a class is `tp / (tp + fp + fn)`; the result is their mean over the target classes
    present in the data (absent classes are left out, as in Keras).

    Args:
        num_classes: the number of classes.
        target_class_ids: the classes to average over.
        name: the name shown in logs.
        ignore_class: a class id whose samples are skipped.
        sparse_y_true: whether targets are class ids (else one-hot, arg-maxed along `axis`).
        sparse_y_pred: whether predictions are class ids (else scores, arg-maxed).
        axis: the class axis for arg-max.
    """

    higher_is_better = True

    def __init__(
        self,
        num_classes: int,
        target_class_ids: list[int] | tuple[int, ...],
        name: str | None = None,
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
        super().__init__(name=name)
        self.num_classes, self.target_class_ids = num_classes, list(target_class_ids)
        self.ignore_class, self.axis = ignore_class, axis
        self.sparse_y_true, self.sparse_y_pred = sparse_y_true, sparse_y_pred
        self.add_state("confusion", torch.zeros(num_classes * num_classes), dist_reduce_fx="sum")
        self.register_buffer("_ids", torch.tensor(self.target_class_ids), persistent=False)

    def _class_ids(self, preds: torch.Tensor, target: torch.Tensor):
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
        ignore_class: int | None = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
    ):
        super().__init__(
            num_classes,
            list(range(num_classes)),
            name=name,
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
    ):
        super().__init__(2, target_class_ids, name=name)
        self.threshold = threshold

    def _class_ids(self, preds: torch.Tensor, target: torch.Tensor):
        return (preds >= self.threshold).reshape(-1).long(), target.reshape(-1).long()


class OneHotIoU(IoU):
    """`IoU` for one-hot targets and per-class scores (both arg-maxed)."""

    def __init__(
        self,
        num_classes: int,
        target_class_ids: list[int] | tuple[int, ...],
        name: str | None = None,
        ignore_class: int | None = None,
        sparse_y_pred: bool = False,
        axis: int = -1,
    ):
        super().__init__(
            num_classes,
            target_class_ids,
            name=name,
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
        ignore_class: int | None = None,
        sparse_y_pred: bool = False,
        axis: int = -1,
    ):
        super().__init__(
            num_classes,
            name=name,
            ignore_class=ignore_class,
            sparse_y_true=False,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
        )


class R2Score(Metric):
    """Coefficient of determination over the epoch, averaged uniformly over outputs.

    Args:
        num_regressors: for the adjusted R², the number of regressors (0: not adjusted).
        name: the name shown in logs.
    """

    higher_is_better = True

    def __init__(self, num_regressors: int = 0, name: str = "r2_score"):
        super().__init__(name=name)
        self.num_regressors = num_regressors
        for state in ("sum_y", "sum_y2", "sum_residual2", "count", "num_samples"):
            self.add_state(state, torch.zeros(()), dist_reduce_fx="sum")

    def update(self, preds, target, sample_weight=None) -> None:
        target, preds = match_shapes(target, preds, self.name)
        if target.dim() == 1:
            target, preds = target.unsqueeze(-1), preds.unsqueeze(-1)
        if self.sum_y.dim() == 0:  # first batch: one accumulator per output column
            width = target.shape[-1]
            for state in ("sum_y", "sum_y2", "sum_residual2"):
                setattr(self, state, torch.zeros(width, device=target.device))
            self._defaults.update(
                {s: torch.zeros(width) for s in ("sum_y", "sum_y2", "sum_residual2")}
            )
        if sample_weight is None:
            weight = torch.ones_like(target)
        else:
            weight = torch.broadcast_to(_expand_weight(sample_weight, target), target.shape)
        width = target.shape[-1]
        target, preds, weight = (t.reshape(-1, width) for t in (target, preds, weight))
        self.sum_y.add_((weight * target).sum(0))
        self.sum_y2.add_((weight * target * target).sum(0))
        self.sum_residual2.add_((weight * torch.square(target - preds)).sum(0))
        self.count.add_(weight[:, 0].sum())
        self.num_samples.add_(target.shape[0])

    def compute(self) -> torch.Tensor:
        mean = self.sum_y / self.count
        total = self.sum_y2 - self.count * mean * mean
        r2 = (1.0 - self.sum_residual2 / total).mean()
        if self.num_regressors:
            n = self.num_samples
            r2 = 1.0 - (1.0 - r2) * (n - 1) / (n - self.num_regressors - 1)
        return r2


_BATCH_SUMS: dict[Callable[..., torch.Tensor], Callable[..., tuple[torch.Tensor, int]]] = {
    mean_absolute_error: _mae_batch_sum,
    mean_squared_error: _mse_batch_sum,
    sparse_categorical_accuracy: _sparse_accuracy_batch_sum,
    categorical_accuracy: _categorical_accuracy_batch_sum,
}


# --------------------------------------------------------------------------- registry

_CLASSES = [
    AUC,
    BinaryIoU,
    IoU,
    MeanIoU,
    OneHotIoU,
    OneHotMeanIoU,
    Accuracy,
    BinaryAccuracy,
    BinaryCrossentropy,
    CategoricalAccuracy,
    CategoricalCrossentropy,
    CategoricalHinge,
    ConcordanceCorrelation,
    CosineDistance,
    CosineSimilarity,
    F1Score,
    FBetaScore,
    FalseNegatives,
    FalsePositives,
    Hinge,
    KLDivergence,
    LogCoshError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    PearsonCorrelation,
    Poisson,
    Precision,
    R2Score,
    Recall,
    RootMeanSquaredError,
    SparseCategoricalAccuracy,
    SparseCategoricalCrossentropy,
    SparseTopKCategoricalAccuracy,
    SquaredHinge,
    TopKCategoricalAccuracy,
    TrueNegatives,
    TruePositives,
]

#: Every string id `compile(metrics=[...])` accepts: class names, their snake_case forms and
#: Keras's aliases. `'accuracy'`/`'acc'` are settled from the data's shapes by compile.
ALL_OBJECTS_DICT: dict[str, type[Metric]] = {
    **{cls.__name__: cls for cls in _CLASSES},
    **{_snake_case(cls.__name__): cls for cls in _CLASSES},
    "bce": BinaryCrossentropy,
    "BCE": BinaryCrossentropy,
    "mse": MeanSquaredError,
    "MSE": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "MAE": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError,
    "MAPE": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError,
    "MSLE": MeanSquaredLogarithmicError,
}

_TORCHMETRICS_INSTEAD = (
    "pass the torchmetrics equivalent (e.g. torchmetrics.classification.{}) as the metric"
)
#: Keras ids kfit does not implement itself, with what to use instead.
UNSUPPORTED = {
    "PrecisionAtRecall": _TORCHMETRICS_INSTEAD.format("BinaryPrecisionAtFixedRecall"),
    "RecallAtPrecision": _TORCHMETRICS_INSTEAD.format("BinaryRecallAtFixedPrecision"),
    "SensitivityAtSpecificity": _TORCHMETRICS_INSTEAD.format("BinarySensitivityAtSpecificity"),
    "SpecificityAtSensitivity": _TORCHMETRICS_INSTEAD.format("BinarySpecificityAtSensitivity"),
}
UNSUPPORTED.update({_snake_case(name): hint for name, hint in list(UNSUPPORTED.items())})

ACCURACY_IDS = ("accuracy", "acc")


def get(identifier: Any) -> Any:
    """Resolves a metric identifier to a metric object or function.

    Args:
        identifier: a string id (`'mae'`, `'AUC'`, ...), a metric object (kfit's or any
            `torchmetrics.Metric`), a metric class, or a function `f(y_true, y_pred)`.

    Returns:
        A new metric object for string ids and classes; the identifier itself otherwise.

    Raises:
        ValueError: for an unknown string id (naming the closest valid one).
        TypeError: for anything that is neither a string nor callable.
    """
    if isinstance(identifier, str):
        if identifier in UNSUPPORTED:
            raise ValueError(
                f"Metric {identifier!r} is not built into kfit: {UNSUPPORTED[identifier]}."
            )
        if identifier not in ALL_OBJECTS_DICT:
            raise unknown_id_error(
                "metric",
                identifier,
                [*ALL_OBJECTS_DICT, *ACCURACY_IDS],
                "kfit.metrics.ALL_OBJECTS_DICT",
            )
        cls = ALL_OBJECTS_DICT[identifier]
        try:
            return cls()
        except TypeError as err:  # e.g. IoU needs num_classes: a string id cannot say it
            raise ValueError(
                f"Metric {identifier!r} needs arguments ({err}); pass an object "
                f"instead, e.g. kfit.metrics.{cls.__name__}(...)."
            ) from err
    if isinstance(identifier, type) and issubclass(identifier, torchmetrics.Metric):
        return identifier()
    if isinstance(identifier, torchmetrics.Metric) or callable(identifier):
        return identifier
    raise TypeError(
        f"A metric must be a string id, a metric object or class, or a function "
        f"f(y_true, y_pred); got {identifier!r} of type {type(identifier).__name__}."
    )
