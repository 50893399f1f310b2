"""What `compile` builds from the user's `loss` and `metrics`: the step loss and the epoch metrics.

Identifiers are resolved at `compile` (so a misspelt id fails before any training), except the
shape-dependent `'accuracy'`/`'acc'` and `'crossentropy'`/`'ce'`, which are settled once from
the first batch's `y_true` and `y_pred` by Keras's rule.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torchmetrics
from torch import nn

from kfit import losses as losses_module
from kfit import metrics as metrics_module
from kfit.losses import _snake_case, match_shapes, reduce_weighted

_CROSSENTROPY_IDS = ("crossentropy", "ce")

# Losses that take class ids (not a tensor shaped like the prediction) as their target.
_CLASS_INDEX_LOSSES = (
    nn.CrossEntropyLoss,
    nn.NLLLoss,
    nn.MultiMarginLoss,
    nn.CTCLoss,
    nn.MultiLabelMarginLoss,
)

# Probabilistic losses: what their predictions must look like, and the class to suggest.
_PROBABILISTIC = {
    losses_module.binary_crossentropy: ("binary", "BinaryCrossentropy"),
    losses_module.binary_focal_crossentropy: ("binary", "BinaryFocalCrossentropy"),
    losses_module.categorical_crossentropy: ("categorical", "CategoricalCrossentropy"),
    losses_module.categorical_focal_crossentropy: ("categorical", "CategoricalFocalCrossentropy"),
    losses_module.sparse_categorical_crossentropy: ("categorical", "SparseCategoricalCrossentropy"),
}


def keras_accuracy_kind(y_true: torch.Tensor, y_pred: torch.Tensor) -> str:
    """Keras's rule for `'accuracy'` and `'crossentropy'`: binary, sparse or categorical.

    An `(N,)` output is one value per sample (see `match_shapes`), so it counts as binary.
    """
    if y_pred.dim() <= 1 or y_pred.shape[-1] == 1:
        return "binary"
    if y_true.dim() < y_pred.dim() or (y_true.shape[-1] == 1 and y_pred.shape[-1] > 1):
        return "sparse"
    return "categorical"


class LossTracker(metrics_module._Accumulator):
    """The epoch `loss`: batch losses averaged with their batch sizes as weights (Keras)."""

    def __init__(self, name: str = "loss"):
        super().__init__(name=name)

    def update(self, loss: torch.Tensor, batch_size: int) -> None:  # type: ignore[override]
        self.total.add_(loss.detach(), alpha=batch_size)
        self._accumulate_count(batch_size)


class CompiledLoss:
    """The loss `compile` was given, applied with Keras's reduction `sum(w * l) / N`.

    Args:
        identifier: a string id, a `kfit.losses.Loss`, a function `f(y_true, y_pred)`, or a
            torch loss module (called as `module(y_pred, y_true)`).
    """

    def __init__(self, identifier: Any):
        self.identifier = identifier
        self.fn: Any = None
        if not (isinstance(identifier, str) and identifier.lower() in _CROSSENTROPY_IDS):
            self.fn = self._as_loss(losses_module.get(identifier))
        self._unreduced_module: nn.Module | None = None
        self.built = False

    def _as_loss(self, fn: Any) -> Any:
        """Plain functions become `LossFunctionWrapper`s; Loss objects and modules stay."""
        if isinstance(fn, losses_module.Loss | nn.Module):
            return fn
        name = self.identifier if isinstance(self.identifier, str) else None
        return losses_module.LossFunctionWrapper(fn, name=name)

    @property
    def name(self) -> str:
        if isinstance(self.identifier, str):
            return self.identifier
        return getattr(self.fn, "name", None) or _snake_case(
            getattr(self.fn, "__name__", type(self.fn).__name__)
        )

    def build(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
        """Settles `'crossentropy'` from the shapes and checks `from_logits` once."""
        if self.fn is None:
            kind = keras_accuracy_kind(y_true, y_pred)
            self.fn = self._as_loss(
                {
                    "binary": losses_module.binary_crossentropy,
                    "sparse": losses_module.sparse_categorical_crossentropy,
                    "categorical": losses_module.categorical_crossentropy,
                }[kind]
            )
        if isinstance(self.fn, nn.Module) and hasattr(self.fn, "reduction"):
            self._unreduced_module = copy.copy(self.fn)
            self._unreduced_module.reduction = "none"
        self._warn_if_logits(y_pred)
        self.built = True

    def unbuild(self) -> None:
        """Forgets what `build` settled (after a first batch that failed)."""
        if isinstance(self.identifier, str) and self.identifier.lower() in _CROSSENTROPY_IDS:
            self.fn = None
        self._unreduced_module = None
        self.built = False

    def _warn_if_logits(self, y_pred: torch.Tensor) -> None:
        fn = getattr(self.fn, "fn", self.fn)
        kind, class_name = _PROBABILISTIC.get(fn, (None, None))
        options = getattr(self.fn, "fn_kwargs", {})
        if kind is None or options.get("from_logits"):
            return
        with torch.no_grad():  # a host read, once per compile: the first batch only
            low, high = float(y_pred.min()), float(y_pred.max())
            sums = y_pred.sum(-1) if kind == "categorical" else None
            off = sums is not None and float((sums - 1).abs().max()) > 1e-2
        if low < 0.0 or high > 1.0 or off:
            warnings.warn(
                f"The loss {self.name!r} expects probabilities (from_logits=False), but the first "
                f"batch's predictions range over [{low:.3g}, {high:.3g}]"
                + (" and do not sum to 1" if off else "")
                + ". If the model outputs logits, use the loss class with from_logits=True, "
                f"e.g. kfit.losses.{class_name}(from_logits=True).",
                stacklevel=4,
            )

    def __call__(
        self, y_true: torch.Tensor, y_pred: torch.Tensor, sample_weight: torch.Tensor | None
    ) -> torch.Tensor:
        if isinstance(self.fn, losses_module.Loss):
            return self.fn(y_true, y_pred, sample_weight)  # Keras's reduction, in the Loss
        if not isinstance(self.fn, _CLASS_INDEX_LOSSES):
            y_true, y_pred = match_shapes(y_true, y_pred, self.name)
        if sample_weight is None or self._unreduced_module is None:
            return self.fn(y_pred, y_true)  # a torch loss module: (input, target)
        return reduce_weighted(self._unreduced_module(y_pred, y_true), sample_weight)


def _as_list(value: Any, arg_name: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        raise ValueError(
            f"`{arg_name}` as a dict (one entry per output) needs a multi-output "
            "model; this model has one output, so pass a list."
        )
    if isinstance(value, list | tuple):
        return list(value)
    return [value]  # a bare id or object: Keras refuses it; kfit takes it as a one-item list


class CompiledMetrics:
    """The epoch metrics `compile` was given, as torchmetrics accumulators.

    Args:
        metrics: unweighted metrics (ids, objects, classes or functions).
        weighted_metrics: metrics that take `sample_weight` into account.
    """

    def __init__(self, metrics: Any, weighted_metrics: Any):
        self.entries: list[tuple[str, torchmetrics.Metric, bool]] = []
        self._updates: list[Callable[..., None]] = []
        self._pending = [(m, False) for m in _as_list(metrics, "metrics")]
        self._pending += [(m, True) for m in _as_list(weighted_metrics, "weighted_metrics")]
        for identifier, _ in self._pending:  # fail on a misspelt id now, not mid-training
            if not (
                isinstance(identifier, str) and identifier.lower() in metrics_module.ACCURACY_IDS
            ):
                metrics_module.get(identifier)
        self.built = not self._pending

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.entries]

    def build(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
        """Creates the accumulators on `y_pred`'s device, settling `'accuracy'` by shape."""
        seen: set[str] = set()
        for identifier, weighted in self._pending:
            metric, name = self._resolve(identifier, y_true, y_pred)
            if weighted and name in seen:
                name = f"weighted_{name}"
            base, suffix = name, 1
            while name in seen:
                name, suffix = f"{base}_{suffix}", suffix + 1
            seen.add(name)
            if isinstance(metric, metrics_module.Metric):
                metric.name = name
            self.entries.append((name, metric.to(y_pred.device), weighted))
        self._updates = [self._updater(metric, weighted) for _, metric, weighted in self.entries]
        self.built = True

    @staticmethod
    def _updater(metric: torchmetrics.Metric, weighted: bool):
        """The per-step call for one metric, decided once: kfit's take sample weights."""
        if isinstance(metric, metrics_module.Metric):
            if weighted:
                return metric.update
            return lambda y_pred, y_true, sample_weight: metric.update(y_pred, y_true)
        # a user's torchmetrics object: (preds, target), as torchmetrics calls it
        return lambda y_pred, y_true, sample_weight: metric.update(y_pred, y_true)

    def __getstate__(self) -> dict[str, Any]:
        # The per-step update closures do not pickle; they are rebuilt from `entries`.
        state = self.__dict__.copy()
        state["_updates"] = []
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._updates = [self._updater(metric, weighted) for _, metric, weighted in self.entries]

    def unbuild(self) -> None:
        """Forgets the accumulators built from a first batch that failed."""
        self.entries = []
        self._updates = []
        self.built = not self._pending

    @staticmethod
    def _resolve(identifier: Any, y_true: torch.Tensor, y_pred: torch.Tensor):
        if isinstance(identifier, str) and identifier.lower() in metrics_module.ACCURACY_IDS:
            kind = keras_accuracy_kind(y_true, y_pred)
            cls = {
                "binary": metrics_module.BinaryAccuracy,
                "sparse": metrics_module.SparseCategoricalAccuracy,
                "categorical": metrics_module.CategoricalAccuracy,
            }[kind]
            return cls(name=identifier), identifier
        resolved = metrics_module.get(identifier)
        if isinstance(identifier, str):
            return resolved, identifier
        if isinstance(resolved, metrics_module.Metric):
            return resolved, resolved.name
        if isinstance(resolved, torchmetrics.Metric):
            return resolved, getattr(resolved, "name", None) or _snake_case(type(resolved).__name__)
        name = getattr(identifier, "name", None) or getattr(identifier, "__name__", "metric")
        return metrics_module.MeanMetricWrapper(resolved, name=name), name

    def update(
        self, y_true: torch.Tensor, y_pred: torch.Tensor, sample_weight: torch.Tensor | None
    ) -> None:
        for update in self._updates:
            update(y_pred, y_true, sample_weight)

    def reset(self) -> None:
        for _, metric, _ in self.entries:
            metric.reset()

    def results(self) -> dict[str, torch.Tensor]:
        """The current values as device tensors (no host read)."""
        return {name: metric.compute() for name, metric, _ in self.entries}
