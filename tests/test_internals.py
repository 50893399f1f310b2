"""The dependency internals that `kfit/internals.py` wraps still exist and behave as it assumes.

Each test exercises torchmetrics or torch itself (a plain `torchmetrics.Metric`, the ATen op)
through the adapter, so an upgrade that moves an internal fails here, with a message naming
it, rather than as a silently wrong number elsewhere.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchmetrics

import kfit
from kfit.internals import (
    aten_loss,
    cache_result,
    cached_result,
    check_sample_weight,
    mark_updated,
    reset_bookkeeping,
    set_update_count,
    state_defaults,
    sync_disabled,
)


def _changed(name: str) -> str:
    return f"torchmetrics changed Metric.{name}: update kfit/internals.py"


class _Sum(torchmetrics.Metric):
    """A plain torchmetrics metric (torchmetrics' wrappers): a tensor state and a list state.

    Without the list state (`items=False`) for a metric that is reset while synced: torchmetrics
    turns a synced list state into a tensor, which its `reset` cannot clear.
    """

    full_state_update = False

    def __init__(self, items: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.add_state("total", torch.zeros(()), dist_reduce_fx="sum")
        if items:
            self.add_state("items", [], dist_reduce_fx="cat")

    def update(self, value: torch.Tensor) -> None:
        self.total.add_(value.sum())
        if hasattr(self, "items"):
            self.items.append(value.reshape(-1))

    def compute(self) -> torch.Tensor:
        return self.total.clone()


class _Gather:
    """A stand-in for `torch.distributed`'s all-gather: two processes holding the same states."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, tensor: torch.Tensor, group: Any = None) -> list[torch.Tensor]:
        self.calls += 1
        return [tensor.clone(), tensor.clone()]


def _synced_sum() -> tuple[_Sum, _Gather]:
    gather = _Gather()
    return _Sum(dist_sync_fn=gather, distributed_available_fn=lambda: True), gather


def _bookkeeping(metric: torchmetrics.Metric) -> dict[str, Any]:
    """The metric's attributes besides its states, wrapped methods and nn.Module's tables."""
    skipped = {"update", "compute", "_update_signature", *state_defaults(metric), *_MODULE}
    return {key: value for key, value in metric.__dict__.items() if key not in skipped}


_MODULE = set(torch.nn.Module().__dict__)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a is b or a == b


def _dirty(metric: torchmetrics.Metric, *args: Any) -> None:
    """Sets every piece of torchmetrics' bookkeeping: updates, forward and compute caches,
    and a (stand-in) sync's cache and flag."""
    metric.update(*args)
    metric(*args)
    metric.compute()
    metric.sync(dist_sync_fn=_Gather(), distributed_available=lambda: True)


# ----------------------------------------------------------------------- Metric._defaults


@pytest.mark.parametrize("metric_class", [_Sum, kfit.metrics.Mean], ids=["torchmetrics", "kfit"])
def test_every_wrapped_attribute_exists(metric_class):
    metric = metric_class()
    wrapped = ("_defaults", "_computed", "_update_count", "_forward_cache", "_cache", "_is_synced")
    for name in (*wrapped, "_to_sync"):
        assert name in metric.__dict__, _changed(f"{name} (gone)")
    for name in ("_wrap_update", "_wrap_compute"):
        assert callable(getattr(torchmetrics.Metric, name, None)), _changed(f"{name} (gone)")


def test_state_defaults_are_the_values_reset_restores():
    metric = _Sum()
    defaults = state_defaults(metric)
    assert isinstance(defaults, dict), _changed("_defaults (not a dict)")
    assert list(defaults) == ["total", "items"], _changed(
        "_defaults (no longer each state's default, by name, in add_state order)"
    )
    assert list(metric.metric_state) == list(defaults), _changed("_defaults (names)")
    assert state_defaults(metric) is defaults, _changed("_defaults (no longer one live dict)")

    defaults["total"] = torch.full((3,), 5.0)
    metric.update(torch.ones(3))
    metric.reset()
    assert torch.equal(metric.total, torch.full((3,), 5.0)), _changed(
        "_defaults (reset() no longer restores the values there)"
    )


# ------------------------------------------------- Metric._computed, Metric._update_count


def test_torchmetrics_update_bookkeeping_is_what_mark_updated_does():
    # kfit's Metric._wrap_update replaces torchmetrics' update wrapper with mark_updated:
    # torchmetrics' must change nothing else.
    metric = _Sum()
    metric.update(torch.tensor([1.0]))
    metric.compute()
    before = dict(_bookkeeping(metric))
    metric.update(torch.tensor([2.0]))
    after = _bookkeeping(metric)
    changed = {
        key for key in before.keys() | after.keys() if not _same(before.get(key), after.get(key))
    }
    assert changed == {"_computed", "_update_count"}, _changed(
        f"_wrap_update (its update bookkeeping now changes {sorted(changed)}, kfit's "
        "mark_updated only _computed and _update_count)"
    )
    assert after["_computed"] is None, _changed("_computed")
    assert after["_update_count"] == before["_update_count"] + 1, _changed("_update_count")


def test_mark_updated_makes_compute_recompute():
    metric = _Sum()
    metric.update(torch.tensor([1.0, 2.0]))
    value = metric.compute()
    assert cached_result(metric.__dict__) is value, _changed("_computed (not compute's cache)")
    metric.total.add_(10.0)  # behind torchmetrics' back: the cached value stays
    assert metric.compute() is value, _changed("_computed (compute no longer returns it)")

    mark_updated(metric.__dict__)
    assert cached_result(metric.__dict__) is None, _changed("_computed (mark_updated kept it)")
    assert metric.update_count == 2, _changed("_update_count (not what update_count returns)")
    assert float(metric.compute()) == 13.0, _changed(
        "_computed (compute still returns the old value after mark_updated)"
    )


def test_cache_result_is_what_compute_returns():
    metric = _Sum()
    metric.update(torch.tensor([1.0]))
    cache_result(metric.__dict__, torch.tensor(42.0))
    assert float(metric.compute()) == 42.0, _changed("_computed (compute ignores the cache)")


def test_set_update_count_is_what_update_count_returns():
    metric = _Sum()
    metric.update(torch.tensor([1.0]))
    set_update_count(metric, 7)
    assert metric.update_count == 7, _changed("_update_count (not what update_count returns)")
    assert metric.update_called, _changed("_update_count (not what update_called reads)")
    set_update_count(metric, 0)
    assert metric.update_count == 0, _changed("_update_count (not what update_count returns)")
    assert not metric.update_called, _changed("_update_count (not what update_called reads)")


# ------------------------------------------- reset: _forward_cache, _cache, _is_synced, ...


def test_reset_bookkeeping_clears_what_torchmetrics_reset_clears():
    by_torchmetrics = _Sum(items=False)
    _dirty(by_torchmetrics, torch.tensor([1.0, 2.0]))
    by_kfit = copy.deepcopy(by_torchmetrics)
    dirty = dict(_bookkeeping(by_torchmetrics))

    by_torchmetrics.reset()
    reset_bookkeeping(by_kfit.__dict__)
    reset = _bookkeeping(by_torchmetrics)
    touched = {
        key for key in dirty.keys() | reset.keys() if not _same(dirty.get(key), reset.get(key))
    }
    assert {"_update_count", "_computed", "_forward_cache", "_cache", "_is_synced"} <= touched, (
        "the test's metric was not fully dirtied"
    )
    missed = sorted(key for key in touched if not _same(reset.get(key), by_kfit.__dict__.get(key)))
    assert not missed, _changed(
        f"reset (it now also resets {missed}; kfit's reset_bookkeeping does not)"
    )


def test_kfit_accumulator_reset_is_torchmetrics_reset():
    by_torchmetrics = kfit.metrics.Mean()
    _dirty(by_torchmetrics, torch.tensor([1.0, 2.0]))
    by_kfit = copy.deepcopy(by_torchmetrics)

    torchmetrics.Metric.reset(by_torchmetrics)
    by_kfit.reset()
    expected = _bookkeeping(by_torchmetrics)
    got = _bookkeeping(by_kfit)
    differ = sorted(
        key
        for key in expected.keys() | got.keys() - {"_host_count"}
        if not _same(expected.get(key), got.get(key))
    )
    assert not differ, _changed(f"reset (kfit's Accumulator.reset leaves {differ} different)")
    for name in state_defaults(by_kfit):
        assert torch.equal(getattr(by_kfit, name), getattr(by_torchmetrics, name))


# --------------------------------------------------------------------- Metric._to_sync


def test_sync_disabled_stops_the_sync_and_drops_local_results():
    metric, gather = _synced_sum()
    assert "_to_sync" in metric.__dict__, _changed("_to_sync (gone)")
    metric.update(torch.tensor([1.0, 2.0]))
    assert float(metric.compute()) == 6.0, "the stand-in gather did not run"

    mark_updated(metric.__dict__)  # drop the cached synced value
    calls = gather.calls
    with sync_disabled([metric]):
        local = metric.compute()
    assert float(local) == 3.0, _changed("_to_sync (setting it False no longer stops the sync)")
    assert gather.calls == calls, _changed("_to_sync (setting it False no longer stops the sync)")
    assert cached_result(metric.__dict__) is None, _changed("_computed (sync_disabled kept it)")
    assert float(metric.compute()) == 6.0, _changed("_to_sync (no sync after it is restored)")


def test_sync_disabled_stops_kfit_metrics_sync():
    metric = kfit.metrics.Sum()
    gather = _Gather()
    metric.dist_sync_fn = gather
    metric.distributed_available_fn = lambda: True
    metric.update(torch.tensor([1.0, 2.0]))
    with sync_disabled([metric]):
        assert float(metric.compute()) == 3.0, _changed("_to_sync (kfit's metric still syncs)")
    assert not gather.calls, _changed("_to_sync (kfit's metric still syncs)")
    assert float(metric.compute()) == 6.0, _changed("_to_sync (no sync after it is restored)")


# ---------------------------------------------------- Metric._wrap_update, _wrap_compute


@pytest.mark.parametrize("copied", [False, True], ids=["built", "unpickled"])
def test_kfit_wrappers_replace_torchmetrics_wrappers(copied):
    metric = kfit.metrics.Mean()
    if copied:
        metric = pickle.loads(pickle.dumps(metric))
    for method in ("update", "compute"):
        wrapper = getattr(metric, method).__qualname__
        assert wrapper.startswith(f"Metric._wrap_{method}."), _changed(
            f"_wrap_{method} (no longer what wraps `{method}`: kfit's faster wrapper in "
            f"kfit/metrics/base.py is bypassed; got {wrapper})"
        )


# ------------------------------------------------------------------------ torch._C._nn


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_aten_loss_is_the_public_function(name, reduction):
    fused = aten_loss(name, reduction)
    assert fused is not None, (
        f"torch changed torch._C._nn.{name}: kfit falls back to torch.nn.functional.{name} "
        "(slower); update kfit/internals.py"
    )
    torch.manual_seed(0)
    y_pred = torch.randn(8, 3, requires_grad=True)
    y_true = torch.randn(8, 3)
    got = fused(y_pred, y_true)
    (got_grad,) = torch.autograd.grad(got, y_pred)
    expected = getattr(F, name)(y_pred, y_true, reduction=reduction)
    (expected_grad,) = torch.autograd.grad(expected, y_pred)
    message = (
        f"torch changed torch._C._nn.{name} or ATen's reduction enum: update kfit/internals.py"
    )
    assert torch.equal(got, expected), message
    assert torch.equal(got_grad, expected_grad), message


def test_aten_loss_is_none_for_an_unknown_op():
    assert aten_loss("no_such_loss", "mean") is None


# ------------------------------------------------- sklearn.utils.validation._check_sample_weight


def test_check_sample_weight_is_scikit_learns_validation():
    pytest.importorskip("sklearn")
    x = np.zeros((3, 2))
    weights = check_sample_weight(None, x, dtype=np.float64, ensure_non_negative=True)
    assert weights.tolist() == [1.0, 1.0, 1.0], (
        "scikit-learn changed _check_sample_weight: update kfit/internals.py"
    )
    with pytest.raises(ValueError, match="[Nn]egative"):
        check_sample_weight(np.array([1.0, -1.0, 1.0]), x, ensure_non_negative=True)
