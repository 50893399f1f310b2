"""Streamed data (`IterableData`): DataLoaders, data sets and other iterables of batches.

They yield `(x, y[, sample_weight])` batches (or dict batches) as they are; each is converted
to tensors of the model's dtype and sent to its device as it comes. Under torchrun a
DataLoader with its default sampler is rebuilt with a `ShardSampler`, one with a
`DistributedSampler` gets `set_epoch` every pass, and any other source is used as given.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from typing import Any, cast

import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)
from torch.utils.data.distributed import DistributedSampler

from kfit.data.batch import Batch, batch_size_of, unpack
from kfit.data.convert import standardize_dtypes, to_tensor_tree
from kfit.data.sharded import Processes, evaluation_counts, training_indices
from kfit.data.trees import Tree, leaves, move_tree


class IterableData:
    """Batches from a `DataLoader`, a data set or any iterable of `(x, y[, sample_weight])`.

    A re-iterable source (a DataLoader, a list) starts afresh every epoch; a one-shot iterator
    (a generator) carries on across epochs, as Keras does. A `DataSource`.

    Args:
        source: the iterable.
        float_dtype: the floating dtype batches are converted to when `batches` is given none.
        given: the type name of what the user passed, for messages (default: `source`'s).
    """

    in_memory = False

    def __init__(
        self,
        source: Iterable[Any],
        float_dtype: torch.dtype = torch.float32,
        given: str | None = None,
    ):
        self.source = source
        self.float_dtype = float_dtype
        self.given = given or type(source).__name__
        # A generator is its own iterator; asking a DataLoader for one would start its workers.
        self.one_shot = isinstance(source, Iterator)
        self._iterator: Iterator[Any] | None = None
        # Called as `check_targets(y, offset)` on each batch's host targets before they move
        # to the device (the trainer sets it to check class ids against the loss).
        self.check_targets: Callable[[Tree, int], None] | None = None
        self.counts: list[int] | None = None

    @classmethod
    def from_source(
        cls, x: Any, float_dtype: torch.dtype, *, batch_size: int, shuffle: bool
    ) -> IterableData:
        """Wraps a data set, DataLoader or iterable (see `kfit.data.make_data`).

        A `Dataset` (map-style or iterable) is batched by a `DataLoader` with `batch_size`,
        shuffled when `shuffle` and map-style.
        """
        given = type(x).__name__
        if isinstance(x, Dataset | IterableDataset) and not isinstance(x, DataLoader):
            x = DataLoader(
                x,
                batch_size=batch_size,
                shuffle=shuffle and not isinstance(x, IterableDataset),
                pin_memory=torch.cuda.is_available(),  # non-blocking copies need pinned pages
            )
        return cls(x, float_dtype, given)

    def num_batches(self, batch_size: int | None = None) -> int | None:
        """The source's length when it has one (a DataLoader's batches), else None."""
        try:
            return len(self.source)  # type: ignore[arg-type]
        except TypeError:
            return None

    def batches(
        self,
        batch_size: int,
        shuffle: bool,
        device: torch.device,
        float_dtype: torch.dtype | None = None,
    ) -> Iterator[Batch]:
        """Yields one pass of the source's batches as tensors on `device`.

        `batch_size` and `shuffle` are not used: they are the source's own business (a
        DataLoader has them). `float_dtype` (None: the one given when made) is what floating
        arrays become.
        """
        if float_dtype is None:
            float_dtype = self.float_dtype
        if self.one_shot:
            self._iterator = self._iterator or iter(self.source)
            iterator = self._iterator
        else:
            iterator = iter(self.source)
        offset = 0
        for item in iterator:
            x, y, sample_weight = unpack(item)
            x = standardize_dtypes(to_tensor_tree(x, "x"), float_dtype)
            y = standardize_dtypes(to_tensor_tree(y, "y"), float_dtype, is_target=True)
            sample_weight = to_tensor_tree(sample_weight, "sample_weight")
            if self.check_targets is not None and y is not None:
                if all(t is None or t.device.type == "cpu" for t in leaves(y)):  # no sync
                    self.check_targets(y, offset)
                offset += batch_size_of(x)
            yield move_tree(x, device), move_tree(y, device), move_tree(sample_weight, device)

    def to(self, device: torch.device) -> IterableData:
        """The source itself: each batch moves as it comes."""
        return self

    def split(self, validation_split: float) -> tuple[IterableData, IterableData]:
        """Raises: a stream cannot be split before any shuffling, as Keras's rule needs.

        Raises:
            ValueError: always.
        """
        raise ValueError(
            "`validation_split` needs in-memory arrays or tensors; with a "
            f"{self.given}, pass `validation_data` instead."
        )

    def with_class_weight(
        self, class_weight: Mapping[Any, float], float_dtype: torch.dtype
    ) -> IterableData:
        """Raises: class weights are computed once over in-memory targets.

        Raises:
            ValueError: always.
        """
        raise ValueError(
            "`class_weight` needs in-memory arrays; a data set can yield "
            "(x, y, sample_weight) instead."
        )

    def check_targets_with(self, check: Callable[[Tree, int], None]) -> None:
        """Has `check(y, offset)` run on each batch's targets while they are on the host."""
        self.check_targets = check

    def whole_batch(self, device: torch.device) -> Batch:
        """Raises: `*_on_batch` takes arrays.

        Raises:
            ValueError: always.
        """
        raise ValueError("`*_on_batch` methods take arrays or tensors, not data sets.")

    def for_training_process(self, seed: int, processes: Processes) -> IterableData:
        """This process's part of a DataLoader kfit can split; otherwise the source as given."""
        return self._for_process(True, seed, processes)

    def for_evaluation_process(
        self, batch_size: int, steps: int | None, processes: Processes
    ) -> IterableData:
        """This process's consecutive part of a DataLoader kfit can split; else as given."""
        return self._for_process(False, 0, processes)

    def _with_my_checks(self, part: IterableData) -> IterableData:
        """`part` checking each batch's class ids as this source does (`check_targets_with`)."""
        part.check_targets = self.check_targets
        return part

    def _for_process(self, training: bool, seed: int, processes: Processes) -> IterableData:
        source = self.source
        if isinstance(source, DataLoader) and default_sampling(source):
            size = len(cast(Sized, source.dataset))
            processes.agree_on_size(size, "data set" if training else "evaluation data set")
            assert source.batch_size is not None  # default sampling batches
            sampler = ShardSampler(
                size,
                source.batch_size,
                shuffle=training and isinstance(source.sampler, RandomSampler),
                seed=seed,
                training=training,
                rank=processes.rank,
                world=processes.world,
            )
            return self._with_my_checks(
                ShardedLoader(
                    rebuilt_loader(source, sampler),
                    None if training else sampler.counts,
                    self.float_dtype,
                    self.given,
                )
            )
        if isinstance(source, DataLoader) and isinstance(source.sampler, DistributedSampler):
            if not training:
                return self
            return self._with_my_checks(EpochedLoader(source, self.float_dtype, self.given))
        warnings.warn(
            f"kfit cannot split a {type(source).__name__} among the {processes.world} processes: "
            "each uses all of it as given. Pass arrays, a map-style Dataset or a DataLoader with "
            "its default sampler (kfit then splits it), or a DataLoader with a DistributedSampler. "
            "Every process must yield the same number of batches.",
            stacklevel=5,  # the caller of fit / evaluate's internals, as before the move
        )
        return self


class ShardSampler(Sampler[int]):
    """The sampler of a rebuilt DataLoader: `training_positions` or an evaluation part."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        shuffle: bool,
        seed: int,
        training: bool,
        rank: int,
        world: int,
    ):
        self.size, self.batch_size, self.shuffle = size, batch_size, shuffle
        self.seed, self.training = seed, training
        self.rank, self.world = rank, world
        self.counts = evaluation_counts(size, self.world)
        self.passes = 0

    def __len__(self) -> int:
        return self.size // self.world if self.training else self.counts[self.rank]

    def __iter__(self) -> Iterator[int]:
        if not self.training:
            start = sum(self.counts[: self.rank])
            return iter(range(start, start + self.counts[self.rank]))
        seed = self.seed + self.passes if self.shuffle else None  # a new shared order each pass
        self.passes += 1
        indices = training_indices(self.size, self.batch_size, self.rank, self.world, seed)
        return iter(indices.tolist())


class ShardedLoader(IterableData):
    """A DataLoader rebuilt with a `ShardSampler`; `counts` as in `EvaluationShard`."""

    def __init__(
        self,
        source: DataLoader,
        counts: list[int] | None,
        float_dtype: torch.dtype = torch.float32,
        given: str | None = None,
    ):
        super().__init__(source, float_dtype, given)
        self.counts = counts


class EpochedLoader(IterableData):
    """A DataLoader the script sharded with a DistributedSampler: `set_epoch` every pass."""

    def __init__(
        self, source: DataLoader, float_dtype: torch.dtype = torch.float32, given: str | None = None
    ):
        super().__init__(source, float_dtype, given)
        self.sampler = cast(DistributedSampler, source.sampler)
        self.passes = 0

    def batches(
        self,
        batch_size: int,
        shuffle: bool,
        device: torch.device,
        float_dtype: torch.dtype | None = None,
    ) -> Iterator[Batch]:
        self.sampler.set_epoch(self.passes)
        self.passes += 1
        yield from super().batches(batch_size, shuffle, device, float_dtype)


def default_sampling(loader: DataLoader) -> bool:
    """Whether a DataLoader samples a sized map-style data set the ordinary way."""
    sampler = loader.sampler
    return (
        not isinstance(loader.dataset, IterableDataset)
        and type(loader.batch_sampler) is BatchSampler
        and (
            type(sampler) is SequentialSampler
            or (
                type(sampler) is RandomSampler
                and not sampler.replacement
                and sampler.num_samples == len(sampler.data_source)  # every sample once
            )
        )
    )


def rebuilt_loader(loader: DataLoader, sampler: Sampler[int]) -> DataLoader:
    """The same DataLoader (workers, collate_fn, pinning, ...) with another sampler."""
    settings = {
        name: getattr(loader, name)
        for name in inspect.signature(DataLoader.__init__).parameters
        if name not in ("self", "dataset", "shuffle", "sampler", "batch_sampler")
        and hasattr(loader, name)
    }
    return DataLoader(loader.dataset, sampler=sampler, **settings)
