"""A model's outputs by name, and matching targets, sample weights, losses and metrics to them.

A model may return one tensor, a tuple/list of tensors or a dict of tensors. Dict outputs are
named by their keys (in the dict's order); tuple/list outputs are named `output_1`,
`output_2`, ... (tf.keras 2's names: Keras 3 leaves a subclassed model's tuple outputs unnamed,
which makes two outputs' log keys collide). Names prefix the log keys (`output_1_loss`,
`out_a_mae`) only when there is more than one output.

A model that returns a dict, a HuggingFace `ModelOutput` or a namedtuple, trained with one
loss and a plain `y` (one array), is trained on one of its outputs, chosen by `choose_output`:
the only tensor (a `loss` entry aside), else the `logits` entry; the other entries (hidden
states, attentions) are ignored by the loss and metrics and returned by `predict`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch


class OutputSlot(NamedTuple):
    """One output of the model.

    Attributes:
        name: the output's name (None for a model with a single tensor output).
        position: its place among the outputs (0-based).
        key: the dict key for dict outputs, else None.
    """

    name: str | None
    position: int
    key: Any = None


def output_slots(y_pred: Any) -> list[OutputSlot]:
    """Names the outputs of one batch's `y_pred`.

    Raises:
        ValueError: for outputs nested deeper than one tuple/list/dict, or holding
            something other than tensors.
    """
    if isinstance(y_pred, torch.Tensor):
        return [OutputSlot(None, 0)]
    if isinstance(y_pred, Mapping):
        items = list(y_pred.items())
        slots = [OutputSlot(str(key), i, key) for i, (key, _) in enumerate(items)]
    elif isinstance(y_pred, tuple) and hasattr(y_pred, "_fields"):  # a namedtuple
        items = list(zip(y_pred._fields, y_pred, strict=True))
        slots = [OutputSlot(name, i, name) for i, name in enumerate(y_pred._fields)]
    elif isinstance(y_pred, tuple | list):
        items = list(enumerate(y_pred))
        slots = [OutputSlot(f"output_{i + 1}", i) for i in range(len(y_pred))]
    else:
        raise ValueError(
            "The model must return a tensor, or a tuple/list/dict of tensors, to be trained "
            f"with a compiled loss; it returned {_returned(y_pred)}."
        )
    for slot, (_, value) in zip(slots, items, strict=True):
        if not isinstance(value, torch.Tensor):
            raise ValueError(
                f"The model's output {slot.name!r} is a {type(value).__name__}; a compiled "
                "loss needs each output to be a tensor (nest no deeper than one tuple/list/"
                "dict, or override `train_step`)."
            )
    if not slots:
        raise ValueError("The model returned an empty tuple/list/dict: there is no output.")
    return slots


def _returned(value: Any) -> str:
    if value is None:
        return "None (does `forward` end with a `return`?)"
    return f"a {type(value).__name__}"


def check_predictions(y_pred: Any, path: str = "") -> None:
    """Raises a `TypeError` naming the first output of `predict` that is not a tensor.

    Args:
        y_pred: one batch's outputs: a tensor, or tuples/lists/dicts of them.
        path: where `y_pred` sits in the model's outputs (for the message).
    """
    if isinstance(y_pred, torch.Tensor):
        return
    if isinstance(y_pred, Mapping):
        for key, value in y_pred.items():
            check_predictions(value, f"{path}[{key!r}]")
        return
    if isinstance(y_pred, tuple | list) and y_pred:
        for i, value in enumerate(y_pred):
            check_predictions(value, f"{path}[{i}]")
        return
    where = f"the model's output{path}" if path else "the model"
    raise TypeError(
        f"`predict` needs tensors, but {where} returned {_returned(y_pred)}; `forward` (or "
        "`predict_step`) must return a tensor or a tuple/list/dict of tensors."
    )


def is_named_structure(y_pred: Any) -> bool:
    """Whether `y_pred` is a dict, a HuggingFace `ModelOutput` (a dict) or a namedtuple."""
    return isinstance(y_pred, Mapping) or (isinstance(y_pred, tuple) and hasattr(y_pred, "_fields"))


def choose_output(y_pred: Any) -> OutputSlot:
    """The output a single loss and a plain `y` apply to, for a dict/ModelOutput/namedtuple.

    The rule: the only tensor entry (not counting a `loss` entry, the model's own loss);
    else the `logits` entry.

    Args:
        y_pred: one batch's outputs, a dict, `ModelOutput` or namedtuple.

    Returns:
        The chosen output, with no name (its metrics are logged as for a one-output model).

    Raises:
        ValueError: listing the entries, when the rule picks none.
    """
    if isinstance(y_pred, Mapping):
        keys = list(y_pred.keys())
        values = list(y_pred.values())
    else:
        keys, values = list(y_pred._fields), list(y_pred)
    tensors = [
        i
        for i, (k, v) in enumerate(zip(keys, values, strict=True))
        if isinstance(v, torch.Tensor) and k != "loss"
    ]
    if len(tensors) == 1:
        position = tensors[0]
    elif "logits" in keys and isinstance(values[keys.index("logits")], torch.Tensor):
        position = keys.index("logits")
    else:
        shown = ", ".join(repr(str(k)) for k in keys)
        raise ValueError(
            f"The model returns a {type(y_pred).__name__} with entries ({shown}), and kfit "
            "cannot tell which one a single loss and a plain `y` apply to (it takes the only "
            "tensor, else 'logits'). Name it: e.g. `compile(loss={"
            f"{str(keys[0])!r}: ...}})`, or pass `y` as a dict keyed by entry name."
        )
    return OutputSlot(None, position, keys[position])


def describe(slots: Sequence[OutputSlot]) -> str:
    """`"2 outputs ('out_a', 'out_b')"`, for error messages."""
    return f"{len(slots)} outputs ({', '.join(repr(s.name) for s in slots)})"


def _check_names(mapping: Mapping[Any, Any], slots: Sequence[OutputSlot], message: str) -> None:
    """Raises `message` (with `{}` for the keys) if a key of `mapping` names no output."""
    names = {s.name for s in slots} | {s.key for s in slots if s.key is not None}
    unknown = [key for key in mapping if key not in names]
    if unknown:
        raise ValueError(f"{message.format(unknown)}; the model has {describe(slots)}.")


def select(tree: Any, slot: OutputSlot) -> Any:
    """The part of `tree` (targets, outputs or weights) that belongs to `slot`.

    A dict is read by the output's key or name, a tuple/list by position; a single tensor
    belongs to every output (one `sample_weight` weighs every output's loss, as in Keras).
    """
    if tree is None or isinstance(tree, torch.Tensor):
        return tree
    if isinstance(tree, Mapping):  # a missing entry (only weights may miss one) is None
        if slot.key is not None and slot.key in tree:
            return tree[slot.key]
        return tree.get(slot.name)
    return tree[slot.position]


def check_tree(tree: Any, slots: Sequence[OutputSlot], used: Sequence[OutputSlot], what: str):
    """Checks that `tree` (`y` or `sample_weight`) has a part for every output in `used`.

    Raises:
        ValueError: naming the outputs and what `tree` holds instead.
    """
    if tree is None:
        return
    if len(slots) == 1 and slots[0].name is None:
        if isinstance(tree, tuple | list) and len(tree) != 1:
            raise ValueError(
                f"The model has one output, but `{what}` is a {type(tree).__name__} of "
                f"{len(tree)} arrays; pass one array."
            )
        if isinstance(tree, Mapping):
            raise ValueError(
                f"The model has one output, but `{what}` is a dict with keys "
                f"{sorted(map(str, tree))}; pass one array."
            )
        return
    if isinstance(tree, torch.Tensor):
        if what == "sample_weight" or len(slots) == 1 or len(used) == 1:
            return  # one weight per sample weighs every output; one output takes one array
        raise ValueError(
            f"The model has {describe(slots)}; `{what}` must be a list of {len(slots)} arrays "
            "or a dict keyed by output name, not a single array."
        )
    if isinstance(tree, Mapping):
        _check_names(tree, slots, f"`{what}` has keys {{}} that match no output")
        missing = [s.name for s in used if s.name not in tree and s.key not in tree]
        if missing and what != "sample_weight":  # an output without weights is unweighted
            raise ValueError(
                f"`{what}` has no entry for the outputs {missing}, which have a loss or metrics."
            )
        return
    if len(tree) != len(slots):
        raise ValueError(
            f"The model has {describe(slots)}, but `{what}` holds {len(tree)} arrays; pass one "
            "per output, or a dict keyed by output name."
        )


def per_output(spec: Any, slots: Sequence[OutputSlot], arg_name: str, broadcast: bool) -> list:
    """Spreads a `compile` argument (`loss`, `metrics`, `loss_weights`) over the outputs.

    Args:
        spec: None, one entry, a list with one entry per output, or a dict keyed by output
            name (outputs it leaves out get None).
        slots: the outputs.
        arg_name: the argument's name, for errors.
        broadcast: whether one bare entry applies to every output (Keras does this for
            `loss`; for `metrics` one bare list is the single output's list).

    Returns:
        One entry (possibly None) per output.

    Raises:
        ValueError: for a dict key that names no output, or a list whose length is not the
            number of outputs.
    """
    if spec is None:
        return [None] * len(slots)
    if isinstance(spec, Mapping):
        if slots[0].name is None:
            raise ValueError(
                f"`{arg_name}` is a dict ({sorted(map(str, spec))}), but the model returns a "
                "single tensor; return a dict or tuple of outputs, or pass a list."
            )
        _check_names(spec, slots, f"`{arg_name}` names {{}}, which match no output")
        return [spec[s.key] if s.key in spec else spec.get(s.name) for s in slots]
    if len(slots) == 1:
        return [spec]
    if isinstance(spec, list | tuple):
        if len(spec) != len(slots):
            raise ValueError(
                f"`{arg_name}` has {len(spec)} entries, but the model has {describe(slots)}: "
                "pass one entry per output (None for none), or a dict keyed by output name."
            )
        return list(spec)
    if broadcast:
        return [spec] * len(slots)
    raise ValueError(
        f"`{arg_name}` for a model with {describe(slots)} must be a list with one entry per "
        f"output or a dict keyed by output name; got {spec!r}."
    )
