"""`Metric`, the base of kfit's metrics: a torchmetrics metric with Keras's names and config.

Every metric is a `torchmetrics.Metric`: its state lives on the model's device, it syncs
across processes (each state declares its `dist_reduce_fx`), and `update` never reads a value
back to the host. `update(preds, target, sample_weight=None)` follows torchmetrics; the Keras
spellings `update_state(y_true, y_pred, sample_weight=None)` and `result()` are aliases.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torchmetrics
from lightning_utilities import apply_to_collection

from kfit.internals import (
    cache_result,
    cached_result,
    mark_updated,
    reset_bookkeeping,
    state_defaults,
)
from kfit.registry import snake_case
from kfit.variables import MetricVariable, unwrap

__all__ = [
    "Accumulator",
    "Metric",
    "as_tensor",
    "config_value",
    "squeeze_or_expand_to_same_rank",
]


def _squeezed_copy(value: Any) -> Any:
    """What torchmetrics' `compute` returns: one-element tensors squeezed, tensors copied."""
    if isinstance(value, torch.Tensor):
        return (value.squeeze() if value.dim() and value.numel() == 1 else value).clone()
    return apply_to_collection(value, torch.Tensor, _squeezed_copy)


def config_value(value: Any) -> Any:
    """A constructor argument as `get_config` records it: tensors and tuples become lists."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, tuple):
        return [config_value(v) for v in value]
    return value


def _dtype_name(dtype: Any) -> str:
    if dtype is None:
        return "float32"
    if isinstance(dtype, torch.dtype):
        return str(dtype).removeprefix("torch.")
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        return dtype
    raise ValueError(f"`dtype` must be None, a torch dtype or its name; got {dtype!r}.")


class Metric(torchmetrics.Metric):
    """Base of kfit's metrics: a torchmetrics metric with a Keras name and Keras aliases.

    Subclasses declare state with `add_state` and implement `update(preds, target,
    sample_weight=None)` and `compute()`, as in torchmetrics.

    Args:
        name: the name shown in logs and History.
        dtype: the dtype of the floating-point states (float32 by default), as Keras's `dtype`.
    """

    full_state_update = False

    def __init__(self, name: str | None = None, dtype: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.name = name or snake_case(type(self).__name__)
        #: 'up' when higher values are better, else 'down' (Keras's `_direction`).
        self.direction = "up" if self.higher_is_better else "down"
        self.dtype_name = _dtype_name(dtype)

    def add_state(self, name: str, default: Any, *args: Any, **kwargs: Any) -> None:
        """Torchmetrics' `add_state`; floating-point defaults take the metric's `dtype`."""
        if isinstance(default, torch.Tensor) and default.is_floating_point():
            default = default.to(getattr(torch, self.dtype_name))
        super().add_state(name, default, *args, **kwargs)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this metric (Keras's `get_config`).

        Returns:
            A dict of plain values (`name`, `dtype` and each option); `from_config(config)`
            makes an equal, fresh metric.
        """
        config: dict[str, Any] = {"name": self.name, "dtype": self.dtype_name}
        skipped = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        for param in inspect.signature(type(self).__init__).parameters.values():
            if param.name in ("self", "name", "dtype") or param.kind in skipped:
                continue
            if hasattr(self, param.name):
                config[param.name] = config_value(getattr(self, param.name))
        return config

    @property
    def variables(self) -> list[torch.Tensor]:
        """The metric's states, in the order they were added (Keras's `variables`)."""
        return [getattr(self, name) for name in state_defaults(self)]

    def resize_state(self, name: str, shape: tuple[int, ...], device: torch.device) -> None:
        """Gives state `name` zeros of `shape`; `reset()` keeps that shape from then on.

        For a state sized by the first batch, as Keras builds its variables.
        """
        dtype = getattr(self, name).dtype
        state_defaults(self)[name] = torch.zeros(shape, dtype=dtype)
        setattr(self, name, torch.zeros(shape, dtype=dtype, device=device))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        """Builds a fresh metric from `get_config()`'s output (Keras's `from_config`)."""
        return cls(**config)

    def _wrap_update(self, update: Callable[..., None]) -> Callable[..., None]:
        # torchmetrics wraps `update` to reset its compute cache and count calls; its wrapper
        # goes through nn.Module.__setattr__ twice per call, which costs more than a small
        # model's whole step. This one keeps the same bookkeeping, written directly.
        state = self.__dict__

        def wrapped(*args: Any, **kwargs: Any) -> None:
            mark_updated(state)
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
            cached = cached_result(state)
            if cached is not None:
                return cached
            if not self.update_count or self.distributed_available_fn():
                return synced(*args, **kwargs)
            value = _squeezed_copy(compute(*args, **kwargs))
            if self.compute_with_cache:
                cache_result(state, value)
            return value

        return wrapped

    #: True for a subclass written the Keras way (`update_state`/`result`, not
    #: `update`/`compute`): `update` then takes Keras's argument order.
    keras_style = False
    #: A Keras-style subclass's own `update_state` and `result` (set by `__init_subclass__`).
    _keras_update_state: Callable[..., None]
    _keras_result: Callable[..., Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A Keras-style subclass: `update`/`compute` (which torchmetrics wraps with its
        # bookkeeping and cache) call the user's `update_state`/`result`, and the Keras
        # names call the wrapped ones, so both spellings count updates and clear the cache.
        if "update_state" in cls.__dict__ and getattr(cls.update, "__isabstractmethod__", False):
            cls.keras_style = True
            # Methods swapped on purpose (see above); the checker flags any method assignment.
            cls._keras_update_state = cls.__dict__["update_state"]
            cls.update = _keras_update  # type: ignore[method-assign, assignment]
            cls.update_state = _keras_update_state  # type: ignore[method-assign]
        if "result" in cls.__dict__ and getattr(cls.compute, "__isabstractmethod__", False):
            cls._keras_result = cls.__dict__["result"]
            cls.compute = _keras_compute  # type: ignore[method-assign, assignment]
            cls.result = Metric.result  # type: ignore[method-assign]

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
        name = name or f"variable_{len(state_defaults(self))}"
        # Stored apart from the name, which the subclass often gives its attribute too.
        state = f"keras_variable_{name}"
        if state in state_defaults(self):
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
        """Keras spelling of `update` (note the argument order: target first).

        Takes tensors, or lists and arrays as Keras does (made tensors on the metric's device).
        """
        device = self.device
        self.update(
            as_tensor(y_pred, device), as_tensor(y_true, device), as_tensor(sample_weight, device)
        )

    def result(self) -> torch.Tensor:
        """Keras spelling of `compute`."""
        return self.compute()

    def reset_state(self) -> None:
        """Keras spelling of `reset`."""
        self.reset()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Accumulator(Metric):
    """A sum and a count on the device; the value is their ratio.

    Counts that are plain Python numbers (batch sizes, element counts) are kept on the host and
    folded into the `count` state before any read or sync, which saves one device operation
    per update.
    """

    total: torch.Tensor  # the states (add_state), typed for the checker
    count: torch.Tensor

    def __init__(self, name: str | None = None, dtype: Any = None):
        super().__init__(name=name, dtype=dtype)
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
        if isinstance(incoming_state, Accumulator):
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
        for name, default in state_defaults(self).items():
            if not isinstance(default, torch.Tensor):  # a subclass's list state
                super().reset()
                break
            state[name] = default.detach().clone().to(state[name].device)
        reset_bookkeeping(state)
        state["_host_count"] = 0


def _keras_update(self: Metric, *args: Any, **kwargs: Any) -> None:
    self._keras_update_state(*args, **kwargs)


def _keras_update_state(self: Metric, *args: Any, **kwargs: Any) -> None:
    self.update(*args, **kwargs)


def _keras_compute(self: Metric) -> Any:
    return unwrap(self._keras_result())


def squeeze_or_expand_to_same_rank(
    x1: torch.Tensor, x2: torch.Tensor, expand_rank_1: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keras's `squeeze_or_expand_to_same_rank`.

    When the ranks differ by one and the longer's last axis has size 1, that axis is squeezed
    (or, for a rank-1 partner and `expand_rank_1`, added to the other).
    """
    if x1.dim() == x2.dim() + 1 and x1.shape[-1] == 1:
        if x2.dim() == 1 and expand_rank_1:
            x2 = x2.unsqueeze(-1)
        else:
            x1 = x1.squeeze(-1)
    if x2.dim() == x1.dim() + 1 and x2.shape[-1] == 1:
        if x1.dim() == 1 and expand_rank_1:
            x1 = x1.unsqueeze(-1)
        else:
            x2 = x2.squeeze(-1)
    return x1, x2


def as_tensor(value: Any, device: torch.device) -> Any:
    """A tensor for an array-like (Keras's `update_state` takes lists and arrays); None stays."""
    if value is None or isinstance(value, torch.Tensor):
        return value
    return torch.as_tensor(value, device=device)
