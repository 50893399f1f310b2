"""The model's accumulators: updated each step, reset each epoch, read once per epoch.

`MetricTracking` is mixed into `kfit.Model` (through `Trainer`). It holds what every step adds
to: the loss tracker, each output's loss and each `add_loss` term (when there are several),
the compiled metrics, and any `torchmetrics.Metric` the model has as an attribute (a custom
`train_step`'s trackers, as in Keras). All of them are torchmetrics metrics on the model's
device; nothing here reads a value back to the host except `get_metrics_result` and
`read_values`, the epoch's one sync point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torchmetrics

from kfit import data as data_module

if TYPE_CHECKING:
    from kfit.compiled.loss_terms import LossTerms
    from kfit.training.state import CompileState


def read_values(values: dict[str, Any]) -> dict[str, Any]:
    """Reads device values to Python floats with one transfer. Sync point.

    Numbers pass through; a one-element tensor becomes a float, a longer one a list.
    """
    tensors = {k: v for k, v in values.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        return dict(values)
    scalars = list(tensors.values())
    device = scalars[0].device
    if all(v.dim() == 0 and v.dtype == torch.float32 and v.device == device for v in scalars):
        # The usual epoch logs: float32 scalars on one device, read with a single stack.
        return {**values, **dict(zip(tensors, torch.stack(scalars).tolist(), strict=True))}
    flat = [v.detach().reshape(-1).float() for v in tensors.values()]
    numbers = torch.cat([f.to(flat[0].device) for f in flat]).tolist()  # the one host read
    read, start = {}, 0
    for (key, value), piece in zip(tensors.items(), flat, strict=True):
        chunk = numbers[start : start + piece.numel()]
        read[key] = chunk[0] if value.dim() == 0 else chunk
        start += piece.numel()
    return {key: read.get(key, value) for key, value in values.items()}


def to_float32(tensor: Any) -> Any:
    """A half-precision tensor as float32 (metrics measure mixed-precision outputs in it)."""
    if isinstance(tensor, torch.Tensor) and tensor.dtype in (torch.float16, torch.bfloat16):
        return tensor.float()
    return tensor


class MetricTracking:
    """The loss and metric accumulators of `kfit.Model` (see the module docstring)."""

    #: What `compile` decided (`kfit.training.state.CompileState`); None before `compile`.
    compile_state: CompileState | None
    _loss_terms: LossTerms

    @property
    def compiled(self) -> bool:
        """Whether `compile` was called (Keras's `model.compiled`)."""
        return self.compile_state is not None

    def _compiled(self, method: str) -> CompileState:
        """The model's `CompileState`.

        Raises:
            ValueError: before `compile`, naming `method`.
        """
        state = self.compile_state
        if state is None:
            raise ValueError(
                f"You must call compile() before {method}(): e.g. "
                "model.compile(optimizer='rmsprop', loss='mse')."
            )
        return state

    def update_metrics(
        self, loss: torch.Tensor, y: Any, y_pred: Any, sample_weight: Any, batch_size: int
    ) -> None:
        """Adds one batch to the epoch's loss and compiled metrics (on the device).

        Under mixed precision the half-precision outputs are measured in float32.
        """
        state = self._compiled("update_metrics")
        if state.precision.dtype is not None:
            y_pred = data_module.map_tree(to_float32, y_pred)
        compiled = state.metrics
        grad_enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(False)  # as a call: half the cost of `with torch.no_grad()`
        try:
            state.loss_tracker.update(loss, batch_size)
            if not compiled.built:
                self._build_metrics(y, y_pred)
            compiled.update(y, y_pred, sample_weight)
        finally:
            torch.set_grad_enabled(grad_enabled)

    def _build_metrics(self, y: Any, y_pred: Any) -> None:
        state = self._compiled("update_metrics")
        compiled = state.metrics
        if y is None:
            raise ValueError(
                "The compiled metrics need targets: pass `y` (or a data set that yields (x, y))."
            )
        compiled_loss = state.loss
        if compiled_loss is None:
            compiled.build(y, y_pred)
        else:
            compiled.build(y, y_pred, compiled_loss.chosen, compiled_loss.binary_logits)
        clashes = sorted(set(compiled.names) & set(self._loss_terms.trackers))
        if clashes:
            raise ValueError(
                f"The loss terms {clashes} have the names of metrics; pass another `name` to "
                "add_loss."
            )

    @property
    def metrics(self) -> list[Any]:
        """Every accumulator reset at the start of each epoch and evaluation.

        The loss tracker (`name == 'loss'`, with `update_state(loss)`), each output's loss and
        each `add_loss` term (when present), the compiled metrics, and any
        `torchmetrics.Metric` set as an attribute of the model (a custom `train_step`'s
        trackers, as in Keras). Until the compiled metrics are built (on the first batch,
        which settles `'accuracy'`), they are listed as one `CompiledMetricsContainer`
        named `compile_metrics`, as in Keras: its `update_state(y, y_pred)` builds and
        updates them, and its `result()` is a dict that the logs flatten.
        """
        built_in = self._built_in_metrics()
        found = built_in + [metric for _, metric in self._attribute_metrics(built_in)]
        state = self.compile_state
        if state is not None and not state.metrics.built:
            found.insert(1, CompiledMetricsContainer(self))
        return found

    def _built_in_metrics(self) -> list[torchmetrics.Metric]:
        state = self.compile_state
        if state is None:
            return list(self._loss_terms.trackers.values())
        found: list[torchmetrics.Metric] = [state.loss_tracker]
        if state.loss is not None:
            found += state.loss.trackers.values()
        found += self._loss_terms.trackers.values()
        return found + [metric for _, metric, _ in state.metrics.entries]

    def _attribute_metrics(self, known: list[Any]) -> list[tuple[str, torchmetrics.Metric]]:
        """The model's `torchmetrics.Metric` submodules not in `known`, by log name."""
        known_ids = {id(m) for m in known}
        return [
            (getattr(m, "name", None) or path.replace(".", "_"), m)
            for path, m in self.named_modules()
            if isinstance(m, torchmetrics.Metric) and id(m) not in known_ids
        ]

    def reset_metrics(self) -> None:
        """Clears every accumulator in `metrics`."""
        for metric in self.metrics:
            metric.reset()

    def metric_values(self) -> dict[str, torch.Tensor]:
        """The running values to log, as device tensors (no host read).

        `loss`, then each output's loss, each `add_loss` term, the compiled metrics, and the
        model's own metric attributes that were updated since the last reset.
        """
        state = self._compiled("metric_values")
        values = {}
        if state.loss_tracker.update_count:  # a custom step may log other values only
            values["loss"] = state.loss_tracker.compute()
        if state.loss is not None:
            values.update(state.loss.results())
        for key, tracker in self._loss_terms.trackers.items():
            if tracker.update_count:  # a term can be missing from validation steps
                values[key] = tracker.compute()
        values.update(state.metrics.results())
        for name, metric in self._attribute_metrics(self._built_in_metrics()):
            if metric.update_count:
                values[name] = metric.compute()
        return values

    def _log_keys(self) -> set[str]:
        """The log keys taken by the loss, per-output losses and compiled metrics."""
        keys = {"loss"}
        state = self.compile_state
        if state is not None:
            keys.update(state.metrics.names)
            if state.loss is not None:
                keys.update(state.loss.trackers)
        return keys

    def metric_direction(self, key: str) -> str | None:
        """Whether lower (`'down'`) or higher (`'up'`) is better for a log key.

        Loss keys are `'down'`; a metric key (with or without `val_`) takes its metric's
        direction; None when unknown.
        """
        name = key.removeprefix("val_")
        if name == "loss" or name.endswith("_loss"):
            return "down"
        state = self.compile_state
        for entry_name, metric, _ in state.metrics.entries if state is not None else []:
            if entry_name == name:
                higher = getattr(metric, "higher_is_better", None)
                return getattr(metric, "direction", None) or (
                    None if higher is None else ("up" if higher else "down")
                )
        return None

    def get_metrics_result(self) -> dict[str, Any]:
        """The running `loss` and metrics as Python floats. Sync point."""
        return read_values(self.metric_values())


class CompiledMetricsContainer:
    """The compiled metrics as one Keras-style metric, `compile_metrics` (Keras's name).

    Listed in `model.metrics` until the metrics are built, so that a Keras-style custom step
    that updates every entry of `self.metrics` updates them too.

    Args:
        model: the model whose compiled metrics these are.
    """

    name = "compile_metrics"

    def __init__(self, model: Any):
        self._model = model

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Builds the compiled metrics on the first call, then updates them all."""
        model = self._model
        state = model.compile_state
        if state.precision.dtype is not None:
            y_pred = data_module.map_tree(to_float32, y_pred)
        with torch.no_grad():
            if not state.metrics.built:
                model._build_metrics(y_true, y_pred)
            state.metrics.update(y_true, y_pred, sample_weight)

    def result(self) -> dict[str, torch.Tensor]:
        """`{metric name: value}` as device tensors."""
        return self._model.compile_state.metrics.results()

    def reset(self) -> None:
        self._model.compile_state.metrics.reset()

    reset_state = reset
