"""The three steps and their helpers: one batch through the model, the loss and the optimizer.

`Step` is mixed into `kfit.Model` (through `Trainer`). `train_step` is `call_forward` ->
`compute_loss` -> `apply_gradients` -> `update_metrics`; a subclass overrides any of them
(Keras's custom steps). Nothing here reads a value back to the host.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch

from kfit import data as data_module
from kfit.compiled import loss_terms
from kfit.data import batch_size_of
from kfit.training import precision
from kfit.training.tracking import MetricTracking


class Step(MetricTracking):
    """`train_step` / `test_step` / `predict_step` for `kfit.Model`, and their helpers."""

    # Set by `kfit.Model` (declared here for the type checker).
    optimizer: torch.optim.Optimizer | None
    #: `Model.forward` as kfit defines it (a subclass that overrides it is called itself).
    _plain_forward: Any
    #: torchrun: the DistributedDataParallel forward that training calls, set by
    #: `kfit.distributed.prepare_training`; None otherwise.
    ddp_forward: Any = None
    #: The wrapped module and the label keys (`labels`, `label`) its forward takes.
    _accepted_labels: tuple[Any, set[str]] | None = None

    if TYPE_CHECKING:

        def _optimizer_for_step(self) -> torch.optim.Optimizer: ...

    def train_step(self, data: Any) -> dict[str, Any] | None:
        """One optimisation step on a batch; updates the loss and metrics.

        `data` is the batch as the data yields it: `(x, y)`, `(x, y, sample_weight)` or `(x,)`
        (arrays give `(x, y)` unless there are sample or class weights);
        `kfit.utils.unpack_x_y_sample_weight(data)` always gives the three.

        Override in a subclass for a custom step (a GAN, a contrastive loss). The helpers
        `call_forward`, `compute_loss`, `apply_gradients` and `update_metrics` keep the
        compiled loss, optimizer and metrics. Return None to log the running loss and metrics
        (`metric_values`), or a dict `{name: tensor or number}` to log that instead: the
        epoch's values are then the last step's dict, as in Keras (a nested dict, such as a
        compiled-metrics container's `result()`, is flattened).
        """
        x, y, sample_weight = data_module.unpack(data)
        state = self._compiled("train_step")
        if state.jit is not None and state.jit.train_step(self, x, y, sample_weight):
            return None  # `jit_compile`: the whole step compiled (kfit.training.jit)
        with state.precision.autocast():  # mixed precision, if compiled with it
            y_pred, loss = self._forward_and_loss(x, y, sample_weight)
        self.apply_gradients(loss)
        self.update_metrics(loss, y, y_pred, sample_weight, batch_size_of(x))
        return None

    def test_step(self, data: Any) -> dict[str, Any] | None:
        """One evaluation step: forward, loss and metric updates, no gradients.

        Override like `train_step` (`data` as there); it may also return a dict to log.
        """
        x, y, sample_weight = data_module.unpack(data)
        with self._compiled("test_step").precision.autocast():
            y_pred, loss = self._forward_and_loss(x, y, sample_weight)
        self.update_metrics(loss, y, y_pred, sample_weight, batch_size_of(x))
        return None

    def predict_step(self, batch: data_module.Batch) -> Any:
        """Returns the model's outputs for the inputs of `batch`."""
        state = self.compile_state
        with (state.precision if state is not None else precision.UNCOMPILED).autocast():
            return self.call_forward(batch[0])

    def _forward_and_loss(self, x: Any, y: Any, sample_weight: Any) -> tuple[Any, torch.Tensor]:
        """`call_forward`, then `compute_loss`: one compiled graph with `jit_compile=True`."""
        jit = self._compiled("train_step").jit
        if jit is not None and jit.active():
            return jit.forward_and_loss(self, x, y, sample_weight)
        y_pred = self.call_forward(x)
        return y_pred, self.compute_loss(x, y, y_pred, sample_weight)

    def call_forward(self, x: Any) -> Any:
        """Calls the model: a tuple/list `x` positionally, a dict by keyword.

        With `compile(jit_compile=True)` the call goes through `torch.compile`
        (`kfit.training.jit`).
        """
        if torch.compiler.is_compiling():  # inside kfit.training.jit: the call below collects
            return self._call_forward(x)
        stack = loss_terms.running_stack()  # `kfit.add_loss` from submodules adds here
        stack.append(self._loss_terms)
        try:
            return self._call_forward(x)
        finally:
            stack.pop()

    def _call_forward(self, x: Any) -> Any:
        state = self.compile_state
        jit = state.jit if state is not None else None
        if jit is not None and jit.active():
            return jit.forward(self, x)
        if self._loss_terms.pending:  # tensors `add_loss` got in a forward nobody used
            self._loss_terms.pending.clear()
        if state is not None and state.channels_last:  # 4-d inputs as the weights are laid out
            x = data_module.map_tree(_to_channels_last, x)
        model: Any = self
        ddp_forward = self.ddp_forward
        if ddp_forward is not None and self.training:  # torchrun: gradients averaged (DDP)
            model = ddp_forward
        elif model is self and self._wraps_plainly():
            model = self._modules["module"]  # the same call, minus one nn.Module layer
        if isinstance(x, torch.Tensor):
            return model(x)
        if isinstance(x, dict):
            if any(key in x for key in data_module.LABEL_KEYS):
                x = self._without_unaccepted_labels(x)
            return model(**x)
        if isinstance(x, tuple | list):
            return model(*x)
        return model(x)

    def _without_unaccepted_labels(self, x: dict[str, Any]) -> dict[str, Any]:
        """`x` minus the label keys (`labels`, `label`) that the model's `forward` does not take.

        HuggingFace models take `labels` (and compute their own loss from it); a plain module
        called with a dict batch would fail on it.
        """
        target: Any = self._modules["module"] if self._wraps_plainly() else self
        accepted = self._accepted_labels
        if accepted is None or accepted[0] is not target:
            parameters = inspect.signature(target.forward).parameters
            takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
            keys = {k for k in data_module.LABEL_KEYS if takes_any or k in parameters}
            accepted = (target, keys)
            self._accepted_labels = accepted
        return {k: v for k, v in x.items() if k not in data_module.LABEL_KEYS or k in accepted[1]}

    def _wraps_plainly(self) -> bool:
        """Whether calling `self` is calling `self.module`: kfit's forward, no hooks on `self`."""
        return (
            type(self).forward is type(self)._plain_forward
            and not (self._forward_hooks or self._forward_pre_hooks)
            and "module" in self._modules
        )

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> torch.Tensor:
        """The step's total loss, as a scalar tensor (Keras's signature).

        It is the compiled loss (`sum(loss_weights[i] * loss_i)` over the outputs) plus every
        `add_loss` term. Also tracks each output's loss and each term for the log.

        Args:
            x: the inputs (used for the batch size of the `add_loss` terms' log values).
            y: the targets.
            y_pred: the model's outputs.
            sample_weight: per-sample weights, or None.
            training: accepted for Keras compatibility; the loss is the same either way.

        Raises:
            ValueError: when there are no targets for the compiled loss, or nothing to
                minimise (no compiled loss and no `add_loss` term).
        """
        loss = None
        compiled = self._compiled("compute_loss").loss
        if compiled is not None:
            if y is None:
                raise ValueError(
                    "The compiled loss needs targets: pass `y` (or a data set that yields (x, y))."
                )
            if not compiled.built:
                compiled.build(y, y_pred)
            loss = compiled(y, y_pred, sample_weight)
        if self._loss_terms.functions or self._loss_terms.pending:
            terms = self._loss_terms.values(self._log_keys)
            self._loss_terms.track(terms, batch_size_of(y_pred if x is None else x))
            for value in terms.values():
                loss = value if loss is None else loss + value
        if compiled is None:  # the model's own loss (HuggingFace models given `labels`)
            own = _own_loss(y_pred)
            if own is not None:
                loss = own if loss is None else loss + own
        if loss is None:
            raise ValueError(
                "There is no loss to minimise: compile() was given no `loss`, the model's "
                "output carries no `loss` entry (a HuggingFace model computes one when the "
                "batch has `labels`) and the model added no `add_loss` term. Pass a loss to "
                "compile(), call add_loss(), or override train_step."
            )
        return loss

    def apply_gradients(self, loss: torch.Tensor) -> None:
        """Back-propagates `loss` and steps the compiled optimizer.

        This is `zero_grad()`, `loss.backward()`, `optimizer.step()`, with the Keras options
        of a `kfit.optimizers` optimizer (clipping, decoupled weight decay, a learning-rate
        schedule, `gradient_accumulation_steps`) applied in between, and the loss scaled for
        `precision='16-mixed'`.
        """
        optimizer = self.optimizer
        if optimizer is None:  # lazy modules: built once their parameters exist
            optimizer = self._optimizer_for_step()
        state = self._compiled("apply_gradients")
        scaler = state.precision.scaler  # precision='16-mixed' only
        if not loss.requires_grad and torch.is_grad_enabled():
            raise ValueError(
                "The loss has no gradient: it does not depend on any trainable weight. Compute "
                "it with torch operations on `y_pred` (not numpy, `.item()` or `.detach()`), "
                "and check that some parameters have requires_grad=True."
            )
        if state.step_controls is not None:
            state.step_controls.step(optimizer, loss, scaler)
        elif scaler is not None:
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)  # skips the update if a gradient is inf/NaN
            scaler.update()
        else:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def _to_channels_last(tensor: Any) -> Any:
    if isinstance(tensor, torch.Tensor) and tensor.dim() == 4 and tensor.is_floating_point():
        return tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def _own_loss(y_pred: Any) -> torch.Tensor | None:
    """The `loss` entry of a dict/ModelOutput/namedtuple output, if it has one."""
    if isinstance(y_pred, dict):  # a HuggingFace ModelOutput is a dict
        loss = y_pred.get("loss")
    else:
        loss = getattr(y_pred, "loss", None) if isinstance(y_pred, tuple) else None
    return loss if isinstance(loss, torch.Tensor) else None
