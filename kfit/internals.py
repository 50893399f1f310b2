"""The one place where kfit touches its dependencies' private internals.

Everything else in kfit uses public API. What is left here has no public equivalent, or the
public one costs too much on the per-step path; each function names the internal it wraps, so
a change in a dependency is fixed in this file, and `tests/test_internals.py` fails loudly
(naming the internal) when one moves or behaves differently.

Wrapped, from **torchmetrics** (`torchmetrics.Metric`; checked against 1.6.0 and 1.9.0, the
range `setup.cfg` allows being `torchmetrics>=1.6,<2`):

- `Metric._defaults`: each state's initial value, which `reset()` restores
  (`state_defaults`). The public `metric_state` gives the current values, not the defaults.
- `Metric._computed` and `Metric._update_count`: the compute cache and the update counter,
  which torchmetrics' `_wrap_update` clears and increments (`mark_updated`, `cached_result`,
  `cache_result`, `set_update_count`). The public `update_count` property is read-only.
- `Metric._forward_cache`, `Metric._cache` and `Metric._is_synced`, which `reset()` clears
  with the two above (`reset_bookkeeping`).
- `Metric._to_sync`: whether `compute` gathers the states across processes
  (`sync_disabled`). The public `sync_on_compute` is read only at construction and after
  `forward`.

Hot-path functions take the metric's `__dict__` (`state`), not the metric: writing through
`nn.Module.__setattr__` costs more than a small model's metric update.

Wrapped, from **torch** (checked against 2.13, the floor `setup.cfg` allows being
`torch>=2.13`):

- `torch._C._nn.mse_loss` / `l1_loss`, the ATen ops' Python bindings (`aten_loss`). The
  public `torch.ops.aten.<name>.default` calls the same kernel but adds ~1 µs of Python per
  call, and `torch.nn.functional`'s versions broadcast first (~8 µs more).

Wrapped, from **scikit-learn** (an optional dependency, imported on first use; checked
against 1.6 and the version the test extra installs):

- `sklearn.utils.validation._check_sample_weight` (`check_sample_weight`): scikit-learn's own
  validation of `fit(sample_weight=...)`, which its estimator checks expect; it has no public
  equivalent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    import torchmetrics

__all__ = [
    "aten_loss",
    "cache_result",
    "check_sample_weight",
    "cached_result",
    "mark_updated",
    "reset_bookkeeping",
    "set_update_count",
    "state_defaults",
    "sync_disabled",
]

# ----------------------------------------------------------------------------- torchmetrics


def state_defaults(metric: torchmetrics.Metric) -> dict[str, torch.Tensor | list[Any]]:
    """Each state's default, by name, in the order `add_state` added them.

    Args:
        metric: a torchmetrics metric.

    Returns:
        torchmetrics' own dict (`Metric._defaults`), not a copy: a value put there is what
        `reset()` restores from then on.
    """
    defaults: dict[str, torch.Tensor | list[Any]] = metric._defaults
    return defaults


def mark_updated(state: dict[str, Any]) -> None:
    """Torchmetrics' bookkeeping for one `update` call: no cached result, one more update.

    What torchmetrics' `Metric._wrap_update` does around `update`: drops the cached `compute`
    result and counts the update.

    Args:
        state: the metric's `__dict__`.
    """
    state["_computed"] = None
    state["_update_count"] += 1


def cached_result(state: dict[str, Any]) -> Any:
    """The value the last `compute` cached (`Metric._computed`), or None.

    Args:
        state: the metric's `__dict__`.
    """
    return state["_computed"]


def cache_result(state: dict[str, Any], value: Any) -> None:
    """Caches `value` as `compute`'s result until the next update or reset.

    Args:
        state: the metric's `__dict__`.
        value: the computed value.
    """
    state["_computed"] = value


def reset_bookkeeping(state: dict[str, Any]) -> None:
    """What torchmetrics' `reset` clears besides the states.

    The update count, the forward and compute caches, and the sync cache and flag.

    Args:
        state: the metric's `__dict__`.
    """
    state.update(
        _update_count=0, _forward_cache=None, _computed=None, _cache=None, _is_synced=False
    )


def set_update_count(metric: torchmetrics.Metric, count: int) -> None:
    """Sets what the public, read-only `metric.update_count` returns.

    Args:
        metric: a torchmetrics metric.
        count: the number of updates since the last reset.
    """
    metric.__dict__["_update_count"] = count


@contextlib.contextmanager
def sync_disabled(metrics: Iterable[torchmetrics.Metric]) -> Iterator[None]:
    """Within the block, `compute` reads each metric's local states, gathering none.

    torchmetrics' `Metric._to_sync` is off, so no state is gathered across processes. On
    exit each metric syncs again as before, and the results computed within are dropped from
    the compute cache, so a later `compute` does not return a local value.

    Args:
        metrics: torchmetrics metrics.
    """
    metrics = list(metrics)
    flags = [metric.__dict__["_to_sync"] for metric in metrics]
    for metric in metrics:
        metric.__dict__["_to_sync"] = False
    try:
        yield
    finally:
        for metric, flag in zip(metrics, flags, strict=True):
            metric.__dict__["_to_sync"] = flag
            metric.__dict__["_computed"] = None


# ------------------------------------------------------------------------------------ torch

#: ATen's `at::Reduction` values, the ops' `int reduction` argument.
_ATEN_REDUCTIONS = {"mean": 1, "sum": 2}


def aten_loss(
    name: str, reduction: str
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """`torch.nn.functional.<name>(input, target, reduction=...)` for inputs of one shape.

    Calls the ATen op's binding (`torch._C._nn.<name>`) directly: the same kernel and numbers
    as the public function, without its broadcasting.

    Args:
        name: the op, as named in `torch.nn.functional` (`'mse_loss'`, `'l1_loss'`).
        reduction: `'mean'` or `'sum'`.

    Returns:
        `fn(input, target)`, or None when torch has no such binding (the caller then uses the
        public function).
    """
    op = getattr(torch._C._nn, name, None)
    if op is None:
        return None
    enum = _ATEN_REDUCTIONS[reduction]
    return lambda input, target: op(input, target, enum)


# ------------------------------------------------------------------------------ scikit-learn


def check_sample_weight(sample_weight: Any, X: Any, **options: Any) -> Any:
    """scikit-learn's `_check_sample_weight(sample_weight, X, **options)`: validated weights.

    Imports scikit-learn on first use (kfit's wrappers need it; `import kfit` does not).
    """
    from sklearn.utils.validation import _check_sample_weight

    return _check_sample_weight(sample_weight, X, **options)
