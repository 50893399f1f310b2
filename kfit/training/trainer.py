"""`fit`: the training loop over epochs.

`Trainer` is mixed into `kfit.Model`. `fit` only orchestrates, in three parts: the data
(`_fit_data`: checked, split, weighted, moved, sharded), the callbacks, and the epochs
(`_epoch_loop`: for each epoch run `train_step` on every batch, read the epoch values once,
validate, end the epoch). The batch loop, `evaluate` and `predict` are in `loops.py`, the
steps in `step.py`. Places that read a value back to the host are marked "sync point".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from kfit import data as data_module
from kfit import distributed
from kfit.callbacks.callback import Callback
from kfit.callbacks.callback_list import CallbackList
from kfit.callbacks.diagnosis import TrainingDiagnosis
from kfit.callbacks.history import History
from kfit.callbacks.progbar_logger import ProgbarLogger
from kfit.callbacks.torch_scheduler import as_callback
from kfit.data import DataSource
from kfit.training import arguments, isolation
from kfit.training.arguments import check_verbose
from kfit.training.interrupt import DeferredInterrupt
from kfit.training.loops import Loops


class Trainer(Loops):
    """`fit` / `evaluate` / `predict` for `kfit.Model` (see there for `compile`)."""

    # Set by `kfit.Model.__init__` (declared here for the type checker).
    history: Any
    epochs_completed: int
    _initial_epoch: int | None
    _ending_with_error: bool

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
        verbose_arg, verbose = verbose, check_verbose(verbose)
        arguments.check_fit_options(
            batch_size=batch_size,
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
            validation_batch_size=validation_batch_size,
            validation_freq=validation_freq,
            validation_split=validation_split,
            shuffle=shuffle,
            diagnose=diagnose,
        )
        batch_size = batch_size or 32
        validation_batch_size = validation_batch_size or batch_size
        # 1. The data: checked, split, weighted, on the device, sharded under torchrun.
        train, val = self._fit_data(
            x, y, sample_weight, batch_size, shuffle, class_weight, validation_split,
            validation_data, validation_batch_size, validation_steps,
        )  # fmt: skip
        steps = steps_per_epoch or train.num_batches(batch_size)
        # 2. The callbacks: the user's, the compiled scheduler, History, the log, the notes.
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
        # 3. The epochs.
        self.stop_training = False
        self.history = history
        self._epoch_loop(
            self._batch_stream(train, batch_size, shuffle, steps_per_epoch),
            val,
            callback_list,
            range(initial_epoch, epochs),
            steps_per_epoch=steps_per_epoch,
            validation_freq=validation_freq,
            validation_batch_size=validation_batch_size,
            validation_steps=validation_steps,
        )
        distributed.barrier()  # torchrun: rank 0's files are written when `fit` returns
        return history

    def _fit_data(
        self,
        x: Any,
        y: Any,
        sample_weight: Any,
        batch_size: int,
        shuffle: bool,
        class_weight: dict[Any, float] | None,
        validation_split: float,
        validation_data: Any,
        validation_batch_size: int,
        validation_steps: int | None,
    ) -> tuple[DataSource, DataSource | None]:
        """`fit`'s training and validation data, checked before any weight changes.

        In-memory data goes to the model's device and its first batch runs once without
        gradients (`_check_first_batch`); streamed data is checked batch by batch. Under
        torchrun each process gets its part, and the DDP training forward is readied.
        """
        train = data_module.make_data(
            x, y, sample_weight, self.float_dtype, batch_size=batch_size, shuffle=shuffle
        )
        val = None
        if validation_data is not None:
            val = self._validation_data(validation_data, validation_batch_size)
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
            (val, validation_batch_size),
        ):
            if checked is not None and checked.in_memory:
                with isolation.run_lock(self).hold():  # no other thread's evaluate meanwhile
                    self._check_first_batch(checked, checked_batch_size)
        # Under torchrun: this process's part of the data, and a DDP training forward.
        train = distributed.shard_for_training(train, self.device)
        val = distributed.shard_for_evaluation(
            val, validation_batch_size, validation_steps, self.device
        )
        distributed.prepare_training(self)
        return train, val

    def _epoch_loop(
        self,
        batches: Iterator[Iterator[data_module.Batch]],
        val: DataSource | None,
        callback_list: CallbackList,
        epochs: range,
        steps_per_epoch: int | None,
        validation_freq: int | Sequence[int],
        validation_batch_size: int,
        validation_steps: int | None,
    ) -> None:
        """`fit`'s epochs: train, read the values once, validate, end the epoch; then end.

        Ctrl-C is held until the current batch has finished; on it or on an error the
        callbacks still get `on_exception` and `on_train_end` before the error propagates.
        """
        epoch_logs: dict[str, Any] = {}
        previous_steps = None  # an epoch's length, for the message when a generator runs out
        # The model's lock: other threads' evaluate/predict run between two steps (isolation).
        with DeferredInterrupt() as interrupt, isolation.run_lock(self).training():
            self._interrupt = interrupt
            self._ending_with_error = False
            try:
                callback_list.on_train_begin()
                first = self._initial_epoch or epochs.start  # see resume_at_epoch
                for epoch in range(first, epochs.stop):
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
                            val, validation_batch_size, validation_steps, callback_list
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

    @staticmethod
    def _should_validate(epoch: int, validation_freq: int | Sequence[int]) -> bool:
        if isinstance(validation_freq, int):
            return (epoch + 1) % validation_freq == 0
        return epoch + 1 in validation_freq

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

    # ------------------------------------------------------------------ predict

    # ------------------------------------------------------------------ *_on_batch
