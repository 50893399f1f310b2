"""Keras's data utilities for custom steps: `unpack_x_y_sample_weight` and its inverse.

A `train_step`/`test_step` receives the batch as the data yields it (`(x, y)`,
`(x, y, sample_weight)` or `(x,)`), as in Keras; these split and build such tuples.
"""

from __future__ import annotations

from typing import Any

from kfit.data import unpack

__all__ = ["pack_x_y_sample_weight", "unpack_x_y_sample_weight"]


def unpack_x_y_sample_weight(data: Any) -> tuple[Any, Any, Any]:
    """Splits a batch into `(x, y, sample_weight)`, None for what it lacks.

    Args:
        data: `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`.

    Returns:
        The tuple `(x, y, sample_weight)`.

    Raises:
        ValueError: for a tuple or list of more than three items.

    Example:
        >>> def train_step(self, data):
        ...     x, y, sample_weight = kfit.utils.unpack_x_y_sample_weight(data)
    """
    return unpack(data)


def pack_x_y_sample_weight(x: Any, y: Any = None, sample_weight: Any = None) -> tuple[Any, ...]:
    """The batch tuple a data set yields: `(x,)`, `(x, y)` or `(x, y, sample_weight)`.

    Args:
        x: the inputs.
        y: the targets, or None.
        sample_weight: per-sample weights, or None.

    Returns:
        The shortest tuple that holds what is given.
    """
    if y is None:
        return (x,)
    if sample_weight is None:
        return (x, y)
    return (x, y, sample_weight)
