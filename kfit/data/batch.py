"""One batch: `(x, y, sample_weight)`, and the forms a data set yields it in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from kfit.data.trees import Tree, leaves

Batch = tuple[Tree, Tree | None, torch.Tensor | None]

# Keys of a dict batch (HuggingFace datasets and collators) that hold the targets.
LABEL_KEYS = ("labels", "label")


def unpack(data: Any) -> Batch:
    """Splits what a data set yields into `(x, y, sample_weight)`, as Keras does.

    A dict batch (as HuggingFace datasets and collators yield, `{"input_ids", "attention_mask",
    "labels"}`) is `x` whole; its `labels` (or `label`) entry is also `y`. The model is called
    with the dict's entries as keyword arguments; a label key its `forward` does not accept is
    left out of the call (see `Model.call_forward`). A dict without a label key is `x` alone.

    Raises:
        ValueError: for a dict with both label keys, or a tuple/list of more than three items.
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
