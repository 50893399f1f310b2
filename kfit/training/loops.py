"""The batch loop, `evaluate`, `predict` and `*_on_batch`.

`Loops` is mixed into `kfit.Model` (through `Trainer`, which adds `fit`). `_run_epoch` runs a
step on every batch with the batch hooks around it; `evaluate` and `predict` run it in
inference mode, isolated from a `fit` running in another thread. Places that read a value
back to the host are marked "sync point".
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from kfit import data as data_module
from kfit import distributed
from kfit.callbacks.callback import Callback
from kfit.callbacks.callback_list import CallbackList, RunningLogs
from kfit.callbacks.progbar_logger import ProgbarLogger
from kfit.compiled.outputs import check_predictions
from kfit.data import DataSource
from kfit.training import isolation
from kfit.training.arguments import check_int, check_verbose
from kfit.training.interrupt import DeferredInterrupt
from kfit.training.step import Step
from kfit.training.tracking import read_values, to_float32


def _inference(model: torch.nn.Module) -> contextlib.AbstractContextManager[None]:
    """Eval mode without gradients; each submodule's mode comes back even if the body raises."""
    return isolation.exact_modes(model)


def _to_numpy(tree: Any) -> Any:
    """Host copies as numpy; half-precision outputs (mixed precision) become float32."""
    return data_module.map_tree(lambda t: to_float32(t).detach().cpu().numpy(), tree)


class Loops(Step):
    """The batch loop, `evaluate`, `predict` and `*_on_batch` for `kfit.Model`."""

    # Set by `kfit.Model.__init__` (declared here for the type checker).
    stop_training: bool
    _interrupt: DeferredInterrupt | None

    if TYPE_CHECKING:

        @property
        def device(self) -> torch.device: ...

        @property
        def float_dtype(self) -> torch.dtype: ...

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
        verbose = check_verbose(verbose)
        check_int("batch_size", batch_size, 1, allow_none=True)
        check_int("steps", steps, 1, allow_none=True)
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

    def _apply_class_weight(self, train: DataSource, class_weight: dict[Any, float]) -> DataSource:
        if not isinstance(class_weight, dict):
            raise ValueError(
                f"`class_weight` must be a dict {{class: weight}}; got {class_weight!r}."
            )
        return train.with_class_weight(class_weight, self.float_dtype)  # in-memory data only

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
