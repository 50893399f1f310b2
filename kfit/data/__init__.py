"""Turning `x`, `y`, `sample_weight` and data sets into batches on the model's device.

In-memory data (numpy arrays, tensors, and tuples/lists/dicts of them) is batched by slicing a
permutation, with no per-sample collate. When the model lives on a GPU and the data fits
comfortably, the whole data set is moved there once and indexed on the device; otherwise each
batch is copied with `non_blocking=True` from pinned memory. Data sets, `DataLoader`s and other
iterables yield `(x, y[, sample_weight])` batches as they are.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

Tree = Any  # a tensor, or a tuple/list/dict of trees
Batch = tuple[Tree, Tree | None, torch.Tensor | None]

# In-memory data up to this share of the free GPU memory is moved to the GPU once.
_ON_DEVICE_SHARE = 0.25


def map_tree(fn: Callable[[Any], Any], tree: Tree) -> Tree:
    """Applies `fn` to every leaf of a tuple/list/dict/namedtuple structure; None stays None.

    (A None leaf is an output without a target: `fit(x, [y, None])` with `loss=[fn, None]`.)
    """
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if tree is None:
        return None
    if isinstance(tree, Mapping):
        return {key: map_tree(fn, value) for key, value in tree.items()}
    if isinstance(tree, tuple | list):
        mapped = [map_tree(fn, value) for value in tree]
        return type(tree)(*mapped) if hasattr(tree, "_fields") else type(tree)(mapped)
    return fn(tree)


def leaves(tree: Tree) -> list[Any]:
    """Returns the leaves of a tuple/list/dict structure in order."""
    if isinstance(tree, Mapping):
        return [leaf for value in tree.values() for leaf in leaves(value)]
    if isinstance(tree, tuple | list):
        return [leaf for value in tree for leaf in leaves(value)]
    return [tree]


def _is_number_sequence(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(
            isinstance(v, int | float | bool | np.number) or _is_number_sequence(v) for v in value
        )
    )


def _refuse_path(value: Any, arg_name: str) -> None:
    """Raises a `TypeError` when `value` is a string or path: kfit reads no files."""
    if isinstance(value, str | bytes | os.PathLike):
        raise TypeError(
            f"`{arg_name}` is a {type(value).__name__} ({os.fspath(value)!r:.80}), taken for a "
            "file path: kfit does not read files. Load the data first (e.g. numpy.loadtxt or "
            "pandas.read_csv) and pass the arrays, or pass a Dataset or DataLoader."
        )


def to_tensor(value: Any, arg_name: str) -> torch.Tensor:
    """Converts one array-like to a tensor, or raises a `TypeError` naming `arg_name`."""
    if isinstance(value, torch.Tensor):
        return value
    if hasattr(value, "to_numpy"):  # pandas objects
        value = value.to_numpy()
    array = np.asarray(value)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise TypeError(
            f"`{arg_name}` must hold numbers; got an array of dtype {array.dtype}"
            + (f" (first item {array.flat[0]!r})." if array.size else ".")
        )
    # ascontiguousarray would turn a 0-d array into shape (1,), hiding a missing batch axis.
    array = np.ascontiguousarray(array) if array.ndim else array
    if not array.flags.writeable:  # e.g. pandas' copy-on-write arrays: torch wants its own
        array = array.copy()
    return torch.from_numpy(array)


def to_tensor_tree(value: Any, arg_name: str) -> Tree:
    """Converts arrays, tensors and tuples/lists/dicts of them to tensors."""
    if value is None:
        return None
    if _is_number_sequence(value):
        return to_tensor(value, arg_name)
    if isinstance(value, Mapping):
        return {k: to_tensor_tree(v, f"{arg_name}[{k!r}]") for k, v in value.items()}
    if isinstance(value, tuple | list):
        if not value:
            raise ValueError(f"`{arg_name}` is empty.")
        return type(value)(to_tensor_tree(v, f"{arg_name}[{i}]") for i, v in enumerate(value))
    return to_tensor(value, arg_name)


def standardize_dtypes(tree: Tree, float_dtype: torch.dtype, is_target: bool = False) -> Tree:
    """Floating leaves take the model's float dtype; booleans too for targets; ints stay."""

    def convert(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.is_floating_point() and tensor.dtype != float_dtype:
            return tensor.to(float_dtype)
        if is_target and tensor.dtype == torch.bool:
            return tensor.to(float_dtype)
        return tensor

    return None if tree is None else map_tree(convert, tree)


def num_samples(x: Tree, y: Tree, sample_weight: torch.Tensor | None) -> int:
    """Returns the shared first-axis length of every array, or raises naming the mismatch."""
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


def index_tree(tree: Tree, index: torch.Tensor | slice) -> Tree:
    """Selects the samples `index` (a slice or an index tensor) from every leaf."""
    if tree is None:
        return None
    if isinstance(tree, torch.Tensor):
        return tree[index] if isinstance(index, slice) else tree.index_select(0, index)
    if isinstance(index, slice):
        return map_tree(lambda t: t[index], tree)
    return map_tree(lambda t: t.index_select(0, index), tree)


def move_tree(tree: Tree, device: torch.device) -> Tree:
    """Moves every tensor leaf to `device` without blocking the host."""
    if tree is None:
        return None
    return map_tree(
        lambda t: t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t, tree
    )


def _pinned(tree: Tree) -> Tree:
    if tree is None or not torch.cuda.is_available():
        return tree
    return map_tree(lambda t: t.pin_memory(), tree)


def prefetch_to_cuda(batches: Iterable[Batch], device: torch.device) -> Iterator[Batch]:
    """Copies host batches to a CUDA `device` one batch ahead, on a side stream.

    Each batch is copied to page-locked memory (the caching host allocator reuses those blocks)
    and sent with `non_blocking=True` on a copy stream while the previous batch's step runs.
    The step's stream waits for that batch's copy only (an event, not a host sync), and the
    tensors are marked as used by it so their memory is not reused too early.
    """
    copy_stream = torch.cuda.Stream(device)

    def start_copy(batch: Batch) -> tuple[Batch, torch.cuda.Event]:
        with torch.cuda.stream(copy_stream):
            moved = tuple(move_tree(_pinned(part), device) for part in batch)
            copied = torch.cuda.Event()
            copied.record(copy_stream)
        return moved, copied  # type: ignore[return-value]

    def hand_over(moved: Batch, copied: torch.cuda.Event) -> Batch:
        compute_stream = torch.cuda.current_stream(device)
        compute_stream.wait_event(copied)
        for tensor in leaves(moved):
            if isinstance(tensor, torch.Tensor):
                tensor.record_stream(compute_stream)
        return moved

    pending = None
    for batch in batches:
        started = start_copy(batch)
        if pending is not None:
            yield hand_over(*pending)
        pending = started
    if pending is not None:
        yield hand_over(*pending)


# Keys of a dict batch (HuggingFace datasets and collators) that hold the targets.
LABEL_KEYS = ("labels", "label")


def unpack(data: Any) -> Batch:
    """Splits what a data set yields into `(x, y, sample_weight)`, as Keras does.

    A dict batch (as HuggingFace datasets and collators yield, `{"input_ids", "attention_mask",
    "labels"}`) is `x` whole; its `labels` (or `label`) entry is also `y`. The model is called
    with the dict's entries as keyword arguments; a label key its `forward` does not accept is
    left out of the call (see `Model.call_forward`). A dict without a label key is `x` alone.
    """
    if isinstance(data, Mapping):
        label_keys = [key for key in LABEL_KEYS if key in data]
        if len(label_keys) > 1:
            raise ValueError(
                f"A dict batch has both {label_keys[0]!r} and {label_keys[1]!r} keys; kfit takes "
                "the target from one of them. Drop one, or yield (x, y) tuples."
            )
        return data, (data[label_keys[0]] if label_keys else None), None
    if isinstance(data, tuple | list):
        if len(data) == 1:
            return data[0], None, None
        if len(data) == 2:
            return data[0], data[1], None
        if len(data) == 3:
            return data[0], data[1], data[2]
        raise ValueError(
            f"A data set must yield x, (x,), (x, y) or (x, y, sample_weight); got a "
            f"{type(data).__name__} of {len(data)} items."
        )
    return data, None, None


def as_yielded(batch: Batch) -> tuple[Any, ...]:
    """A batch as a data set would yield it: `(x, y)` without weights, `(x,)` without targets.

    This is the `data` a `train_step`/`test_step` receives, as in Keras; `unpack` splits it.
    """
    x, y, sample_weight = batch
    if sample_weight is not None:
        return batch
    return (x,) if y is None else (x, y)


def batch_size_of(x: Tree) -> int:
    """The first-axis length of the first leaf of `x`."""
    return x.shape[0] if isinstance(x, torch.Tensor) else leaves(x)[0].shape[0]


@dataclass
class ArrayData:
    """In-memory samples, batched by slicing a permutation.

    Attributes:
        x: inputs (a tensor or a structure of tensors).
        y: targets, or None.
        sample_weight: one weight per sample, or None.
        size: the number of samples.
    """

    x: Tree
    y: Tree | None
    sample_weight: Tree | None
    size: int

    def num_batches(self, batch_size: int) -> int:
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

    def batches(self, batch_size: int, shuffle: bool, device: torch.device) -> Iterator[Batch]:
        """Yields one epoch of `(x, y, sample_weight)` batches on `device`, the last one partial."""
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
        """Keras's rule: the last `N - floor(N * (1 - s))` samples, before any shuffling."""
        split_at = int(math.floor(self.size * (1.0 - validation_split)))
        if split_at == 0 or split_at == self.size:
            raise ValueError(
                f"`validation_split={validation_split}` leaves "
                f"{'no training' if split_at == 0 else 'no validation'} samples out of "
                f"{self.size}."
            )
        head, tail = slice(0, split_at), slice(split_at, self.size)
        return (
            ArrayData(
                index_tree(self.x, head),
                index_tree(self.y, head),
                index_tree(self.sample_weight, head),
                split_at,
            ),
            ArrayData(
                index_tree(self.x, tail),
                index_tree(self.y, tail),
                index_tree(self.sample_weight, tail),
                self.size - split_at,
            ),
        )


class IterableData:
    """Batches from a `DataLoader`, a data set or any iterable of `(x, y[, sample_weight])`.

    A re-iterable source (a DataLoader, a list) starts afresh every epoch; a one-shot iterator
    (a generator) carries on across epochs, as Keras does.
    """

    def __init__(self, source: Iterable[Any]):
        self.source = source
        # A generator is its own iterator; asking a DataLoader for one would start its workers.
        self.one_shot = isinstance(source, Iterator)
        self._iterator: Iterator[Any] | None = None
        # Called as `check_targets(y, offset)` on each batch's host targets before they move
        # to the device (the trainer sets it to check class ids against the loss).
        self.check_targets: Callable[[Tree, int], None] | None = None

    def num_batches(self, batch_size: int | None = None) -> int | None:
        try:
            return len(self.source)  # type: ignore[arg-type]
        except TypeError:
            return None

    def batches(self, float_dtype: torch.dtype, device: torch.device) -> Iterator[Batch]:
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


def is_data_source(x: Any) -> bool:
    """Whether `x` is a data set, DataLoader or iterator rather than in-memory arrays."""
    if isinstance(x, DataLoader | Dataset | IterableDataset):
        return True
    if isinstance(x, torch.Tensor | np.ndarray | Mapping | tuple | list) or hasattr(x, "to_numpy"):
        return False  # in-memory arrays (pandas objects included)
    return hasattr(x, "__iter__") or hasattr(x, "__next__")


def class_weight_to_sample_weight(y: torch.Tensor, class_weight: Mapping[Any, float]):
    """Per-sample weights from a `{class: weight}` dict (on the host, once, as Keras does).

    Raises:
        ValueError: if a class present in `y` has no weight.
    """
    if not isinstance(y, torch.Tensor):
        raise ValueError(
            "`class_weight` is only supported for models with a single output (as in Keras); "
            "for several outputs pass `sample_weight` as a list or dict, one array per output."
        )
    labels = y.argmax(-1) if y.dim() > 1 and y.shape[-1] > 1 else y.reshape(y.shape[0], -1)[:, 0]
    labels = torch.round(labels.double()).long()
    present = sorted(int(c) for c in torch.unique(labels).tolist())
    missing = [c for c in present if c not in class_weight]
    if missing:
        raise ValueError(
            f"`class_weight` has no weight for classes {missing} present in `y`; "
            f"it has {sorted(class_weight)}."
        )
    keys = torch.tensor(present)
    values = torch.tensor([float(class_weight[c]) for c in present], dtype=torch.float32)
    return values[torch.searchsorted(keys, labels)]  # negative labels (e.g. -1/1) included


def make_data(
    x: Any,
    y: Any,
    sample_weight: Any,
    float_dtype: torch.dtype,
    *,
    batch_size: int,
    shuffle: bool,
    what: str = "x",
) -> ArrayData | IterableData:
    """Validates and wraps the user's data.

    Args:
        x: arrays/tensors (or structures of them), a Dataset, a DataLoader or an iterable.
        y: targets when `x` holds arrays; must be None for data sets. When None, a dict `x`
            with a `labels` (or `label`) entry takes it as the targets, as a dict batch does.
        sample_weight: per-sample weights when `x` holds arrays.
        float_dtype: the model's floating dtype.
        batch_size: used to batch a map-style `Dataset`.
        shuffle: used to shuffle a map-style `Dataset`.
        what: the argument name used in error messages.

    Returns:
        `ArrayData` for in-memory data, `IterableData` otherwise.
    """
    if x is None:
        raise ValueError(f"`{what}` is required; got None.")
    for name, value in ((what, x), ("y", y), ("sample_weight", sample_weight)):
        _refuse_path(value, name)
    if is_data_source(x):
        for name, value in (("y", y), ("sample_weight", sample_weight)):
            if value is not None:
                raise ValueError(
                    f"`{name}` must be None when `{what}` is a "
                    f"{type(x).__name__}: it yields (x, y[, sample_weight]) itself."
                )
        if isinstance(x, Dataset | IterableDataset) and not isinstance(x, DataLoader):
            x = DataLoader(
                x,
                batch_size=batch_size,
                shuffle=shuffle and not isinstance(x, IterableDataset),
                pin_memory=torch.cuda.is_available(),  # non-blocking copies need pinned pages
            )
        return IterableData(x)
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
    return ArrayData(x_tree, y_tree, weights, size)


def warn_ran_out(steps: int, expected: int | None) -> None:
    """The Keras warning for an input that ended before its epoch did.

    `expected` is `steps_per_epoch`, or the steps of the epoch before when it was not given
    (an exhausted generator); None when unknown.
    """
    of = f" of {expected}" if expected else ""
    warnings.warn(
        f"Your input ran out of data after {steps}{of} steps; interrupting training. "
        "Make sure the data can generate `steps_per_epoch * epochs` batches.",
        stacklevel=3,
    )
