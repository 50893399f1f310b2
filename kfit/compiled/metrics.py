"""What `compile` builds from the user's `metrics`: the epoch metrics, per output.

Identifiers are resolved at `compile` (so a misspelt id fails before any training), except the
shape-dependent `'accuracy'`/`'acc'`, settled once from the first batch's `y_true` and `y_pred`
by Keras's rule (`kfit.compiled.loss.keras_accuracy_kind`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torchmetrics

from kfit import metrics as metrics_module
from kfit.compiled.loss import keras_accuracy_kind, spec_leaves
from kfit.compiled.outputs import (
    OutputSlot,
    check_tree,
    choose_output,
    is_named_structure,
    output_slots,
    per_output,
    select,
)
from kfit.data import leaves
from kfit.registry import snake_case


def _metric_list(entry: Any, arg_name: str) -> list[Any]:
    """One output's metrics as a flat list."""
    if entry is None:
        return []
    if isinstance(entry, Mapping):
        raise ValueError(
            f"`{arg_name}` nests a dict inside a list or dict; give each output a metric or "
            f"a list of metrics. Got {entry!r}."
        )
    if isinstance(entry, list | tuple):
        return [m for item in entry for m in _metric_list(item, arg_name)]
    return [entry]


class CompiledMetrics:
    """The epoch metrics `compile` was given, as torchmetrics accumulators, per output.

    For a model with one output the metrics are named as given (`accuracy`, `mae`); with
    more, each log key is `{output}_{metric}` (`out_a_mae`). A metric named twice for one
    output gets `_1`, `_2`, ... appended, and a weighted metric that repeats an unweighted one
    is called `weighted_{name}` (Keras's names).

    Args:
        metrics: unweighted metrics: a list (for a single output), a list with one entry
            (a metric or a list) per output, or a dict `{output name: metric(s)}`. Each
            metric is an id, a metric object (kfit's or torchmetrics'), or a function.
        weighted_metrics: metrics that take `sample_weight` into account, in the same forms.
    """

    entries: list[tuple[str, torchmetrics.Metric, bool]]
    _entry_outputs: list[tuple[OutputSlot, int]]
    _updates: list[Callable[..., None]]

    def __init__(self, metrics: Any, weighted_metrics: Any):
        for spec in (metrics, weighted_metrics):
            for identifier in spec_leaves(spec):  # fail on a misspelt id now, not mid-training
                if not (
                    isinstance(identifier, str)
                    and identifier.lower() in metrics_module.ACCURACY_IDS
                ):
                    metrics_module.get(identifier)
        self._metrics, self._weighted_metrics = metrics, weighted_metrics
        self.unbuild()

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.entries]

    def build(
        self,
        y_true: Any,
        y_pred: Any,
        chosen: OutputSlot | None = None,
        binary_logits: frozenset[int] = frozenset(),
    ) -> None:
        """Creates the accumulators on `y_pred`'s device, settling `'accuracy'` by shape.

        Args:
            y_true: the first batch's targets.
            y_pred: the first batch's outputs.
            chosen: the output the compiled loss was matched to with a plain `y` (for a
                dict/ModelOutput/namedtuple `y_pred`); metrics given as a list follow it.
            binary_logits: the positions of the outputs whose loss is a binary cross-entropy
                from logits: `'accuracy'` and `'binary_accuracy'` there threshold at 0.
        """
        single_spec = not any(
            isinstance(spec, Mapping) for spec in (self._metrics, self._weighted_metrics)
        )
        if single_spec and isinstance(y_true, torch.Tensor) and is_named_structure(y_pred):
            slots = [chosen if chosen is not None else choose_output(y_pred)]
            slots = [slots[0]._replace(name=None)]
        else:
            slots = output_slots(y_pred)
        spread = {
            False: per_output(self._metrics, slots, "metrics", broadcast=False),
            True: per_output(self._weighted_metrics, slots, "weighted_metrics", broadcast=False),
        }
        wanted = {
            slot.position: [
                (m, weighted)
                for weighted in (False, True)
                for m in _metric_list(
                    spread[weighted][i], "weighted_metrics" if weighted else "metrics"
                )
            ]
            for i, slot in enumerate(slots)
        }
        check_tree(y_true, slots, [s for s in slots if wanted[s.position]], "y")
        device = leaves(y_pred)[0].device
        seen: set[str] = set()
        used_objects: set[int] = set()
        for slot in slots:
            in_output: set[str] = set()
            for identifier, weighted in wanted[slot.position]:
                metric, name = self._resolve(
                    identifier,
                    select(y_true, slot),
                    select(y_pred, slot),
                    slot.position in binary_logits,
                )
                if id(metric) in used_objects:  # one object named for two outputs: a copy each
                    metric = copy.deepcopy(metric)
                used_objects.add(id(metric))
                if weighted and name in in_output:
                    name = f"weighted_{name}"
                in_output.add(name)
                key = name if len(slots) == 1 else f"{slot.name}_{name}"
                base, suffix = key, 1
                while key in seen:
                    key, suffix = f"{base}_{suffix}", suffix + 1
                seen.add(key)
                if isinstance(metric, metrics_module.Metric) and len(slots) == 1:
                    metric.name = key  # with several outputs the object keeps its own name
                metric = metric.to(device)
                self.entries.append((key, metric, weighted))
                self._entry_outputs.append((slot, len(slots)))
        self._updates = self._make_updates()
        self.built = True

    def _make_updates(self) -> list[Callable[..., None]]:
        return [
            self._updater(metric, weighted, slot, outputs)
            for (_, metric, weighted), (slot, outputs) in zip(
                self.entries, self._entry_outputs, strict=True
            )
        ]

    def __getstate__(self) -> dict[str, Any]:
        # The per-step update closures do not pickle; they are rebuilt from `entries`.
        return {**self.__dict__, "_updates": []}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._updates = self._make_updates()

    @staticmethod
    def _updater(metric: torchmetrics.Metric, weighted: bool, slot: OutputSlot, outputs: int):
        """The per-step call for one metric, decided once: kfit's take sample weights."""
        if getattr(metric, "keras_style", False):  # a Keras-style subclass: Keras's order

            def update(y_pred, y_true, sample_weight):
                metric.update(y_true, y_pred, sample_weight if weighted else None)

        elif isinstance(metric, metrics_module.Metric) and weighted:
            update = metric.update
        elif (
            isinstance(metric, metrics_module.MeanMetricWrapper)
            and metric.fast_update is not None  # the metric's own choice
        ):
            update = metric.fast_update  # the common case, in fewer calls
        else:  # unweighted, or a user's torchmetrics object called as (preds, target)

            def update(y_pred, y_true, sample_weight):
                metric.update(y_pred, y_true)

        if outputs == 1 and slot.name is None and slot.key is None:
            return update

        def update_output(y_pred, y_true, sample_weight):
            update(select(y_pred, slot), select(y_true, slot), select(sample_weight, slot))

        return update_output

    def unbuild(self) -> None:
        """Forgets the accumulators (after a first batch that failed)."""
        self.entries = []
        self._entry_outputs = []  # each entry's output
        self._updates = []
        self.built = not (spec_leaves(self._metrics) or spec_leaves(self._weighted_metrics))

    @staticmethod
    def _resolve(identifier: Any, y_true: torch.Tensor, y_pred: torch.Tensor, logits: bool):
        """The metric object and its name; `logits`: the output's loss takes logits (binary)."""
        if isinstance(identifier, str) and identifier.lower() in metrics_module.ACCURACY_IDS:
            kind = keras_accuracy_kind(y_true, y_pred)
            if kind == "binary" and logits:  # beyond Keras: a logit of 0 is probability 0.5
                return metrics_module.BinaryAccuracy(name=identifier, threshold=0.0), identifier
            cls = {
                "binary": metrics_module.BinaryAccuracy,
                "sparse": metrics_module.SparseCategoricalAccuracy,
                "categorical": metrics_module.CategoricalAccuracy,
            }[kind]
            return cls(name=identifier), identifier
        if isinstance(identifier, str) and identifier.lower() == "binary_accuracy" and logits:
            return metrics_module.BinaryAccuracy(name=identifier, threshold=0.0), identifier
        resolved = metrics_module.get(identifier)
        if isinstance(identifier, str):
            return resolved, identifier
        if isinstance(resolved, metrics_module.Metric):
            return resolved, resolved.name
        if isinstance(resolved, torchmetrics.Metric):
            return resolved, getattr(resolved, "name", None) or snake_case(type(resolved).__name__)
        name = getattr(identifier, "name", None) or getattr(identifier, "__name__", "metric")
        return metrics_module.MeanMetricWrapper(resolved, name=name), name

    def update(self, y_true: Any, y_pred: Any, sample_weight: Any) -> None:
        for update in self._updates:
            update(y_pred, y_true, sample_weight)

    def reset(self) -> None:
        for _, metric, _ in self.entries:
            metric.reset()

    def results(self) -> dict[str, torch.Tensor]:
        """The current values as device tensors (no host read)."""
        return {name: metric.compute() for name, metric, _ in self.entries}
