"""Names shared by kfit's registries: Keras's snake-case rule and "did you mean" errors.

Every registry (losses, metrics, optimizers, schedules, precision, callbacks) is a plain
table `id -> class or function`; an unknown string id raises the `ValueError` built here,
which names the closest valid id.
"""

from __future__ import annotations

import difflib
import re

__all__ = ["closest_name", "snake_case", "unknown_id_error"]


def snake_case(name: str) -> str:
    """Keras's `to_snake_case`: `TopKCategoricalAccuracy` -> `top_k_categorical_accuracy`.

    Args:
        name: a class name.

    Returns:
        The name in snake case, as Keras names its objects by default.
    """
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def closest_name(name: str, names: list[str]) -> str | None:
    """Returns the valid name nearest to `name` (ignoring case), or None.

    Args:
        name: the unknown name.
        names: the valid names.

    Returns:
        The closest of `names`, or None when none is close.
    """
    lowered = {n.lower(): n for n in names}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=5, cutoff=0.4)
    if not matches:
        return None
    # difflib's ratio misses swapped letters ('adma' scores 'adamax' above 'adam'): among its
    # candidates take the fewest edits, a swap counting as one; ties keep difflib's order.
    return lowered[min(matches, key=lambda match: _edit_distance(name.lower(), match))]


def _edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps."""
    before, previous = None, list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        row = [i]
        for j, char_b in enumerate(b, 1):
            cost = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            if before is not None and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                cost = min(cost, before[j - 2] + 1)
            row.append(cost)
        before, previous = previous, row
    return previous[-1]


def unknown_id_error(kind: str, identifier: str, names: list[str], where: str) -> ValueError:
    """Builds the `ValueError` for an unknown string id, naming the closest valid one.

    Args:
        kind: what the id names (`'loss'`, `'optimizer'`, ...).
        identifier: the unknown id.
        names: the valid ids.
        where: the table that lists them, for the message.

    Returns:
        The error, for the caller to raise.
    """
    suggestion = closest_name(identifier, names)
    hint = f" Did you mean {suggestion!r}?" if suggestion else ""
    return ValueError(
        f"Unknown {kind} identifier {identifier!r}.{hint} The valid ids are the keys of `{where}`."
    )
