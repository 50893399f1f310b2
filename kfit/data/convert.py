"""The user's arrays (numpy, pandas, lists of numbers, tensors) turned into tensors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from kfit.data.trees import Tree, map_tree


def _is_number_sequence(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(
            isinstance(v, int | float | bool | np.number) or _is_number_sequence(v) for v in value
        )
    )


def to_tensor(value: Any, arg_name: str) -> torch.Tensor:
    """Converts one array-like to a tensor.

    Args:
        value: a tensor, a numpy array, a pandas object or a (nested) list of numbers.
        arg_name: the argument's name, for the error message.

    Returns:
        A tensor (sharing memory with a writeable contiguous numpy array).

    Raises:
        TypeError: when `value` does not hold numbers.
    """
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
    """Converts arrays, tensors and tuples/lists/dicts of them to tensors.

    Raises:
        ValueError: for an empty tuple or list.
        TypeError: for a leaf that does not hold numbers.
    """
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
