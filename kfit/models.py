"""`kfit.models.load_model`: a trained model back in one call, from a `Model.save` file.

Keras files hold the architecture; kfit files hold none (no classes are pickled), so
`load_model` takes the code that builds the model: a `kfit.Model`, its class, or a function
returning the module. `kfit.Model`, `kfit.Sequential` are also here, as in `keras.models`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from torch import nn

from kfit.model import Model, Sequential

__all__ = ["Model", "Sequential", "load_model"]


def load_model(
    filepath: str | os.PathLike,
    model: Model | nn.Module | Callable[[], nn.Module] | None = None,
    compile: bool = True,
) -> Model:
    """Builds the model and restores what `Model.save` (or `save_weights`) wrote into it.

    With `compile=True` the saved training state comes back: weights, optimizer state,
    epochs completed and History, compiled with the saved settings when they were string
    ids (see `Model.load`). With `compile=False` only the weights are loaded.

    Args:
        filepath: a file written by `Model.save` (or by `save_weights` with `compile=False`).
        model: a `kfit.Model` (or any `nn.Module`, which is wrapped) to load into, or a class
            or function called with no arguments that builds one.
        compile: restore the training state (True) or the weights alone (False).

    Returns:
        The `kfit.Model`, ready for `predict`, `evaluate` or more `fit`.

    Raises:
        ValueError: if `model` is missing (kfit files hold no architecture), or the file does
            not fit the model.
        TypeError: if `model`, or what it builds, is not an `nn.Module`.

    Example:
        >>> model.save("model.pt")
        >>> restored = kfit.models.load_model("model.pt", model=build_model)
    """
    if model is None:
        raise ValueError(
            f"kfit files hold weights and training state, not the architecture, so "
            f"load_model({str(filepath)!r}) needs the code that builds the model: pass "
            "model=YourModelClass, model=build_model (a function returning the module), or "
            "a model instance, e.g. kfit.models.load_model(path, model=build_model)."
        )
    built = model if isinstance(model, nn.Module) else model() if callable(model) else model
    if not isinstance(built, nn.Module):
        raise TypeError(
            "`model` must be a kfit.Model or nn.Module, or a class or function building one; "
            f"got {type(built).__name__}."
        )
    if not isinstance(built, Model):
        built = Model(built)
    if compile:
        built.load(filepath)
    else:
        built.load_weights(filepath)
    return built
