"""`make_data`: the user's `x, y, sample_weight` turned into a `DataSource`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from kfit.data.arrays import ArrayData
from kfit.data.iterables import IterableData
from kfit.data.source import DataSource


def _refuse_path(value: Any, arg_name: str) -> None:
    """Raises a `TypeError` when `value` is a string or path: kfit reads no files."""
    if isinstance(value, str | bytes | os.PathLike):
        raise TypeError(
            f"`{arg_name}` is a {type(value).__name__} ({os.fspath(value)!r:.80}), taken for a "
            "file path: kfit does not read files. Load the data first (e.g. numpy.loadtxt or "
            "pandas.read_csv) and pass the arrays, or pass a Dataset or DataLoader."
        )


def is_data_source(x: Any) -> bool:
    """Whether `x` is a data set, DataLoader or iterator rather than in-memory arrays."""
    if isinstance(x, DataLoader | Dataset | IterableDataset):
        return True
    if isinstance(x, torch.Tensor | np.ndarray | Mapping | tuple | list) or hasattr(x, "to_numpy"):
        return False  # in-memory arrays (pandas objects included)
    return hasattr(x, "__iter__") or hasattr(x, "__next__")


def make_data(
    x: Any,
    y: Any,
    sample_weight: Any,
    float_dtype: torch.dtype,
    *,
    batch_size: int,
    shuffle: bool,
    what: str = "x",
) -> DataSource:
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

    Raises:
        ValueError, TypeError: for missing data, file paths, targets given beside a data set,
            or arrays kfit cannot use.
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
        return IterableData.from_source(x, float_dtype, batch_size=batch_size, shuffle=shuffle)
    return ArrayData.from_arrays(x, y, sample_weight, float_dtype, what)
