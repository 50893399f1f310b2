"""In-memory data (`ArrayData`): numpy arrays, tensors, and tuples/lists/dicts of them.

Batched by slicing a permutation, with no per-sample collate. When the model lives on a GPU
and the data fits comfortably, the whole data set is moved there once and indexed on the
device; otherwise each batch is copied with `non_blocking=True` from pinned memory. Under
torchrun each process takes its part (`TrainingShard`, `EvaluationShard`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from kfit.data.batch import Batch, unpack
from kfit.data.convert import standardize_dtypes, to_tensor_tree
from kfit.data.prefetch import prefetch_to_cuda
from kfit.data.sharded import Processes, evaluation_counts, training_indices
from kfit.data.trees import Tree, index_tree, leaves, map_tree, move_tree
from kfit.data.weights import class_weight_to_sample_weight

# In-memory data up to this share of the free GPU memory is moved to the GPU once.
_ON_DEVICE_SHARE = 0.25


def num_samples(x: Tree, y: Tree, sample_weight: Tree | None) -> int:
    """Returns the shared first-axis length of every array.

    Raises:
        ValueError: naming the mismatch when lengths differ, for a scalar, or for no samples.
    """
    lengths: dict[str, int] = {}
    for name, tree in (("x", x), ("y", y), ("sample_weight", sample_weight)):
        for leaf in leaves(tree) if tree is not None else []:
            if leaf is None:  # an output without a target
                continue
            if leaf.dim() == 0:
                raise ValueError(f"`{name}` must have a batch axis; got a scalar.")
            lengths.setdefault(name, leaf.shape[0])
            if leaf.shape[0] != lengths[name]:
                raise ValueError(
                    f"All arrays in `{name}` must have the same length; got "
                    f"{[t.shape[0] for t in leaves(tree) if t is not None]}."
                )
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k}: {v}" for k, v in lengths.items())
        raise ValueError(
            f"`x`, `y` and `sample_weight` must have the same number of samples; got {shown}."
        )
    count = lengths.get("x", 0)
    if count == 0:
        raise ValueError("`x` is empty: there are no samples to train or evaluate on.")
    return count


@dataclass
class ArrayData:
    """In-memory samples, batched by slicing a permutation (a `DataSource`).

    Attributes:
        x: inputs (a tensor or a structure of tensors).
        y: targets, or None.
        sample_weight: one weight per sample, or None.
        size: the number of samples.
        counts: every process's number of samples once split for evaluation, else None.
    """

    x: Tree
    y: Tree | None
    sample_weight: Tree | None
    size: int
    counts: list[int] | None = field(default=None, init=False, repr=False, compare=False)

    in_memory = True
    one_shot = False

    @classmethod
    def from_arrays(
        cls, x: Any, y: Any, sample_weight: Any, float_dtype: torch.dtype, what: str = "x"
    ) -> ArrayData:
        """Validates and converts the user's arrays (see `kfit.data.make_data`).

        Args:
            x: arrays/tensors, or a tuple/list/dict of them.
            y: targets, or None (a dict `x` with a `labels` or `label` entry then takes it).
            sample_weight: per-sample weights of shape (N,) or (N, T), or one per output.
            float_dtype: the model's floating dtype.
            what: the name of `x` in error messages.

        Raises:
            TypeError, ValueError: for arrays that do not hold numbers, mismatched lengths,
                or weights of the wrong shape.
        """
        x_tree = standardize_dtypes(to_tensor_tree(x, what), float_dtype)
        y_tree = standardize_dtypes(to_tensor_tree(y, "y"), float_dtype, is_target=True)
        if y_tree is None and isinstance(x_tree, Mapping):  # in memory, as a dict batch: `unpack`
            y_tree = unpack(x_tree)[1]
        weights = to_tensor_tree(sample_weight, "sample_weight")
        if weights is not None:
            for leaf in leaves(weights):
                if leaf.dim() not in (1, 2):
                    raise ValueError(
                        "`sample_weight` must be an array of shape (N,) or (N, T), or a list/dict "
                        f"of them (one per output); got an array of shape {tuple(leaf.shape)}."
                    )
            weights = map_tree(lambda t: t.to(float_dtype), weights)
        size = num_samples(x_tree, y_tree, weights)
        return cls(x_tree, y_tree, weights, size)

    def num_batches(self, batch_size: int) -> int:
        """The number of batches of one pass, the last one partial."""
        return math.ceil(self.size / batch_size)

    def to(self, device: torch.device) -> ArrayData:
        """Returns the data on `device` when that is a GPU and the data fits there."""
        if device.type != "cuda":
            return self
        nbytes = sum(
            t.element_size() * t.numel()
            for t in leaves((self.x, self.y, self.sample_weight))
            if t is not None
        )
        free, _ = torch.cuda.mem_get_info(device)
        if nbytes > _ON_DEVICE_SHARE * free:
            return self  # stays on the host; each batch is copied from pinned memory
        return ArrayData(
            move_tree(self.x, device),
            move_tree(self.y, device),
            move_tree(self.sample_weight, device),
            self.size,
        )

    def batches(
        self,
        batch_size: int,
        shuffle: bool,
        device: torch.device,
        float_dtype: torch.dtype | None = None,
    ) -> Iterator[Batch]:
        """Yields one epoch of `(x, y, sample_weight)` batches on `device`, the last one partial.

        `float_dtype` is not used: the arrays were converted when made.
        """
        yield from self.batches_in_order(
            torch.randperm(self.size) if shuffle else None, batch_size, device
        )

    def batches_in_order(
        self, order: torch.Tensor | None, batch_size: int, device: torch.device
    ) -> Iterator[Batch]:
        """Yields batches of the samples `order` (indices; None: all, in order) on `device`."""
        data_device = leaves(self.x)[0].device
        order = None if order is None else order.to(data_device)
        count = self.size if order is None else order.numel()

        def sliced() -> Iterator[Batch]:
            for start in range(0, count, batch_size):
                stop = min(start + batch_size, count)
                index = slice(start, stop) if order is None else order[start:stop]
                yield (
                    index_tree(self.x, index),
                    index_tree(self.y, index),
                    None if self.sample_weight is None else index_tree(self.sample_weight, index),
                )

        if data_device == device:
            yield from sliced()
        elif device.type == "cuda":  # data too big for the GPU: pinned copies, one ahead
            yield from prefetch_to_cuda(sliced(), device)
        else:
            for batch in sliced():
                yield tuple(move_tree(part, device) for part in batch)

    def split(self, validation_split: float) -> tuple[ArrayData, ArrayData]:
        """Keras's rule: the last `N - floor(N * (1 - s))` samples, before any shuffling.

        Raises:
            ValueError: when either part would be empty.
        """
        split_at = int(math.floor(self.size * (1.0 - validation_split)))
        if split_at == 0 or split_at == self.size:
            raise ValueError(
                f"`validation_split={validation_split}` leaves "
                f"{'no training' if split_at == 0 else 'no validation'} samples out of "
                f"{self.size}."
            )
        return self._part(slice(0, split_at)), self._part(slice(split_at, self.size))

    def _part(self, samples: slice) -> ArrayData:
        """The consecutive samples `samples` (a slice with both ends within the data)."""
        return ArrayData(
            index_tree(self.x, samples),
            index_tree(self.y, samples),
            index_tree(self.sample_weight, samples),
            samples.stop - samples.start,
        )

    def with_class_weight(
        self, class_weight: Mapping[Any, float], float_dtype: torch.dtype
    ) -> ArrayData:
        """The data with one weight per sample from `{class: weight}` (see `weights`).

        Raises:
            ValueError: when the data has sample weights already, or a class has no weight.
        """
        if self.sample_weight is not None:
            raise ValueError("Pass either `class_weight` or `sample_weight`, not both.")
        weights = class_weight_to_sample_weight(self.y, class_weight)
        return ArrayData(self.x, self.y, weights.to(float_dtype), self.size)

    def check_targets_with(self, check: Callable[[Tree, int], None]) -> None:
        """Runs `check(y, 0)` on all the targets at once (nothing without targets)."""
        if self.y is not None:
            check(self.y, 0)

    def whole_batch(self, device: torch.device) -> Batch:
        """All the samples as one batch on `device`."""
        return (
            move_tree(self.x, device),
            move_tree(self.y, device),
            move_tree(self.sample_weight, device),
        )

    def for_training_process(self, seed: int, processes: Processes) -> TrainingShard:
        """This process's `TrainingShard`, once every process holds as many samples."""
        processes.agree_on_size(self.size, "training data")
        return TrainingShard(self, seed, processes.rank, processes.world)

    def for_evaluation_process(
        self, batch_size: int, steps: int | None, processes: Processes
    ) -> EvaluationShard:
        """This process's `EvaluationShard` (of the first `steps` batches' samples)."""
        data = self
        if steps is not None and steps * batch_size < self.size:
            data = self._part(slice(0, steps * batch_size))
        processes.agree_on_size(data.size, "evaluation data")
        return EvaluationShard(data, processes.rank, processes.world)


class TrainingShard(ArrayData):
    """This process's part of in-memory training data, drawn afresh every pass.

    Every pass all processes draw the same order (from `seed` plus the pass number) and each
    takes its `kfit.data.sharded.training_positions` of it.
    """

    def __init__(self, data: ArrayData, seed: int, rank: int, world: int):
        super().__init__(data.x, data.y, data.sample_weight, data.size)
        self.seed, self.rank, self.world = seed, rank, world
        self.passes = 0

    def num_batches(self, batch_size: int) -> int:
        return -(-(self.size // self.world) // batch_size)

    def batches(
        self,
        batch_size: int,
        shuffle: bool,
        device: torch.device,
        float_dtype: torch.dtype | None = None,
    ) -> Iterator[Batch]:
        seed = self.seed + self.passes if shuffle else None  # a new shared order each pass
        self.passes += 1
        indices = training_indices(self.size, batch_size, self.rank, self.world, seed)
        yield from self.batches_in_order(indices, batch_size, device)


class EvaluationShard(ArrayData):
    """This process's consecutive part of evaluation data; `counts` has every process's size."""

    def __init__(self, data: ArrayData, rank: int, world: int):
        counts = evaluation_counts(data.size, world)
        part = slice(sum(counts[:rank]), sum(counts[: rank + 1]))
        super().__init__(
            index_tree(data.x, part),
            index_tree(data.y, part),
            index_tree(data.sample_weight, part),
            counts[rank],
        )
        self.counts = counts
