"""The epoch and step loops: `fit`, `evaluate`, `predict`, `*_on_batch` and the three steps.

`Trainer` is mixed into `kfit.Model`. `fit` only orchestrates: build the batches, start the
callbacks, then for each epoch run `train_step` on every batch, read the epoch values once,
validate, and end the epoch. Nothing inside a step reads a value back to the host; the places
that do are marked "sync point".
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from kfit import data as data_module
from kfit import distributed
from kfit.callbacks.callback import Callback
from kfit.callbacks.callback_list import CallbackList, RunningLogs
from kfit.callbacks.diagnosis import TrainingDiagnosis
from kfit.callbacks.history import History
from kfit.callbacks.progbar_logger import ProgbarLogger
from kfit.callbacks.torch_scheduler import as_callback
from kfit.compiled import loss_terms
from kfit.compiled.outputs import check_predictions
from kfit.data import DataSource, batch_size_of
from kfit.training import isolation, precision
from kfit.training.tracking import MetricTracking, read_values, to_float32


def _check_int(name: str, value: Any, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")


def _check_verbose(verbose: Any) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2; got {verbose!r}.")
    return int(verbose)


def _inference(model: torch.nn.Module) -> contextlib.AbstractContextManager[None]:
    """Eval mode without gradients; each submodule's mode comes back even if the body raises."""
    return isolation.exact_modes(model)


class _DeferredInterrupt:
    """Holds Ctrl-C (SIGINT) during `fit` until the current batch has finished.

    A second Ctrl-C interrupts at once. Only the main thread can install signal handlers;
    elsewhere the interrupt is left alone.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc_info: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _to_channels_last(tensor: Any) -> Any:
    if isinstance(tensor, torch.Tensor) and tensor.dim() == 4 and tensor.is_floating_point():
        return tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def _to_numpy(tree: Any) -> Any:
    """Host copies as numpy; half-precision outputs (mixed precision) become float32."""
    return data_module.map_tree(lambda t: to_float32(t).detach().cpu().numpy(), tree)


class Trainer(MetricTracking):
    """`fit` / `evaluate` / `predict` for `kfit.Model` (see there for `compile`)."""

    # Set by `kfit.Model.__init__` (declared here for the type checker).
    optimizer: torch.optim.Optimizer | None
    stop_training: bool
    history: Any
    epochs_completed: int
    _initial_epoch: int | None
    _interrupt: _DeferredInterrupt | None
    _ending_with_error: bool
    #: `Model.forward` as kfit defines it (a subclass that overrides it is called itself).
    _plain_forward: Any

    if TYPE_CHECKING:

        @property
        def device(self) -> torch.device: ...

        @property
        def float_dtype(self) -> torch.dtype: ...

        def _optimizer_for_step(self) -> torch.optim.Optimizer: ...

    # ------------------------------------------------------------------ steps

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
        if (
            state is not None and state.channels_last
        ):  # 4-d inputs in the layout the model's weights use
            x = data_module.map_tree(_to_channels_last, x)
        model: Any = self
        ddp_forward = self.__dict__.get("_ddp_forward")
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
        accepted = self.__dict__.get("_accepted_labels")
        if accepted is None or accepted[0] is not target:
            parameters = inspect.signature(target.forward).parameters
            takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
            keys = {k for k in data_module.LABEL_KEYS if takes_any or k in parameters}
            accepted = (target, keys)
            self.__dict__["_accepted_labels"] = accepted
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

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: int | str = "auto",
        callbacks: Sequence[Callback] | None = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        class_weight: dict[Any, float] | None = None,
        sample_weight: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: int | Sequence[int] = 1,
        diagnose: bool = True,
    ) -> History:
        """Trains the model for `epochs` epochs (Keras 3's signature and semantics).

        Args:
            x: inputs: arrays/tensors (or a tuple/list/dict of them), a `Dataset`, a
                `DataLoader` or an iterable yielding `(x, y[, sample_weight])`.
            y: targets when `x` holds arrays.
            batch_size: samples per step (default 32; for arrays and `Dataset`s); per process
                under torchrun (see `kfit.distributed`).
            epochs: the index of the last epoch (training runs `initial_epoch..epochs-1`).
            verbose: `'auto'` or 1 (progress bar), 2 (one line per epoch), 0 (silent).
            callbacks: `kfit.callbacks.Callback` objects.
            validation_split: the fraction of the samples, taken from the end before
                shuffling, kept for validation (arrays only).
            validation_data: `(x_val, y_val[, sample_weight_val])` or a data set.
            shuffle: whether to reshuffle the samples every epoch (arrays and Datasets).
            class_weight: `{class: weight}`; every class present in `y` needs a weight.
            sample_weight: one weight per training sample.
            initial_epoch: the epoch to start from (for resuming).
            steps_per_epoch: steps per epoch; the data then continues across epochs.
            validation_steps: steps per validation (default: the whole validation data).
            validation_batch_size: batch size for validation (default `batch_size`).
            validation_freq: validate every `k` epochs, or at the listed (1-based) epochs.
            diagnose: at `verbose >= 1`, print a short note under the epoch line when the
                loss rises, turns NaN, flattens from the start or over-fits (see
                `kfit.callbacks.diagnosis`); notes are kept in `History.diagnostics`. Not in Keras.

        Returns:
            A `History`, also kept as `model.history`.

        Raises:
            ValueError, TypeError: for invalid arguments, before any weight changes (a
                `Dataset`, `DataLoader` or generator is checked as its batches arrive).
        """
        state = self._compiled("fit")
        verbose_arg, verbose = verbose, _check_verbose(verbose)
        _check_int("batch_size", batch_size, 1, allow_none=True)
        _check_int("epochs", epochs, 0)
        _check_int("initial_epoch", initial_epoch, 0)
        _check_int("steps_per_epoch", steps_per_epoch, 1, allow_none=True)
        _check_int("validation_steps", validation_steps, 1, allow_none=True)
        _check_int("validation_batch_size", validation_batch_size, 1, allow_none=True)
        if not isinstance(validation_freq, int) or isinstance(validation_freq, bool):
            if not (isinstance(validation_freq, list | tuple) and validation_freq):
                raise ValueError(
                    f"`validation_freq` must be an integer >= 1 or a list of "
                    f"epochs; got {validation_freq!r}."
                )
        elif validation_freq < 1:
            raise ValueError(f"`validation_freq` must be >= 1; got {validation_freq}.")
        if not isinstance(shuffle, bool):
            raise ValueError(f"`shuffle` must be True or False; got {shuffle!r}.")
        if not isinstance(diagnose, bool):
            raise ValueError(f"`diagnose` must be True or False; got {diagnose!r}.")
        if (
            isinstance(validation_split, bool)
            or not isinstance(validation_split, int | float)
            or not 0.0 <= validation_split < 1.0
        ):
            raise ValueError(f"`validation_split` must be in [0, 1); got {validation_split!r}.")
        batch_size = batch_size or 32

        train = data_module.make_data(
            x, y, sample_weight, self.float_dtype, batch_size=batch_size, shuffle=shuffle
        )
        val = None
        if validation_data is not None:
            val = self._validation_data(validation_data, validation_batch_size or batch_size)
        elif validation_split:
            train, val = train.split(validation_split)  # in-memory data only
        if class_weight is not None:  # training samples only, as in Keras
            train = self._apply_class_weight(train, class_weight)
        train = train.to(self.device)
        val = None if val is None else val.to(self.device)
        for streamed in (train, val):
            if streamed is not None and not streamed.in_memory:  # checked batch by batch
                self._check_targets_of(streamed)

        # A custom train_step with the default test_step may not use the compiled loss at
        # all (a GAN): its training data cannot be checked by a test step.
        custom_train_only = (
            type(self).train_step is not Trainer.train_step
            and type(self).test_step is Trainer.test_step
        )
        for checked, checked_batch_size in (
            (None if custom_train_only else train, batch_size),
            (val, validation_batch_size or batch_size),
        ):
            if checked is not None and checked.in_memory:
                with isolation.run_lock(self).hold():  # no other thread's evaluate meanwhile
                    self._check_first_batch(checked, checked_batch_size)
        # Under torchrun: this process's part of the data, and a DDP training forward.
        train = distributed.shard_for_training(train, self.device)
        val = distributed.shard_for_evaluation(
            val, validation_batch_size or batch_size, validation_steps, self.device
        )
        distributed.prepare_training(self)
        steps = steps_per_epoch or train.num_batches(batch_size)
        history = History()
        user_callbacks = [as_callback(c) for c in callbacks or []]
        if state.scheduler_callback is not None:
            user_callbacks.append(state.scheduler_callback)
        callback_list = CallbackList(
            [
                *user_callbacks,
                history,
                *([ProgbarLogger()] if verbose else []),
                # Last, so that its notes print under the epoch line (issue 9).
                *([TrainingDiagnosis(user_callbacks)] if verbose and diagnose else []),
            ],
            self,
            {"verbose": verbose_arg, "epochs": epochs, "steps": steps},
        )
        batches = self._batch_stream(train, batch_size, shuffle, steps_per_epoch)
        self.stop_training = False
        self.history = history
        epoch_logs: dict[str, Any] = {}
        previous_steps = None  # an epoch's length, for the message when a generator runs out
        # The model's lock: other threads' evaluate/predict run between two steps (isolation).
        with _DeferredInterrupt() as interrupt, isolation.run_lock(self).training():
            self._interrupt = interrupt
            self._ending_with_error = False
            try:
                callback_list.on_train_begin()
                initial_epoch = self._initial_epoch or initial_epoch  # see resume_at_epoch
                for epoch in range(initial_epoch, epochs):
                    self.reset_metrics()
                    callback_list.on_epoch_begin(epoch)
                    self.train()
                    seen, step_logs = self._run_epoch(
                        next(batches), callback_list, "train", self.train_step
                    )
                    if seen == 0 or (
                        steps_per_epoch and seen < steps_per_epoch and not self.stop_training
                    ):
                        data_module.warn_ran_out(seen, steps_per_epoch or previous_steps)
                        self.stop_training = True
                        if seen == 0:
                            break
                    previous_steps = seen
                    epoch_logs = self._logs_reader(step_logs)()  # sync point: once per epoch
                    if val is not None and self._should_validate(epoch, validation_freq):
                        val_logs = self._evaluate_data(
                            val,
                            validation_batch_size or batch_size,
                            validation_steps,
                            callback_list,
                        )
                        epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
                    self.epochs_completed = epoch + 1
                    callback_list.on_epoch_end(epoch, epoch_logs)
                    if interrupt.requested:  # Ctrl-C during validation or on_epoch_end
                        raise KeyboardInterrupt
                    self.stop_training = distributed.any_process(self.stop_training)
                    if self.stop_training:
                        break
            except BaseException as err:
                # Ctrl-C (the current batch finished) or an error: end training properly so
                # that files and bars are closed, then re-raise. `ending_with_error` tells
                # callbacks (BackupAndRestore) that the run did not finish.
                self._ending_with_error = True
                callback_list.on_exception(err)
                try:
                    callback_list.on_train_end(epoch_logs)
                except Exception as cleanup_error:
                    err.add_note(f"on_train_end also failed during cleanup: {cleanup_error!r}")
                raise
            finally:
                self._interrupt = None
                self._initial_epoch = None
                self._ending_with_error = False
        callback_list.on_train_end(epoch_logs)
        distributed.barrier()  # torchrun: rank 0's files are written when `fit` returns
        return history

    def resume_at_epoch(self, epoch: int) -> None:
        """Makes the running `fit` start at `epoch` (from `on_train_begin`). Not in Keras.

        `BackupAndRestore` calls it after restoring a backup, so that training continues
        with the epoch after the one saved.
        """
        self._initial_epoch = epoch

    @property
    def ending_with_error(self) -> bool:
        """Whether the running `fit` is ending because of Ctrl-C or an exception.

        True in `on_exception` and `on_train_end` on that path (then `fit` re-raises); False
        when `fit` ends normally. Not in Keras.
        """
        return self._ending_with_error

    def _check_first_batch(self, data: DataSource, batch_size: int) -> None:
        """Runs the loss and metrics once on the first batch, in eval mode, without gradients.

        This settles `'accuracy'`/`'crossentropy'`, materialises lazy modules, and raises any
        shape error before training starts: no weight, buffer or optimizer state changes.
        """
        state = self._compiled("fit")
        first = next(data.batches(batch_size, False, self.device))
        try:
            with _inference(self), state.jit.paused() if state.jit else contextlib.nullcontext():
                self.test_step(data_module.as_yielded(first))
            self._check_targets_of(data)  # every class id, once, up front
        except Exception as err:
            if isinstance(err, RuntimeError):  # torch's own message names no argument
                err.add_note(f"kfit: raised by the first batch, {_described_batch(first)}.")
            # Nothing settled from a batch that failed: the next call decides afresh.
            if state.loss is not None:
                state.loss.unbuild()
            state.metrics.unbuild()
            raise
        finally:
            self.reset_metrics()

    def _run_epoch(
        self,
        batches: Iterator[data_module.Batch],
        callback_list: CallbackList,
        mode: str,
        step_fn: Any,
    ) -> tuple[int, dict[str, Any] | None]:
        """Runs `step_fn` on every batch with the batch hooks around it.

        Returns:
            The number of batches, and the last step's returned logs (None for the default
            steps, whose values are read from `metric_values`).
        """
        begin, end = f"on_{mode}_batch_begin", f"on_{mode}_batch_end"
        call_begin, call_end = callback_list.wants(begin), callback_list.wants(end)
        # Under torchrun: batch logs are this process's own; a stop on one stops all.
        agree_each_step = distributed.agrees_each_step(callback_list, mode)
        let_others_in = isolation.run_lock(self).let_others_in  # other threads' evaluate/predict
        seen, step_logs = 0, None
        for step, batch in enumerate(batches):
            if call_begin:
                callback_list.on_batch_hook(begin, step)
            step_logs = step_fn(data_module.as_yielded(batch))
            seen = step + 1
            if call_end:
                read_running = distributed.local_reads(self._logs_reader(step_logs), self)
                callback_list.on_batch_hook(end, step, RunningLogs(read_running))
            if self._interrupt is not None and self._interrupt.requested:
                raise KeyboardInterrupt
            if agree_each_step:
                self.stop_training = distributed.any_process(self.stop_training)
            if mode == "train" and self.stop_training:
                break
            let_others_in()
        return seen, step_logs

    def _logs_reader(self, step_logs: dict[str, Any] | None) -> Any:
        """A function reading the logs to Python numbers: a step's dict, or the metrics."""
        if step_logs is None:
            return self.get_metrics_result
        if not isinstance(step_logs, dict):
            raise TypeError(
                "A custom train_step/test_step must return None or a dict of values to log; "
                f"got {type(step_logs).__name__}."
            )
        return lambda: read_values(_flattened(step_logs))

    def _batch_stream(
        self,
        data: DataSource,
        batch_size: int,
        shuffle: bool,
        steps_per_epoch: int | None,
    ) -> Iterator[Iterator[data_module.Batch]]:
        """Yields one iterator of batches per epoch (continuing across epochs if `steps`)."""

        def one_pass() -> Iterator[data_module.Batch]:
            return data.batches(batch_size, shuffle, self.device, self.float_dtype)

        if steps_per_epoch is None:
            while True:
                yield one_pass()
        if data.one_shot:
            endless = one_pass()
        else:
            endless = itertools.chain.from_iterable(one_pass() for _ in itertools.count())
        while True:
            yield itertools.islice(endless, steps_per_epoch)

    @staticmethod
    def _should_validate(epoch: int, validation_freq: int | Sequence[int]) -> bool:
        if isinstance(validation_freq, int):
            return (epoch + 1) % validation_freq == 0
        return epoch + 1 in validation_freq

    def _apply_class_weight(self, train: DataSource, class_weight: dict[Any, float]) -> DataSource:
        if not isinstance(class_weight, dict):
            raise ValueError(
                f"`class_weight` must be a dict {{class: weight}}; got {class_weight!r}."
            )
        return train.with_class_weight(class_weight, self.float_dtype)  # in-memory data only

    def _validation_data(self, validation_data: Any, batch_size: int):
        if data_module.is_data_source(validation_data):
            return data_module.make_data(
                validation_data,
                None,
                None,
                self.float_dtype,
                batch_size=batch_size,
                shuffle=False,
                what="validation_data",
            )
        if not isinstance(validation_data, tuple | list) or len(validation_data) not in (2, 3):
            raise ValueError(
                "`validation_data` must be (x_val, y_val), (x_val, y_val, sample_weight_val) or "
                f"a data set; got {type(validation_data).__name__}"
                + (
                    f" of length {len(validation_data)}."
                    if hasattr(validation_data, "__len__")
                    else "."
                )
            )
        x_val, y_val, *rest = validation_data
        return data_module.make_data(
            x_val,
            y_val,
            rest[0] if rest else None,
            self.float_dtype,
            batch_size=batch_size,
            shuffle=False,
            what="validation_data",
        )

    # ------------------------------------------------------------------ evaluate

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: int | str = "auto",
        sample_weight: Any = None,
        steps: int | None = None,
        callbacks: Sequence[Callback] | None = None,
        return_dict: bool = False,
    ) -> float | list[float] | dict[str, float]:
        """Returns the loss and metrics on the given data, in eval mode without gradients.

        Args:
            x: inputs, as in `fit`.
            y: targets when `x` holds arrays.
            sample_weight: one weight per sample (used by the loss and `weighted_metrics`).
            batch_size: samples per step (default 32).
            verbose: `'auto'` or 1 (progress bar), 2 (one line), 0 (silent).
            steps: evaluate only this many batches.
            callbacks: callbacks receiving the `on_test_*` hooks.
            return_dict: return `{name: value}` instead of a list.

        Returns:
            The loss alone when there are no metrics, else `[loss, *metrics]` in compile
            order, or a dict when `return_dict=True`.
        """
        self._compiled("evaluate")
        data, batch_size, callback_list = self._prepare_run(
            x, y, sample_weight, batch_size, verbose, steps, callbacks
        )
        self._check_targets_of(data)
        try:
            with self._isolated_evaluation():
                logs = self._evaluate_data(data, batch_size, steps, callback_list)
        except BaseException as err:  # Ctrl-C included: the progress bar says interrupted
            callback_list.on_exception(err)
            raise
        return self._shape_result(logs, return_dict)

    @contextlib.contextmanager
    def _isolated_evaluation(self) -> Iterator[None]:
        """Holds the model's lock; during a `fit`, keeps its training accumulators as they were."""
        lock = isolation.run_lock(self)
        with lock.hold():
            if not lock.fitting:
                yield  # as in Keras, `model.metrics` then hold the evaluation's values
                return
            with isolation.kept_accumulators(self.metrics):
                yield

    def _check_targets_of(self, data: DataSource | None) -> None:
        """Class ids outside the output's classes raise a `ValueError` (see `check_targets`).

        In-memory targets are checked at once (once the loss knows the number of classes, from
        the first batch it saw); streamed ones batch by batch on the host, before their copy.
        """
        compiled_loss = self._compiled("fit").loss
        if compiled_loss is None or data is None:
            return
        data.check_targets_with(compiled_loss.check_targets)

    def _prepare_run(self, x, y, sample_weight, batch_size, verbose, steps, callbacks):
        """Validates the arguments shared by `evaluate` and `predict`; builds data and hooks."""
        verbose = _check_verbose(verbose)
        _check_int("batch_size", batch_size, 1, allow_none=True)
        _check_int("steps", steps, 1, allow_none=True)
        batch_size = batch_size or 32
        data = data_module.make_data(
            x, y, sample_weight, self.float_dtype, batch_size=batch_size, shuffle=False
        )
        data = data.to(self.device)
        data = distributed.shard_for_evaluation(data, batch_size, steps, self.device)
        callback_list = CallbackList(
            [*(callbacks or []), *([ProgbarLogger()] if verbose else [])],
            self,
            {"verbose": verbose, "epochs": 1, "steps": steps or data.num_batches(batch_size)},
        )
        return data, batch_size, callback_list

    @staticmethod
    def _shape_result(logs: dict[str, Any], return_dict: bool):
        """Keras's return value: a dict, the loss alone, or `[loss, *metrics]`."""
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def _evaluate_data(
        self,
        data: DataSource,
        batch_size: int,
        steps: int | None,
        callback_list: CallbackList,
    ) -> dict[str, Any]:
        self.reset_metrics()
        callback_list.on_test_begin()
        batches = next(self._batch_stream(data, batch_size, False, None))
        if steps is not None:
            batches = itertools.islice(batches, steps)
        with _inference(self):
            seen, step_logs = self._run_epoch(batches, callback_list, "test", self.test_step)
        if seen == 0:
            raise ValueError(
                "The evaluation data yielded no batches (a generator is used up after one "
                "pass: use a list, a Dataset or a DataLoader for `validation_data`)."
            )
        logs = self._logs_reader(step_logs)()  # sync point: once per evaluation
        callback_list.on_test_end(logs)
        return logs

    # ------------------------------------------------------------------ predict

    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: int | str = "auto",
        steps: int | None = None,
        callbacks: Sequence[Callback] | None = None,
    ) -> Any:
        """Returns the model's outputs for `x` as numpy, in the model's output structure.

        Works without `compile`. Runs in eval mode without gradients.

        Args:
            x: inputs, as in `fit` (a data set may yield `x` or `(x, y)`).
            batch_size: samples per step (default 32).
            verbose: `'auto'` or 1 (progress bar), 2 (one line), 0 (silent).
            steps: predict only this many batches.
            callbacks: callbacks receiving the `on_predict_*` hooks.

        Returns:
            A numpy array, or a tuple/list/dict of them matching the model's outputs.
        """
        data, batch_size, callback_list = self._prepare_run(
            x, None, None, batch_size, verbose, steps, callbacks
        )
        try:
            with isolation.run_lock(self).hold():
                outputs = self._predict_data(data, batch_size, steps, callback_list)
        except BaseException as err:  # Ctrl-C included: the progress bar says interrupted
            callback_list.on_exception(err)
            raise
        if not outputs:
            raise ValueError("`predict` got no batches from `x`.")
        outputs = distributed.gather_outputs(_concatenate(outputs), data)  # torchrun: all parts
        return _to_numpy(outputs)  # sync point: outputs to the host

    def _predict_data(
        self,
        data: DataSource,
        batch_size: int,
        steps: int | None,
        callback_list: CallbackList,
    ) -> list[Any]:
        """The outputs of every batch, with the `on_predict_*` hooks around them."""
        callback_list.on_predict_begin()
        batches = next(self._batch_stream(data, batch_size, False, None))
        if steps is not None:
            batches = itertools.islice(batches, steps)
        outputs: list[Any] = []
        call_begin = callback_list.wants("on_predict_batch_begin")
        call_end = callback_list.wants("on_predict_batch_end")
        with _inference(self):
            for step, batch in enumerate(batches):
                if call_begin:
                    callback_list.on_batch_hook("on_predict_batch_begin", step)
                outputs.append(self.predict_step(batch))
                if step == 0:
                    check_predictions(outputs[0])  # before the other batches run
                if call_end:
                    callback_list.on_batch_hook(
                        "on_predict_batch_end", step, {"outputs": outputs[-1]}
                    )
        callback_list.on_predict_end()
        return outputs

    # ------------------------------------------------------------------ *_on_batch

    def train_on_batch(
        self,
        x: Any,
        y: Any = None,
        sample_weight: Any = None,
        class_weight: dict[Any, float] | None = None,
        return_dict: bool = False,
    ) -> float | list[float] | dict[str, float]:
        """One training step on one batch; returns the values for this batch only."""
        self._compiled("train_on_batch")
        data = data_module.make_data(
            x, y, sample_weight, self.float_dtype, batch_size=1, shuffle=False
        )
        if class_weight is not None:
            data = self._apply_class_weight(data, class_weight)
        with isolation.run_lock(self).hold():
            self.reset_metrics()
            self.train()
            distributed.prepare_training(self)  # torchrun: gradients averaged across processes
            step_logs = self.train_step(data_module.as_yielded(self._whole_batch(data)))
            return self._shape_result(self._logs_reader(step_logs)(), return_dict)  # sync point

    def test_on_batch(
        self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False
    ) -> float | list[float] | dict[str, float]:
        """One evaluation step on one batch; returns the values for this batch only."""
        self._compiled("test_on_batch")
        data = data_module.make_data(
            x, y, sample_weight, self.float_dtype, batch_size=1, shuffle=False
        )
        with self._isolated_evaluation():
            self.reset_metrics()
            with _inference(self):
                step_logs = self.test_step(data_module.as_yielded(self._whole_batch(data)))
            return self._shape_result(self._logs_reader(step_logs)(), return_dict)  # sync point

    def predict_on_batch(self, x: Any) -> Any:
        """The model's outputs for one batch, as numpy."""
        data = data_module.make_data(x, None, None, self.float_dtype, batch_size=1, shuffle=False)
        with isolation.run_lock(self).hold(), _inference(self):
            outputs = self.predict_step(self._whole_batch(data))
        check_predictions(outputs)
        return _to_numpy(outputs)

    def _whole_batch(self, data: DataSource) -> data_module.Batch:
        return data.whole_batch(self.device)  # arrays only


def _described_batch(batch: data_module.Batch) -> str:
    """`x: float32 (32, 5); y: float32 (32, 1)`: what a failing first batch held."""

    def describe(tree: Any) -> str:
        parts = [
            f"{str(t.dtype).removeprefix('torch.')} {tuple(t.shape)}"
            for t in data_module.leaves(tree)
            if isinstance(t, torch.Tensor)
        ]
        return ", ".join(parts) or type(tree).__name__

    names = ("x", "y", "sample_weight")
    described = "; ".join(
        f"{name}: {describe(tree)}"
        for name, tree in zip(names, batch, strict=True)
        if tree is not None
    )
    inputs = [t for t in data_module.leaves(batch[0]) if isinstance(t, torch.Tensor)]
    if any(not (t.is_floating_point() or t.is_complex()) for t in inputs):
        described += (
            " (integer `x` reaches the model as it is, for embeddings: cast it to float32 if "
            "the model expects floats)"
        )
    return described


def _flattened(logs: dict[str, Any]) -> dict[str, Any]:
    """A step's logs with nested dicts (a metrics container's `result()`) merged in (Keras)."""
    if not any(isinstance(value, dict) for value in logs.values()):
        return logs
    flat: dict[str, Any] = {}
    for key, value in logs.items():
        if isinstance(value, dict):
            flat.update(_flattened(value))
        else:
            flat[key] = value
    return flat


def _own_loss(y_pred: Any) -> torch.Tensor | None:
    """The `loss` entry of a dict/ModelOutput/namedtuple output, if it has one."""
    if isinstance(y_pred, dict):  # a HuggingFace ModelOutput is a dict
        loss = y_pred.get("loss")
    else:
        loss = getattr(y_pred, "loss", None) if isinstance(y_pred, tuple) else None
    return loss if isinstance(loss, torch.Tensor) else None


def _concatenate(outputs: list[Any]) -> Any:
    first = outputs[0]
    if isinstance(first, dict):
        return {key: _concatenate([o[key] for o in outputs]) for key in first}
    if isinstance(first, tuple | list):
        parts = [_concatenate([o[i] for o in outputs]) for i in range(len(first))]
        return type(first)(*parts) if hasattr(first, "_fields") else type(first)(parts)
    if first.dim() == 0:  # a per-batch scalar (a model's own loss): one value per batch
        return torch.stack(outputs)
    return torch.cat(outputs)
