"""Checks of the loops' arguments, before anything runs (a `ValueError` naming the argument)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def check_int(name: str, value: Any, minimum: int, allow_none: bool = False) -> None:
    """Raises a `ValueError` naming `name` unless `value` is an integer >= `minimum`."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")


def check_verbose(verbose: Any) -> int:
    """`verbose` as 0, 1 or 2 (`'auto'` is 1); raises a `ValueError` for anything else."""
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2; got {verbose!r}.")
    return int(verbose)


def check_fit_options(
    batch_size: Any,
    epochs: Any,
    initial_epoch: Any,
    steps_per_epoch: Any,
    validation_steps: Any,
    validation_batch_size: Any,
    validation_freq: Any,
    validation_split: Any,
    shuffle: Any,
    diagnose: Any,
) -> None:
    """Checks `fit`'s numeric and flag arguments (see `Trainer.fit`).

    Raises:
        ValueError: naming the first invalid argument and its value.
    """
    check_int("batch_size", batch_size, 1, allow_none=True)
    check_int("epochs", epochs, 0)
    check_int("initial_epoch", initial_epoch, 0)
    check_int("steps_per_epoch", steps_per_epoch, 1, allow_none=True)
    check_int("validation_steps", validation_steps, 1, allow_none=True)
    check_int("validation_batch_size", validation_batch_size, 1, allow_none=True)
    _check_validation_freq(validation_freq)
    if not isinstance(shuffle, bool):
        raise ValueError(f"`shuffle` must be True or False; got {shuffle!r}.")
    if not isinstance(diagnose, bool):
        raise ValueError(f"`diagnose` must be True or False; got {diagnose!r}.")
    if (
        isinstance(validation_split, bool)
        or not isinstance(validation_split, int | float)
        or not 0.0 <= validation_split < 1.0
    ):
        raise ValueError(f"`validation_split` must be in [0, 1); got {validation_split!r}.")


def _check_validation_freq(validation_freq: int | Sequence[int]) -> None:
    if not isinstance(validation_freq, int) or isinstance(validation_freq, bool):
        if not (isinstance(validation_freq, list | tuple) and validation_freq):
            raise ValueError(
                "`validation_freq` must be an integer >= 1 or a list of "
                f"epochs; got {validation_freq!r}."
            )
    elif validation_freq < 1:
        raise ValueError(f"`validation_freq` must be >= 1; got {validation_freq}.")
