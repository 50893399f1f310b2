"""`MetricVariable`: a Keras-style metric variable over a torchmetrics state.

`kfit.metrics.Metric.add_variable` (and `add_weight`) registers a torchmetrics state and
returns a `MetricVariable` naming it. The variable always reads the metric's current state, so
it follows the metric through `reset()` and device moves, and `assign`/`assign_add`/
`assign_sub` change that state in place, on its device, with no host read. It works with
torch functions and operators as the tensor it holds.
"""

from __future__ import annotations

import operator
from typing import Any

import torch


def unwrap(value: Any) -> Any:
    """`value` with every `MetricVariable` in it (lists, tuples, dicts opened) as its tensor."""
    if isinstance(value, MetricVariable):
        return value.value
    if isinstance(value, list | tuple):
        return type(value)(unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    return value


class MetricVariable:
    """A named state of a metric, with Keras's `assign`, `assign_add` and `assign_sub`.

    Args:
        metric: the torchmetrics metric that holds the state.
        state: the state's attribute name on `metric`.
        name: the variable's name.
    """

    def __init__(self, metric: torch.nn.Module, state: str, name: str):
        self._metric = metric
        self._state = state
        self.name = name

    @property
    def value(self) -> torch.Tensor:
        """The state tensor (on the metric's device)."""
        return getattr(self._metric, self._state)

    @property
    def shape(self) -> torch.Size:
        return self.value.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.value.dtype

    @property
    def device(self) -> torch.device:
        return self.value.device

    def _as_state(self, value: Any) -> torch.Tensor:
        state = self.value
        return torch.as_tensor(unwrap(value), device=state.device).to(state.dtype)

    def assign(self, value: Any) -> MetricVariable:
        """Sets the state to `value` (broadcast to its shape), in place."""
        with torch.no_grad():
            self.value.copy_(self._as_state(value))
        return self

    def assign_add(self, value: Any) -> MetricVariable:
        """Adds `value` to the state, in place."""
        with torch.no_grad():
            self.value.add_(self._as_state(value))
        return self

    def assign_sub(self, value: Any) -> MetricVariable:
        """Subtracts `value` from the state, in place."""
        with torch.no_grad():
            self.value.sub_(self._as_state(value))
        return self

    def numpy(self) -> Any:
        """A host copy as numpy (a sync point)."""
        return self.value.detach().cpu().numpy()

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        array = self.numpy()
        return array if dtype is None else array.astype(dtype)

    def __float__(self) -> float:
        return float(self.value)

    def __int__(self) -> int:
        return int(self.value)

    def __bool__(self) -> bool:
        return bool(self.value)

    def __neg__(self) -> torch.Tensor:
        return -self.value

    def __abs__(self) -> torch.Tensor:
        return abs(self.value)

    def __getitem__(self, index: Any) -> torch.Tensor:
        return self.value[unwrap(index)]

    def __len__(self) -> int:
        return len(self.value)

    def __repr__(self) -> str:
        return f"MetricVariable(name={self.name!r}, value={self.value!r})"

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        return func(*unwrap(args), **unwrap(kwargs or {}))

    def __getattr__(self, name: str) -> Any:
        # Tensor methods (`.sum()`, `.float()`, ...) on the state; `_metric`/`name` are set.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.value, name)


def _binary(op: Any, reflected: bool = False) -> Any:
    if reflected:
        return lambda self, other: op(unwrap(other), self.value)
    return lambda self, other: op(self.value, unwrap(other))


for _name, _op in {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "truediv": operator.truediv,
    "floordiv": operator.floordiv,
    "pow": operator.pow,
    "mod": operator.mod,
    "matmul": operator.matmul,
}.items():
    setattr(MetricVariable, f"__{_name}__", _binary(_op))
    setattr(MetricVariable, f"__r{_name}__", _binary(_op, reflected=True))
for _name, _op in {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "eq": operator.eq,
    "ne": operator.ne,
}.items():
    setattr(MetricVariable, f"__{_name}__", _binary(_op))
MetricVariable.__hash__ = object.__hash__  # type: ignore[method-assign]
