"""Weights and training state on disk: `Persistence`, mixed into `kfit.Model`.

`get_weights` / `set_weights` (Keras's numpy lists), `save_weights` / `load_weights` (a plain
`state_dict` file), and `save` / `load`: the whole training state (weights, optimizer, compile
settings, epochs, History, random generators, callbacks' memory), validated as a whole before
anything changes. The file format and its checks are in `kfit.saving`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from kfit import distributed, saving
from kfit.callbacks import state as callback_state
from kfit.callbacks.callback import Callback
from kfit.callbacks.history import History
from kfit.compiled import config as compile_config

if TYPE_CHECKING:
    from kfit.training.state import CompileState

    # For the type checker: this mixin is only ever mixed into `kfit.Model`, an nn.Module.
    _ModuleBase = nn.Module
else:
    _ModuleBase = object


class Persistence(_ModuleBase):
    """`get_weights`, `set_weights`, `save_weights`, `load_weights`, `save`, `load`."""

    if TYPE_CHECKING:
        compile_state: CompileState | None
        optimizer: torch.optim.Optimizer | None
        history: Any
        epochs_completed: int

        def compile(self, *args: Any, **kwargs: Any) -> None: ...

        def _optimizer_for_step(self) -> torch.optim.Optimizer: ...

    # ------------------------------------------------------------------ weights

    def get_weights(self) -> list[np.ndarray]:
        """The model's weights as numpy arrays: copies, in `state_dict()` order.

        The order is the order of `state_dict()`: every parameter and persistent buffer
        (batch-norm statistics included), module by module as they were registered. The
        arrays are copies, so keeping them and training on ("restore the best weights")
        works as in Keras.

        Returns:
            A list of numpy arrays, one per `state_dict()` entry.
        """
        return [tensor.detach().cpu().numpy().copy() for tensor in self.state_dict().values()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Sets the weights from a list like the one `get_weights` returns.

        Args:
            weights: numpy arrays (or tensors), one per `state_dict()` entry, in that order.

        Raises:
            ValueError: if the number of arrays differs from the number of weights, or an
                array's shape differs from its weight's (naming the index and the key).
        """
        state = self.state_dict(keep_vars=True)
        if len(weights) != len(state):
            raise ValueError(
                f"`weights` must hold {len(state)} arrays (one per state_dict entry); got "
                f"{len(weights)}."
            )
        sources = []
        for index, ((key, target), value) in enumerate(zip(state.items(), weights, strict=True)):
            source = (
                value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
            )
            if tuple(source.shape) != tuple(target.shape):
                raise ValueError(
                    f"`weights[{index}]` ({key!r}) must have shape {tuple(target.shape)}; "
                    f"got {tuple(source.shape)}."
                )
            sources.append(source)
        with torch.no_grad():  # every shape checked first: nothing changes on an error
            for target, source in zip(state.values(), sources, strict=True):
                target.copy_(source.to(device=target.device, dtype=target.dtype))

    # ------------------------------------------------------------------ saving

    def save_weights(self, filepath: str | os.PathLike) -> None:
        """Saves the weights (atomically; `.safetensors` or torch format).

        For a `kfit.Model` wrapping a module the file holds that module's own `state_dict`
        (no `module.` prefix), so plain PyTorch loads it:
        `module.load_state_dict(torch.load(filepath))`. A subclass that defines its layers
        itself saves its own `state_dict`.

        Args:
            filepath: where to write; a `.safetensors` suffix selects that format.
        """
        if distributed.is_rank_zero():  # torchrun: one process writes (see `load_weights`)
            state = self.state_dict()
            if state and all(key.startswith("module.") for key in state):
                state = cast(nn.Module, self._modules["module"]).state_dict()
            saving.save_tensors(state, filepath)

    def load_weights(self, filepath: str | os.PathLike, skip_mismatch: bool = False) -> None:
        """Loads weights from `save_weights`, `save`, or a plain `torch.save(state_dict)` file.

        A plain file of the wrapped module's `state_dict` loads with or without the `module.`
        prefix (a file from `DataParallel`/DDP has it).

        Args:
            filepath: the file.
            skip_mismatch: load the weights whose names and shapes match and warn about the
                rest (Keras's option), instead of raising.

        Raises:
            ValueError: if the file was made for another architecture (counting the missing,
                unexpected and mismatched keys, with the first few of each) or holds pickled
                objects other than tensors.
        """
        distributed.barrier()  # torchrun: until rank 0 has written what it was saving
        state = saving.load_tensors(filepath)
        if isinstance(state, dict) and state.get("format") == saving.FORMAT:
            if "weights" not in state:
                raise ValueError(f"{str(filepath)!r} is a kfit training state without weights.")
            state = state["weights"]
        expected = self.state_dict()
        state = saving.align_prefix(state, expected)
        source = f"{str(filepath)!r}"
        if skip_mismatch and isinstance(state, Mapping):
            differences = saving.state_dict_differences(self, state)
            skipped = differences.unusable()
            state = {k: v for k, v in state.items() if k in expected and k not in skipped}
            if differences:
                warnings.warn(
                    f"load_weights(skip_mismatch=True) skipped, from {source}: "
                    f"{len(skipped)} weights of other shapes or dtypes {sorted(skipped)[:5]}, "
                    f"{len(differences.unexpected)} unknown keys {differences.unexpected[:5]}; "
                    f"{len(differences.missing)} of the model's weights were not in the file "
                    f"{differences.missing[:5]}.",
                    stacklevel=2,
                )
            self.load_state_dict(state, strict=False)
            return
        saving.check_state_dict(
            self, state, source, " Pass skip_mismatch=True to load the weights that match."
        )
        self.load_state_dict(state)

    def save(
        self, filepath: str | os.PathLike, callbacks: Sequence[Callback] | None = None
    ) -> None:
        """Saves the full training state, for `load` to resume from.

        The file holds the weights, the optimizer state, the compile settings (ids, and the
        configs of kfit loss, optimizer, schedule and metric objects; see
        `kfit.compiled.config`), the epochs completed, History and the random-generator states.
        No classes are pickled: `load` restores the state into a model built from code.
        Settings holding objects without a config (a torch optimizer, a lambda) are left out,
        with a warning.

        Under torchrun only rank 0 writes; `load` in any process waits for it.

        Args:
            filepath: where to write (atomically).
            callbacks: callbacks whose `state_dict()` to save too (ModelCheckpoint's best
                value, EarlyStopping's wait, ...), for `load(..., callbacks=...)`. Not in Keras.
        """
        if not distributed.is_rank_zero():
            return
        compiled = self.compile_state
        saved_config = compiled.config if compiled is not None else {}
        compile_config.warn_unrecorded(saved_config, f"Saving to {str(filepath)!r}")
        scaler = compiled.precision.scaler if compiled is not None else None
        history = self.history
        state = {
            "format": saving.FORMAT,
            "version": saving.FORMAT_VERSION,
            "weights": self.state_dict(),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "compile": saved_config,
            "epochs_completed": self.epochs_completed,
            "history": None if history is None else history.saved_state(),
            "rng": saving.rng_state(),
            "grad_scaler": None if scaler is None else scaler.state_dict(),
        }
        if callbacks:
            state["callbacks"] = callback_state.callback_states(callbacks)
        saving.save_tensors(state, filepath)

    def load(
        self, filepath: str | os.PathLike, callbacks: Sequence[Callback] | None = None
    ) -> None:
        """Restores what `save` wrote into this model, built from the same code.

        An uncompiled model is compiled with the saved settings when the loss and optimizer
        were recorded (ids, or kfit objects with a config), and gets the optimizer state:
        a learning-rate schedule continues from the saved step.
        Continue training with `fit(..., initial_epoch=model.epochs_completed)`.

        Args:
            filepath: the file `save` wrote.
            callbacks: callbacks to give their saved `state_dict()` (see `save`); one with
                memory but no saved state starts afresh, with a warning. Not in Keras.

        Raises:
            ValueError: for a file that is not a kfit training state, was made for another
                architecture, or holds pickled objects other than tensors.
        """
        distributed.barrier()  # torchrun: until rank 0 has written what it was saving
        source = f"{str(filepath)!r}"
        state = saving.load_tensors(filepath)
        # Everything is read and checked before anything changes: a failure leaves the
        # weights, optimizer, counters and random generators exactly as they were.
        saving.check_training_state(self, state, source)
        config = state["compile"]
        saved_optimizer = state["optimizer"]
        before_compile = None
        if self.compile_state is None or self.compile_state.loss is None:
            if compile_config.can_compile(config):
                settings = compile_config.from_config(config)  # may raise: nothing changed yet
                before_compile = dict(self.__dict__)
                self.compile(**settings)
            elif saved_optimizer is not None:
                warnings.warn(
                    f"{source}: the optimizer state was not restored because this model is not "
                    "compiled and the saved compile settings lack the loss or the optimizer "
                    "(an object without a config, such as a torch optimizer or loss module). "
                    "Compile the model as it was compiled, then load again to restore it.",
                    stacklevel=2,
                )
                saved_optimizer = None
        optimizer = None
        compiled = self.compile_state
        if saved_optimizer is not None and compiled is not None and compiled.loss is not None:
            optimizer = self._optimizer_for_step()
        try:
            if optimizer is not None:
                saving.check_optimizer_state(optimizer, saved_optimizer, source)
            if callbacks:  # all or nothing; the last check before anything is applied
                callback_state.load_callback_states(callbacks, state.get("callbacks"), source)
        except ValueError:
            if before_compile is not None:  # undo the compile this call made
                self.__dict__.clear()
                self.__dict__.update(before_compile)
            raise
        self.load_state_dict(state["weights"])
        if optimizer is not None:
            optimizer.load_state_dict(saved_optimizer)
        self.epochs_completed = int(state["epochs_completed"])
        if state["history"] is not None:
            history = History.from_saved_state(state["history"])
            history.set_model(self)
            self.history = history
        scaler = compiled.precision.scaler if compiled is not None else None
        if state.get("grad_scaler") and scaler is not None:
            scaler.load_state_dict(state["grad_scaler"])
        saving.set_rng_state(state["rng"])
