"""What `compile` builds from the user's `loss`: the step loss, its per-output parts and trackers.

Identifiers are resolved at `compile` (so a misspelt id fails before any training), except the
shape-dependent `'accuracy'`/`'acc'` and `'crossentropy'`/`'ce'`, which are settled once from
the first batch's `y_true` and `y_pred` by Keras's rule.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from kfit import losses as losses_module
from kfit import metrics as metrics_module
from kfit.compiled.outputs import (
    OutputSlot,
    check_tree,
    choose_output,
    is_named_structure,
    output_slots,
    per_output,
    select,
)
from kfit.data import leaves
from kfit.losses import match_shapes, reduce_weighted
from kfit.registry import snake_case

_CROSSENTROPY_IDS = ("crossentropy", "ce")

# Losses that take class ids (not a tensor shaped like the prediction) as their target.
_CLASS_INDEX_LOSSES = (
    nn.CrossEntropyLoss,
    nn.NLLLoss,
    nn.MultiMarginLoss,
    nn.CTCLoss,
    nn.MultiLabelMarginLoss,
)

_BINARY_CROSSENTROPIES = (
    losses_module.binary_crossentropy,
    losses_module.binary_focal_crossentropy,
)

_NARROW_INTEGERS = (torch.uint8, torch.int8, torch.int16, torch.int32)

# Probabilistic losses: what their predictions must look like, and the class to suggest.
PROBABILISTIC_LOSSES = {
    losses_module.binary_crossentropy: ("binary", "BinaryCrossentropy"),
    losses_module.binary_focal_crossentropy: ("binary", "BinaryFocalCrossentropy"),
    losses_module.categorical_crossentropy: ("categorical", "CategoricalCrossentropy"),
    losses_module.categorical_focal_crossentropy: ("categorical", "CategoricalFocalCrossentropy"),
    losses_module.sparse_categorical_crossentropy: ("categorical", "SparseCategoricalCrossentropy"),
}


def keras_accuracy_kind(y_true: torch.Tensor, y_pred: torch.Tensor) -> str:
    """Keras's rule for `'accuracy'` and `'crossentropy'`: binary, sparse or categorical.

    An `(N,)` output is one value per sample (see `match_shapes`), so it counts as binary.
    """
    if y_pred.dim() <= 1 or y_pred.shape[-1] == 1:
        return "binary"
    if y_true.dim() < y_pred.dim() or (y_true.shape[-1] == 1 and y_pred.shape[-1] > 1):
        return "sparse"
    return "categorical"


def check_class_ids(
    y_true: torch.Tensor, num_classes: int, ignore: int | None, loss_name: str, offset: int = 0
) -> None:
    """Raises if a class id in `y_true` is negative or not below `num_classes`.

    A host read of `y_true` (a sync point when it is on a GPU): kfit calls it once on
    in-memory targets before training, and on each streamed batch while it is still on the
    host, so a bad label fails before any weight moves (on a GPU it would otherwise be a
    device-side assert that ends the CUDA context).

    Args:
        y_true: class ids, `(N,)`, `(N, 1)` or `(N, ...)`.
        num_classes: the size of the prediction's class axis.
        ignore: an id that is skipped (`ignore_class`, torch's `ignore_index`), or None.
        loss_name: the loss, for the message.
        offset: the index of `y_true`'s first sample in the whole data set.

    Raises:
        ValueError: naming the first bad value, its position and the number of classes.
    """
    bad = (y_true < 0) | (y_true >= num_classes)
    if ignore is not None:
        bad &= y_true != ignore
    if not bool(bad.any()):  # sync point (once per array, or a host batch)
        return
    flat = int(bad.reshape(-1).nonzero()[0, 0])
    position = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), bad.shape))
    position = (position[0] + offset, *position[1:])
    value = y_true.reshape(-1)[flat].item()
    where = position[0] if len(position) == 1 else position
    raise ValueError(
        f"`y` holds the class id {value} at position {where}, "
        f"but the loss {loss_name!r} sees {num_classes} classes (ids 0 to {num_classes - 1}) "
        "in the model's output. Check the labels, or the size of the model's last layer."
    )


class LossTracker(metrics_module.Accumulator):
    """The epoch `loss`: batch losses averaged with their batch sizes as weights (Keras)."""

    total: torch.Tensor  # the Accumulator's states, typed (nn.Module's attributes are not)
    count: torch.Tensor

    def __init__(self, name: str = "loss"):
        super().__init__(name=name)

    def update(self, loss: torch.Tensor, batch_size: int | torch.Tensor) -> None:
        if isinstance(batch_size, torch.Tensor):  # a weight on the device (Keras style)
            self.total.add_((loss.detach() * batch_size).sum())
            self.count.add_(batch_size.sum())
            return
        self.total.add_(loss.detach(), alpha=batch_size)
        self._accumulate_count(batch_size)

    def update_state(  # type: ignore[override]  # Keras's Mean: (values, sample_weight)
        self, values: torch.Tensor, sample_weight: Any = None
    ) -> None:
        """Keras's `Mean.update_state` for a custom step: `tracker.update_state(loss)`.

        Each call counts once, or `sample_weight` times (Keras's own step passes the batch
        size), so the epoch value is the (weighted) mean of the losses given.
        """
        self.update(values, 1 if sample_weight is None else sample_weight)


class OutputLoss:
    """One output's loss, applied with Keras's reduction `sum(w * l) / N`.

    Args:
        identifier: a string id, a `kfit.losses.Loss`, a function `f(y_true, y_pred)`, or a
            torch loss module (called as `module(y_pred, y_true)`).
    """

    def __init__(self, identifier: Any):
        self.identifier = identifier
        self.fn: Any = None
        if not (isinstance(identifier, str) and identifier.lower() in _CROSSENTROPY_IDS):
            self.fn = self._as_loss(losses_module.get(identifier))
        self._unreduced_module: nn.Module | None = None
        self.class_ids: tuple[int, int | None] | None = None
        self.built = False

    def _as_loss(self, fn: Any) -> Any:
        """Plain functions become `LossFunctionWrapper`s; Loss objects and modules stay."""
        if isinstance(fn, losses_module.Loss | nn.Module):
            return fn
        name = self.identifier if isinstance(self.identifier, str) else None
        return losses_module.LossFunctionWrapper(fn, name=name)

    @property
    def name(self) -> str:
        if isinstance(self.identifier, str):
            return self.identifier
        return getattr(self.fn, "name", None) or snake_case(
            getattr(self.fn, "__name__", type(self.fn).__name__)
        )

    def build(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
        """Settles `'crossentropy'` from the shapes and checks `from_logits` once."""
        if self.fn is None:
            kind = keras_accuracy_kind(y_true, y_pred)
            self.fn = self._as_loss(
                {
                    "binary": losses_module.binary_crossentropy,
                    "sparse": losses_module.sparse_categorical_crossentropy,
                    "categorical": losses_module.categorical_crossentropy,
                }[kind]
            )
        if isinstance(self.fn, nn.Module) and hasattr(self.fn, "reduction"):
            unreduced: Any = copy.copy(self.fn)
            unreduced.reduction = "none"
            self._unreduced_module = unreduced
        self._warn_if_logits(y_pred)
        self.class_ids = self._class_ids(y_true, y_pred)
        if self.class_ids is not None:
            check_class_ids(y_true, *self.class_ids, self.name)
        self.built = True

    def _class_ids(
        self, y_true: torch.Tensor, y_pred: torch.Tensor
    ) -> tuple[int, int | None] | None:
        """`(number of classes, ignored id)` when this loss takes class ids, else None."""
        if y_pred.dim() < 2 or y_true.is_floating_point() and y_true.shape == y_pred.shape:
            return None
        if getattr(self.fn, "fn", None) is losses_module.sparse_categorical_crossentropy:
            return y_pred.shape[-1], self.fn.fn_kwargs.get("ignore_class")
        if isinstance(self.fn, nn.CrossEntropyLoss | nn.NLLLoss):
            return y_pred.shape[1], self.fn.ignore_index  # torch's class axis is 1
        return None

    def unbuild(self) -> None:
        """Forgets what `build` settled (after a first batch that failed)."""
        if isinstance(self.identifier, str) and self.identifier.lower() in _CROSSENTROPY_IDS:
            self.fn = None
        self._unreduced_module = None
        self.built = False

    def _warn_if_logits(self, y_pred: torch.Tensor) -> None:
        fn = getattr(self.fn, "fn", self.fn)
        kind, class_name = PROBABILISTIC_LOSSES.get(fn, (None, None))
        options = getattr(self.fn, "fn_kwargs", {})
        if kind is None or options.get("from_logits"):
            return
        with torch.no_grad():  # a host read, once per compile: the first batch only
            low, high = float(y_pred.min()), float(y_pred.max())
            sums = y_pred.sum(-1) if kind == "categorical" else None
            off = sums is not None and float((sums - 1).abs().max()) > 1e-2
        if low < 0.0 or high > 1.0 or off:
            warnings.warn(
                f"The loss {self.name!r} expects probabilities (from_logits=False), but the first "
                f"batch's predictions range over [{low:.3g}, {high:.3g}]"
                + (" and do not sum to 1" if off else "")
                + ". If the model outputs logits, use the loss class with from_logits=True, "
                f"e.g. kfit.losses.{class_name}(from_logits=True).",
                stacklevel=4,
            )

    def __call__(
        self, y_true: torch.Tensor, y_pred: torch.Tensor, sample_weight: torch.Tensor | None
    ) -> torch.Tensor:
        if isinstance(self.fn, losses_module.Loss):
            # Keras's reduction, in the Loss (sample weights included); `reduction='none'`
            # leaves one value per sample, averaged here.
            return self._scalar(self.fn(y_true, y_pred, sample_weight), None, y_true)
        if not isinstance(self.fn, _CLASS_INDEX_LOSSES):
            y_true, y_pred = match_shapes(y_true, y_pred, self.name)
        elif y_true.dtype in _NARROW_INTEGERS:  # torch's class-index losses take int64 only
            y_true = y_true.long()
        if sample_weight is None or self._unreduced_module is None:
            # A torch loss module: (input, target).
            return self._scalar(self.fn(y_pred, y_true), sample_weight, y_true)
        return reduce_weighted(self._unreduced_module(y_pred, y_true), sample_weight)

    def _scalar(
        self, value: Any, sample_weight: torch.Tensor | None, y_true: torch.Tensor
    ) -> torch.Tensor:
        """The loss as a scalar: an unreduced one is reduced per sample, as Keras would.

        Keras's `sum_over_batch_size` of per-element values `l[i, ...]` with weights `w[i]`
        is `sum(w * l) / l.numel()`: each sample's mean over its other axes, then the
        weighted mean over the batch.
        """
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"The loss {self.name!r} returned {_described(value)}; a loss must return a "
                "tensor (a scalar, or one value per sample)."
            )
        if value.dim() == 0:
            if sample_weight is not None:
                raise ValueError(
                    f"The loss {self.name!r} returned a scalar, so `sample_weight` cannot be "
                    "applied: give it `reduction='none'` (one value per sample), or drop "
                    "`sample_weight`."
                )
            return value
        batch = y_true.shape[0] if y_true.dim() else None
        if value.shape[0] != batch:
            raise ValueError(
                f"The loss {self.name!r} returned a tensor of shape {tuple(value.shape)}: an "
                "unreduced loss (reduction='none') is averaged per sample, so its first axis "
                f"must be the batch ({batch} samples). Return a scalar or one value per sample."
            )
        return reduce_weighted(value, sample_weight)


def _described(value: Any) -> str:
    """`None`, or `a float (1.0)`: what a loss returned instead of a tensor."""
    if value is None:
        return "None"
    return f"a {type(value).__name__} ({value!r:.40})"


def spec_leaves(spec: Any) -> list[Any]:
    """Every identifier in a `loss`/`metrics` argument (lists and dicts opened)."""
    if spec is None:
        return []
    if isinstance(spec, Mapping):
        return [leaf for value in spec.values() for leaf in spec_leaves(value)]
    if isinstance(spec, list | tuple):
        return [leaf for value in spec for leaf in spec_leaves(value)]
    return [spec]


def _check_loss_weights(loss_weights: Any) -> None:
    def is_number(value: Any) -> bool:
        # NaN or inf would turn every weight into NaN at the first step.
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (math.isfinite(value))
        )

    values = (
        list(loss_weights.values())
        if isinstance(loss_weights, Mapping)
        else list(loss_weights)
        if isinstance(loss_weights, list | tuple)
        else [loss_weights]
    )
    if loss_weights is not None and not all(is_number(v) for v in values):
        raise ValueError(
            "`loss_weights` must be a finite number, a list of finite numbers (one per output) "
            f"or a dict {{output name: number}}; got {loss_weights!r}."
        )


class CompiledLoss:
    """The `loss` and `loss_weights` given to `compile`, spread over the model's outputs.

    The total is `sum(w_i * L_i)` over the outputs that have a loss (Keras). With more than
    one loss, each output's unweighted loss is also tracked as `{output}_loss`: the epoch mean
    of its batch values weighted by batch size, like `loss`.

    Args:
        loss: one loss (for every output), a list with one per output, or a dict
            `{output name: loss}`; each a string id, a `kfit.losses.Loss`, a function
            `f(y_true, y_pred)` or a torch loss module.
        loss_weights: a number, a list (one per output) or a dict `{output name: weight}`.
    """

    slots: list[OutputSlot]
    terms: list[tuple[OutputSlot, OutputLoss, float]]
    trackers: dict[str, LossTracker]
    _fused_mean: Callable[[Any, Any], torch.Tensor | None] | None

    def __init__(self, loss: Any, loss_weights: Any = None):
        _check_loss_weights(loss_weights)
        for identifier in spec_leaves(loss):  # a misspelt id fails at compile
            OutputLoss(identifier)
        self._loss = loss
        self._loss_weights = loss_weights
        self.unbuild()

    def build(self, y_true: Any, y_pred: Any) -> None:
        """Matches the losses to the outputs of the first batch and settles their ids.

        One loss with a plain `y` and a dict/ModelOutput/namedtuple `y_pred` applies to the
        output `kfit.compiled.outputs.choose_output` picks.
        """
        if self._applies_to_one_output(y_true, y_pred):
            slots = [choose_output(y_pred)]
        else:
            slots = output_slots(y_pred)
        losses = per_output(self._loss, slots, "loss", broadcast=True)
        if len(slots) == 1 and isinstance(losses[0], list | tuple):
            if len(losses[0]) != 1:
                raise ValueError(
                    f"The model has one output, so `loss` must be one loss; got {len(losses[0])}."
                )
            losses = [losses[0][0]]
        weights = self._weights(slots)
        used = [slot for slot, loss in zip(slots, losses, strict=True) if loss is not None]
        check_tree(y_true, slots, used, "y")
        terms = []
        for slot, identifier, weight in zip(slots, losses, weights, strict=True):
            if identifier is not None:
                output_loss = OutputLoss(identifier)
                output_loss.build(select(y_true, slot), select(y_pred, slot))
                terms.append((slot, output_loss, weight))
        device = leaves(y_pred)[0].device
        if len(terms) > 1:
            self.trackers = {
                f"{slot.name}_loss": LossTracker(f"{slot.name}_loss").to(device)
                for slot, _, _ in terms
            }
        self.slots, self.terms, self.built = slots, terms, True
        self._fused_mean = self._find_fused_mean()

    @property
    def binary_logits(self) -> frozenset[int]:
        """The positions of the outputs trained with a binary cross-entropy from logits."""
        positions = set()
        for slot, output_loss, _ in self.terms:
            fn = output_loss.fn
            if isinstance(fn, nn.BCEWithLogitsLoss) or (
                getattr(fn, "fn", None) in _BINARY_CROSSENTROPIES
                and fn.fn_kwargs.get("from_logits")
            ):
                positions.add(slot.position)
        return frozenset(positions)

    def check_targets(self, y_true: Any, offset: int = 0) -> None:
        """Checks the class ids of every output whose loss takes them (see `check_class_ids`).

        A no-op before `build` (the number of classes comes from the first batch's output)
        and for targets on a GPU after it (use it on host arrays: it reads them).
        """
        for slot, output_loss, _ in self.terms:
            target = select(y_true, slot)
            if output_loss.class_ids is not None and isinstance(target, torch.Tensor):
                check_class_ids(target, *output_loss.class_ids, output_loss.name, offset)

    def _applies_to_one_output(self, y_true: Any, y_pred: Any) -> bool:
        loss = self._loss
        single = not isinstance(loss, Mapping | list | tuple) or (
            isinstance(loss, list | tuple) and len(loss) == 1
        )
        return single and isinstance(y_true, torch.Tensor) and is_named_structure(y_pred)

    @property
    def chosen(self) -> OutputSlot | None:
        """The one output a plain `y` was matched to, for a dict/namedtuple `y_pred`."""
        used = [slot for slot, _, _ in self.terms]
        if len(used) == 1 and (used[0].key is not None or len(self.slots) > 1):
            return used[0]
        return None

    def _find_fused_mean(self) -> Callable[[Any, Any], torch.Tensor | None] | None:
        """The loss's fused batch mean, when the step loss is that one unweighted loss.

        Only the structure is decided here (one output, no key, weight 1); whether the loss
        has a fused path is the loss's own decision (`LossFunctionWrapper.batch_mean`).
        """
        if len(self.slots) != 1 or len(self.terms) != 1 or self.terms[0][2] != 1.0:
            return None
        if self.slots[0].key is not None:  # one entry of a dict/namedtuple output
            return None
        fn = self.terms[0][1].fn
        if isinstance(fn, losses_module.LossFunctionWrapper) and fn.has_batch_mean:
            return fn.batch_mean
        return None

    def _weights(self, slots: list[OutputSlot]) -> list[float]:
        weights = self._loss_weights
        if weights is None or isinstance(weights, int | float):
            return [1.0 if weights is None else float(weights)] * len(slots)
        if len(slots) == 1 and isinstance(weights, list | tuple):
            if len(weights) != 1:
                raise ValueError(
                    f"The model has one output, so `loss_weights` must be one number; got "
                    f"{weights!r}."
                )
            return [float(weights[0])]
        spread = per_output(weights, slots, "loss_weights", broadcast=False)
        return [1.0 if w is None else float(w) for w in spread]

    def unbuild(self) -> None:
        """Forgets what `build` settled (after a first batch that failed)."""
        self.slots = []
        self.terms = []
        self.trackers = {}
        self._fused_mean = None
        self._weights_checked = False
        self.built = False

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any) -> torch.Tensor | None:
        """The weighted total over the outputs (None when no output has a loss)."""
        fused = self._fused_mean
        if fused is not None and sample_weight is None and isinstance(y_true, torch.Tensor):
            loss = fused(y_true, y_pred)  # the common case, with no layers in between
            if loss is not None:
                return loss
        if len(self.slots) == 1 and self.terms:  # one output: no per-output bookkeeping
            slot, output_loss, weight = self.terms[0]
            if not (isinstance(y_true, torch.Tensor) and isinstance(y_pred, torch.Tensor)):
                y_true, y_pred = select(y_true, slot), select(y_pred, slot)
            loss = output_loss(y_true, y_pred, select(sample_weight, slot))
            return loss if weight == 1.0 else loss * weight
        if not self._weights_checked and isinstance(sample_weight, Mapping | list | tuple):
            check_tree(sample_weight, self.slots, [s for s, _, _ in self.terms], "sample_weight")
            self._weights_checked = True  # once: per-output weights keep their structure
        total = None
        batch_size = leaves(y_pred)[0].shape[0]
        for slot, output_loss, weight in self.terms:
            value = output_loss(
                select(y_true, slot), select(y_pred, slot), select(sample_weight, slot)
            )
            if self.trackers:
                self.trackers[f"{slot.name}_loss"].update(value, batch_size)  # unweighted
            value = value if weight == 1.0 else value * weight
            total = value if total is None else total + value
        return total

    def reset(self) -> None:
        for tracker in self.trackers.values():
            tracker.reset()

    def results(self) -> dict[str, torch.Tensor]:
        """Each output's epoch loss, as device tensors (empty with a single loss)."""
        return {name: tracker.compute() for name, tracker in self.trackers.items()}
