"""`compile(jit_compile=True)`: the step's forward pass and loss through `torch.compile`.

One compiled function computes the predictions and the loss of a batch, so TorchDynamo
captures the model's forward pass and the compiled loss as one graph, and AOTAutograd
compiles its backward pass as well: `loss.backward()` runs generated kernels too. The
optimizer update (torch.optim's multi-tensor kernels) and the metric updates stay eager:
the accumulators count samples in host integers, which a graph would have to guard on and
recompile for at every step. For the same reason, a model with several logged output losses,
with `add_loss` terms or with its own `compute_loss` (which may update trackers) compiles its
forward pass alone and computes the loss eagerly.

The compiled functions are module-level and shared by every model (dynamo keys its cache on
the code and guards on the model's type and structure); they take the model as an argument
and keep no reference to it, so deleting a model frees it. Dynamo's recompile limit (8 per
function) is therefore shared by the models of a process too: past it, dynamo warns and the
functions run eagerly (the calls inside then take the eager path, see `Jit.active`).

Where compilation fails (no C++ compiler for the CPU backend, an unsupported Python, an
operation dynamo cannot trace), the step is rerun eagerly: when that succeeds kfit warns once
and runs the model eagerly from then on; when it fails too, the eager error is raised, since
it is the model's own.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch

from kfit.trainer import Trainer


def _forward_and_loss(model: Any, x: Any, y: Any, sample_weight: Any) -> tuple[Any, Any]:
    return model._forward_and_loss(x, y, sample_weight)


def _forward(model: Any, x: Any) -> Any:
    return model.call_forward(x)


_compiled: dict[Callable[..., Any], Callable[..., Any]] = {}


def _compiled_version(fn: Callable[..., Any]) -> Callable[..., Any]:
    if fn not in _compiled:
        _compiled[fn] = torch.compile(fn)
    return _compiled[fn]


def check_available() -> None:
    """Raises what `torch.compile` raises where it cannot run at all (e.g. its Python)."""
    _compiled_version(_forward)
    _compiled_version(_forward_and_loss)


class Jit:
    """Runs one model's forward pass (and loss) through the shared compiled functions."""

    def __init__(self) -> None:
        self.enabled = True  # False after a compilation failure: eager from then on
        self._paused = False

    def active(self) -> bool:
        """Whether a call now should go through `torch.compile` (not from inside one).

        A flag rather than `torch.compiler.is_compiling()`: dynamo may run the compiled
        function's frame untraced (past its recompile limit, or disabled), and the call inside
        must then still take the eager path instead of coming back here.
        """
        return self.enabled and not self._paused

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Runs eagerly inside (kfit's first-batch check: no graph compiled just for it)."""
        was_paused, self._paused = self._paused, True
        try:
            yield
        finally:
            self._paused = was_paused

    def forward_and_loss(self, model: Any, x: Any, y: Any, sample_weight: Any) -> Any:
        if not _loss_is_pure(model):  # output-loss trackers or add_loss terms: see above
            y_pred = self.forward(model, x)
            return y_pred, model.compute_loss(x, y, y_pred, sample_weight)
        return self._run(_forward_and_loss, model, x, y, sample_weight)

    def forward(self, model: Any, x: Any) -> Any:
        return self._run(_forward, model, x)

    def _run(self, fn: Callable[..., Any], model: Any, *args: Any) -> Any:
        try:
            with self.paused():  # the model's calls inside take the eager path
                return _compiled_version(fn)(model, *args)
        except Exception as compile_error:  # noqa: BLE001 - told apart by the eager rerun
            with self.paused():
                result = fn(model, *args)  # raises the model's own error, if it has one
            self.enabled = False
            warnings.warn(
                f"torch.compile failed ({type(compile_error).__name__}: "
                f"{str(compile_error).strip().splitlines()[0][:300]}); this model runs "
                "eagerly from now on.",
                stacklevel=4,
            )
            return result

    def __repr__(self) -> str:
        return f"Jit(enabled={self.enabled})"


def _loss_is_pure(model: Any) -> bool:
    """Whether computing the loss updates no tracker.

    That is: kfit's own `compute_loss` (a subclass's may update Keras-style trackers), a
    single logged loss and no `add_loss` terms.
    """
    compiled_loss = model._compiled_loss
    terms = model._loss_terms
    return (
        type(model).compute_loss is Trainer.compute_loss
        and (compiled_loss is None or not compiled_loss.trackers)
        and not terms.functions
        and not terms.trackers
    )
