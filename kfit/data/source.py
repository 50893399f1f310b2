"""`DataSource`: what the training loops ask of data, whatever its kind.

`kfit.data.make_data` turns the user's `x, y, sample_weight` into a `DataSource`: an
`ArrayData` for in-memory arrays (`kfit.data.arrays`), an `IterableData` for data sets,
DataLoaders and other iterables (`kfit.data.iterables`). `fit`, `evaluate`, `predict`,
`lr_find` and `kfit.distributed` use only the members below, never the kind of source: a new
kind is one module implementing them (plus its branch in `make_data`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import torch

from kfit.data.batch import Batch
from kfit.data.sharded import Processes
from kfit.data.trees import Tree

__all__ = ["DataSource", "warn_ran_out"]


@runtime_checkable
class DataSource(Protocol):
    """Batches of `(x, y, sample_weight)` for the training loops, and what they may ask of them.

    Capabilities a kind of source lacks (splitting off validation data, class weights, one
    whole batch from a stream) raise a `ValueError` that says what to pass instead.
    """

    @property
    def in_memory(self) -> bool:
        """Whether the samples are held in memory.

        In-memory data can be batched again at no cost (`fit` runs its first batch once up
        front) and `check_targets_with` checks its targets at once; other sources are read
        once per pass and checked batch by batch.
        """
        ...

    @property
    def one_shot(self) -> bool:
        """Whether one pass uses the source up (a generator): it then carries on across epochs."""
        ...

    @property
    def counts(self) -> list[int] | None:
        """Every process's number of samples when split for evaluation; None otherwise.

        `kfit.distributed.gather_outputs` reassembles `predict`'s outputs with it.
        """
        ...

    def num_batches(self, batch_size: int) -> int | None:
        """The number of batches of one pass, or None when unknown (an unsized iterable)."""
        ...

    def batches(
        self,
        batch_size: int,
        shuffle: bool,
        device: torch.device,
        float_dtype: torch.dtype | None = None,
    ) -> Iterator[Batch]:
        """Yields one pass of `(x, y, sample_weight)` batches on `device`.

        Args:
            batch_size: samples per batch, for sources that batch themselves (a DataLoader
                has its own).
            shuffle: whether to draw a new order, for sources that order themselves.
            device: where the batches go.
            float_dtype: the model's floating dtype, for sources that convert batch by batch
                (None: the dtype the source was made with); in-memory data was converted
                when made.
        """
        ...

    def to(self, device: torch.device) -> DataSource:
        """The source readied for `device`: in-memory data moved there once when it fits."""
        ...

    def split(self, validation_split: float) -> tuple[DataSource, DataSource]:
        """Splits off Keras's `validation_split`: `(training, validation)`.

        Raises:
            ValueError: when either part would be empty, or the source cannot be split.
        """
        ...

    def with_class_weight(
        self, class_weight: Mapping[Any, float], float_dtype: torch.dtype
    ) -> DataSource:
        """The source with per-sample weights taken from `{class: weight}`.

        Raises:
            ValueError: when the source has sample weights already, a class has no weight,
                or the source cannot take class weights.
        """
        ...

    def check_targets_with(self, check: Callable[[Tree, int], None]) -> None:
        """Has `check(y, offset)` run on the targets (class ids against the loss).

        In-memory targets are checked at once, all of them (offset 0); streamed ones batch by
        batch on the host, before their copy to the device (offset: samples before them).
        """
        ...

    def whole_batch(self, device: torch.device) -> Batch:
        """All the samples as one batch on `device` (`*_on_batch`).

        Raises:
            ValueError: for a source that is not in memory.
        """
        ...

    def for_training_process(self, seed: int, processes: Processes) -> DataSource:
        """This process's part for training under torchrun (see `kfit.data.sharded`).

        Args:
            seed: a seed every process shares; each pass draws its order from it.
            processes: this process's rank, the number of processes, the size check.
        """
        ...

    def for_evaluation_process(
        self, batch_size: int, steps: int | None, processes: Processes
    ) -> DataSource:
        """This process's part for evaluation under torchrun: every sample once.

        Args:
            batch_size: samples per step.
            steps: with `steps`, only the samples of the first `steps` batches are split.
            processes: this process's rank, the number of processes, the size check.
        """
        ...


def warn_ran_out(steps: int, expected: int | None) -> None:
    """The Keras warning for an input that ended before its epoch did.

    Args:
        steps: the steps the epoch ran.
        expected: `steps_per_epoch`, or the steps of the epoch before when it was not given
            (an exhausted generator); None when unknown.
    """
    of = f" of {expected}" if expected else ""
    warnings.warn(
        f"Your input ran out of data after {steps}{of} steps; interrupting training. "
        "Make sure the data can generate `steps_per_epoch * epochs` batches.",
        stacklevel=3,
    )
