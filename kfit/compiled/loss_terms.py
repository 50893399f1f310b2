"""Extra loss terms added with `Model.add_loss`: penalties, auxiliary losses, KL terms.

A term is either a function called at every training and evaluation step (an L2 penalty on
the weights) or a tensor handed to `add_loss` inside `forward` for that step only (a VAE's KL
term, an auxiliary head's loss). The step's total loss is the compiled loss plus every term,
summed (Keras). Each term is also logged under its own name, as the epoch mean of its batch
values weighted by batch size (like `loss`), in training and validation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch

from kfit.compiled.loss import LossTracker

# What a lambda is called when it is given no name.
_DEFAULT_NAME = "added_loss"

# The terms of the models whose forward is running, innermost last (per thread).
_running = threading.local()


def running_stack() -> list[LossTerms]:
    """This thread's stack of running models' terms: a forward pushes, and pops when done.

    Pushed and popped directly (not through a context manager): it runs at every step.
    """
    stack = _running.__dict__.get("stack")
    if stack is None:
        stack = _running.__dict__["stack"] = []
    return stack


def add_loss(loss: torch.Tensor, name: str | None = None) -> None:
    """Adds a loss term from any submodule's `forward` to the running model's loss.

    Keras's `layer.add_loss` for torch modules: a layer deep inside a `kfit.Model` calls
    `kfit.add_loss(value, name="kl")` in its `forward`, and the value is summed (to a scalar)
    into that step's loss and logged under `name` (and `val_{name}`), exactly like a tensor
    given to `Model.add_loss`. Tensors added under one name in a step are summed.

    Args:
        loss: a tensor computed in `forward`.
        name: the log key (default `'added_loss'`).

    Raises:
        TypeError: if `loss` is not a tensor.
        RuntimeError: if no `kfit.Model` forward is running (the term would be lost).

    Example:
        >>> class Sampling(nn.Module):
        ...     def forward(self, mean, log_var):
        ...         kl = -0.5 * (1 + log_var - mean.pow(2) - log_var.exp()).sum(1).mean()
        ...         kfit.add_loss(kl, name="kl")
        ...         return mean + (0.5 * log_var).exp() * torch.randn_like(mean)
    """
    if not isinstance(loss, torch.Tensor):
        raise TypeError(
            f"`kfit.add_loss` takes a tensor computed in forward; got {type(loss).__name__}. "
            "For a function called at every step, use model.add_loss(fn)."
        )
    stack = _running.__dict__.get("stack")
    if not stack:
        raise RuntimeError(
            "`kfit.add_loss` was called outside the forward pass of a kfit.Model; call it "
            "from a module's forward while the kfit.Model that holds it runs."
        )
    stack[-1].add(loss, name, set())


def term_name(loss: Any, name: str | None) -> str:
    """The log name of a term: `name`, else the function's name, else `'added_loss'`."""
    if name is not None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"`name` must be a non-empty string; got {name!r}.")
        return name
    function_name = getattr(loss, "__name__", None)
    if callable(loss) and function_name and function_name != "<lambda>":
        return function_name
    return _DEFAULT_NAME


class LossTerms:
    """The terms registered with `add_loss`, and their epoch trackers."""

    def __init__(self) -> None:
        self.functions: dict[str, Callable[[], torch.Tensor]] = {}
        self.pending: list[tuple[str, torch.Tensor]] = []  # added during this forward pass
        self.trackers: dict[str, LossTracker] = {}

    def add(self, loss: Any, name: str | None, reserved: set[str]) -> None:
        """Registers a function, or holds a tensor for the current step.

        Raises:
            TypeError: for something that is neither a tensor nor a callable.
            ValueError: for a function whose name is taken.
        """
        key = term_name(loss, name)
        if isinstance(loss, torch.Tensor):
            self.pending.append((key, loss))
            return
        if not callable(loss):
            raise TypeError(
                "`add_loss` takes a function returning a tensor (called at every step) or a "
                f"tensor (inside forward); got {type(loss).__name__}."
            )
        if key in self.functions or key in reserved:
            raise ValueError(
                f"A loss term or log key named {key!r} already exists; pass another `name`."
            )
        self.functions[key] = loss

    def __bool__(self) -> bool:
        return bool(self.functions or self.pending)

    def values(self, reserved: Callable[[], set[str]]) -> dict[str, torch.Tensor]:
        """This step's terms, by name (tensors added under one name are summed).

        Args:
            reserved: returns the log keys a new term's name must not take.
        """
        values: dict[str, torch.Tensor] = {}
        for key, function in self.functions.items():
            value = function()
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"The loss term {key!r} must return a tensor; got {type(value).__name__}."
                )
            values[key] = value.sum()
        for key, tensor in self.pending:
            values[key] = values[key] + tensor.sum() if key in values else tensor.sum()
        self.pending.clear()
        for key in values:
            if key not in self.trackers:
                if key in reserved():
                    raise ValueError(
                        f"The loss term {key!r} has the name of a log key; pass another `name` "
                        "to add_loss."
                    )
                self.trackers[key] = LossTracker(key).to(values[key].device)
        return values

    def track(self, values: dict[str, torch.Tensor], batch_size: int) -> None:
        for key, value in values.items():
            self.trackers[key].update(value, batch_size)

    def reset(self) -> None:
        for tracker in self.trackers.values():
            tracker.reset()

    def results(self) -> dict[str, torch.Tensor]:
        """The epoch value of every term seen so far, as device tensors."""
        return {key: tracker.compute() for key, tracker in self.trackers.items()}
