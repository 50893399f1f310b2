"""Callback memory in backups: `{key: callback.state_dict()}`, restored all or nothing.

`BackupAndRestore` (through `Model.save(..., callbacks=...)` and `Model.load`) stores the
`state_dict()` of every callback that has memory (ModelCheckpoint's best value, EarlyStopping's
wait and best, ReduceLROnPlateau's, a torch scheduler's), so that a resumed `fit` continues as
if it had never stopped. A callback is found again by its class name, numbered from the second
callback of the same class on (`'ModelCheckpoint'`, `'ModelCheckpoint_2'`).
"""

from __future__ import annotations

import copy
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from kfit.callbacks.callback import Callback


def keyed(callbacks: Sequence[Callback]) -> dict[str, Callback]:
    """The callbacks by their key in a backup: the class name, `_2`, `_3`, ... for repeats."""
    keys: dict[str, Callback] = {}
    counts: dict[str, int] = {}
    for callback in callbacks:
        name = type(callback).__name__
        counts[name] = counts.get(name, 0) + 1
        keys[name if counts[name] == 1 else f"{name}_{counts[name]}"] = callback
    return keys


def callback_states(callbacks: Sequence[Callback]) -> dict[str, dict[str, Any]]:
    """`{key: state_dict()}` for the callbacks that have memory (a non-empty state)."""
    states = {key: callback.state_dict() for key, callback in keyed(callbacks).items()}
    return {key: state for key, state in states.items() if state}


def load_callback_states(callbacks: Sequence[Callback], states: Any, source: str) -> None:
    """Gives each callback its saved state; on any failure every callback is left as it was.

    A callback with memory but no saved state starts afresh, with a warning.

    Args:
        callbacks: the callbacks to restore.
        states: the saved `{key: state}` (`None` when the file holds no callback section).
        source: the file, for messages.

    Raises:
        ValueError: naming `source` and the callback, if a saved state does not fit.
    """
    states = {} if states is None else states
    if not isinstance(states, Mapping) or not all(isinstance(k, str) for k in states):
        raise ValueError(f"{source}: the 'callbacks' section is not a mapping of names to states.")
    targets = {key: c for key, c in keyed(callbacks).items() if c.state_dict() or key in states}
    before = {key: copy.deepcopy(callback.state_dict()) for key, callback in targets.items()}
    missing = []
    loaded: list[str] = []
    try:
        for key, callback in targets.items():
            if key not in states:
                missing.append(key)
                continue
            if not isinstance(states[key], Mapping):
                raise ValueError(f"the state of {key} is not a mapping")
            callback.load_state_dict(dict(states[key]))
            loaded.append(key)
    except (ValueError, TypeError, KeyError) as err:
        for key in loaded:  # back to how they were
            targets[key].load_state_dict(before[key])
        raise ValueError(f"{source}: cannot restore the callbacks' state: {err}") from err
    if missing:
        warnings.warn(
            f"{source} holds no saved state for the callbacks {missing}; they start afresh.",
            stacklevel=3,
        )


def checked(owner: Callback, state: Mapping[str, Any], kinds: Mapping[str, str]) -> dict[str, Any]:
    """The entries of `state` named in `kinds`, each checked; raises before anything is set.

    Args:
        owner: the callback whose state this is (for messages).
        state: the saved state.
        kinds: `{key: kind}`, kind `'count'` (an integer >= 0), `'number'` (a real number,
            NaN and infinities allowed) or `'number?'` (a number or None).

    Raises:
        ValueError: naming the callback, the key and the value, for a missing or wrong entry.
    """
    name = type(owner).__name__
    values = {}
    for key, kind in kinds.items():
        if key not in state:
            raise ValueError(f"{name}'s saved state lacks {key!r}")
        value = state[key]
        if kind == "count":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        else:
            ok = (value is None and kind == "number?") or (
                isinstance(value, numbers.Real) and not isinstance(value, bool)
            )
        if not ok:
            raise ValueError(f"{name}'s saved {key!r} must be a {kind.rstrip('?')}; got {value!r}")
        values[key] = value
    return values


def plain_number(value: Any) -> float | None:
    """A monitored value as a Python float (None stays None), for a saved state."""
    return None if value is None else float(value)
