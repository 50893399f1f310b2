"""Weights and full training state on disk: atomic writes, and loading that never runs code.

Every file is written to a temporary file in the same folder, flushed and fsync'ed, then moved
over the target with `os.replace`: a process killed mid-save leaves the previous file whole.
Loading uses `torch.load(..., weights_only=True)` (or safetensors for `.safetensors` files),
so a file holding arbitrary pickled objects is refused instead of executed.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import torch

FORMAT = "kfit-training-state"
FORMAT_VERSION = 1

PathLike = str | os.PathLike


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], object]) -> None:
    """Writes a file so that readers see either the old file or the complete new one.

    Args:
        path: the destination.
        write: writes the content to the binary file object it is given.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as err:
        raise _write_error(err, path) from err
    file = _RecordingFile(os.fdopen(handle, "wb"))
    try:
        with file:
            # A stand-in for the file object: what it does not record, it delegates.
            write(cast(IO[bytes], file))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        # torch.save reports a failed write (a full disk) as its own RuntimeError: the
        # OSError that caused it, with the file's name, says what happened.
        cause = err if isinstance(err, OSError) else file.error
        if cause is not None and isinstance(err, Exception):
            raise _write_error(cause, path) from cause
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where supported
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class _RecordingFile:
    """A binary file that keeps the first `OSError` its writes raised."""

    def __init__(self, file: IO[bytes]):
        self._file = file
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        return self._recorded(self._file.write, data)

    def flush(self) -> None:
        self._recorded(self._file.flush)

    def fileno(self) -> int:
        return self._file.fileno()

    def __getattr__(self, name: str) -> Any:  # seek, tell, ...: as the file has them
        return getattr(self._file, name)

    def _recorded(self, operation: Callable[..., Any], *args: Any) -> Any:
        try:
            return operation(*args)
        except OSError as err:
            self.error = self.error or err
            raise

    def __enter__(self) -> _RecordingFile:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._recorded(self._file.close)


def _write_error(err: OSError, path: Path) -> OSError:
    """`err` restated with the destination's name (the previous file is left as it was)."""
    reason = err.strerror or str(err)
    return OSError(
        err.errno, f"Cannot write the file ({reason}); any previous file is unchanged", str(path)
    )


def save_tensors(obj: Any, path: PathLike) -> None:
    """Saves tensors and plain containers of them atomically (`.safetensors` or torch format)."""
    if str(path).endswith(".safetensors"):
        safetensors_torch = _safetensors()
        data = safetensors_torch.save({k: v.detach().contiguous() for k, v in obj.items()})
        atomic_write(path, lambda file: file.write(data))
        return
    atomic_write(path, lambda file: torch.save(obj, file))


def load_tensors(path: PathLike) -> Any:
    """Loads what `save_tensors` wrote, on the CPU, without running any code from the file.

    The whole file is read and its zip checksums verified before anything is returned, so a
    truncated or bit-flipped file is refused instead of loaded.

    Raises:
        FileNotFoundError: if `path` does not exist.
        OSError: for other I/O errors, naming the file.
        ValueError: if the file is corrupt (checksum, truncation) or holds pickled objects
            other than tensors and plain containers.
    """
    if not Path(path).exists():
        raise FileNotFoundError(f"No such file: {str(path)!r}.")
    if str(path).endswith(".safetensors"):
        try:
            return _safetensors().load_file(str(path), device="cpu")
        except OSError as err:
            raise OSError(err.errno, f"Cannot read {str(path)!r}: {err}") from err
        except Exception as err:  # safetensors raises its own error type for corrupt headers
            raise ValueError(
                f"Cannot read {str(path)!r}: not a valid safetensors file ({err})."
            ) from err
    _check_zip_integrity(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"Refusing to load {str(path)!r}: it holds pickled objects other than tensors and "
            "plain containers, and loading them could run code. kfit only loads weights and "
            f"state saved by kfit or torch.save(state_dict). ({err})"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(
            f"Cannot read {str(path)!r}: the file is truncated or not a torch checkpoint ({err})."
        ) from err


def _check_zip_integrity(path: PathLike) -> None:
    """Reads every member of a torch zip file, which verifies its CRC-32 checksum."""
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as err:
        raise OSError(err.errno, f"Cannot read {str(path)!r}: {err.strerror}") from err
    if not is_zip:
        return  # the legacy (non-zip) torch format carries no checksums; torch.load judges it
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as err:
        raise ValueError(
            f"Cannot read {str(path)!r}: the file is truncated or corrupt ({err})."
        ) from err
    except OSError as err:
        raise OSError(err.errno, f"Cannot read {str(path)!r}: {err.strerror or err}") from err
    if bad is not None:
        raise ValueError(
            f"Cannot read {str(path)!r}: member {bad!r} fails its checksum; the file is corrupt."
        )


def _safetensors() -> Any:
    try:
        import safetensors.torch as safetensors_torch
    except ImportError as err:
        raise ImportError(
            "`.safetensors` files need the safetensors package: pip install safetensors"
        ) from err
    return safetensors_torch


def align_prefix(state: Mapping[str, Any], expected: Mapping[str, Any]) -> Mapping[str, Any]:
    """`state` with its keys given or stripped of the `module.` prefix, to match `expected`.

    A `kfit.Model` wrapping a module holds it as `module`, so its keys are the module's keys
    prefixed `module.`; a plain `torch.save(module.state_dict())` file lacks the prefix (and a
    `DataParallel`/DDP-saved one has it). Keys that already match are left alone.
    """
    if not isinstance(state, Mapping) or not state or set(state) & set(expected):
        return state
    prefix = "module."
    if all(key.startswith(prefix) for key in expected) and not any(
        key.startswith(prefix) for key in state
    ):
        return {prefix + key: value for key, value in state.items()}
    if all(key.startswith(prefix) for key in state):
        return {key[len(prefix) :]: value for key, value in state.items()}
    return state


def _shown(items: list[str], limit: int = 5) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return f"{items[:limit]}{more}"


@dataclass
class StateDifferences:
    """How a weights mapping differs from a module's `state_dict`.

    Attributes:
        missing: the module's keys the mapping lacks.
        unexpected: the mapping's keys the module lacks.
        not_tensors: `key (type)` for common keys whose value is not a tensor.
        mismatched: `key: file shape vs model shape` for tensors of another shape.
        wrong_dtype: `key: file dtype vs model dtype` for tensors of another dtype kind.
    """

    missing: list[str]
    unexpected: list[str]
    not_tensors: list[str]
    mismatched: list[str]
    wrong_dtype: list[str]

    def unusable(self) -> set[str]:
        """The common keys whose values cannot be loaded (not tensors, shape or dtype)."""
        described = self.not_tensors + self.mismatched + self.wrong_dtype
        return {item.split(":")[0].split(" (")[0] for item in described}

    def __bool__(self) -> bool:
        return any(
            (self.missing, self.unexpected, self.not_tensors, self.mismatched, self.wrong_dtype)
        )

    def summary(self) -> str:
        """Each kind of difference counted, with its first five entries."""
        parts = [
            (self.missing, "missing keys"),
            (self.unexpected, "unexpected keys"),
            (self.not_tensors, "entries that are not tensors"),
            (self.mismatched, "mismatched shapes"),
            (self.wrong_dtype, "mismatched dtypes"),
        ]
        return "; ".join(f"{len(items)} {name} {_shown(items)}" for items, name in parts if items)


def state_dict_differences(module: torch.nn.Module, state: Mapping[str, Any]) -> StateDifferences:
    """Compares a weights mapping with `module.state_dict()` without changing anything.

    Every entry must be a tensor with the shape of the module's entry and a compatible dtype
    (floating point for floating point, integer for integer, bool for bool).
    """
    expected = module.state_dict()
    common = sorted(set(expected) & set(state))
    tensors = [key for key in common if isinstance(state[key], torch.Tensor)]
    return StateDifferences(
        missing=sorted(set(expected) - set(state)),
        unexpected=sorted(str(k) for k in set(state) - set(expected)),
        not_tensors=[
            f"{key} ({type(state[key]).__name__})"
            for key in common
            if not isinstance(state[key], torch.Tensor)
        ],
        mismatched=[
            f"{key}: file {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
            for key in tensors
            if state[key].shape != expected[key].shape
        ],
        wrong_dtype=[
            f"{key}: file {state[key].dtype} vs model {expected[key].dtype}"
            for key in tensors
            if _dtype_kind(state[key].dtype) != _dtype_kind(expected[key].dtype)
        ],
    )


def check_state_dict(
    module: torch.nn.Module, state: Mapping[str, Any], source: str, hint: str = ""
) -> None:
    """Validates a weights mapping against `module` without changing anything.

    Args:
        module: the module the weights are for.
        state: the mapping read from `source`.
        source: the file, as the message names it.
        hint: a sentence appended to the message.

    Raises:
        ValueError: counting the missing, unexpected, non-tensor and mismatched entries, with
            the first five of each, if there are any.
    """
    if not isinstance(state, Mapping):
        raise ValueError(f"{source} does not hold a state dict (got {type(state).__name__}).")
    differences = state_dict_differences(module, state)
    if differences:
        raise ValueError(
            f"{source} does not fit this model (nothing was loaded): "
            + differences.summary()
            + "."
            + hint
        )


def _dtype_kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    if dtype.is_complex:
        return "complex"
    return "float" if dtype.is_floating_point else "int"


def check_optimizer_state(optimizer: torch.optim.Optimizer, state: Any, source: str) -> None:
    """Validates a saved optimizer `state_dict` against `optimizer` without changing it.

    The saved state must come from the same kind of optimizer (the same hyperparameter names),
    with the same parameter groups, and its per-parameter tensors must have the parameters'
    shapes.

    Raises:
        ValueError: naming `source` and the first problem found.
    """

    def fail(problem: str) -> ValueError:
        return ValueError(
            f"{source}: the optimizer state does not fit this model's optimizer "
            f"({type(optimizer).__name__}); {problem}. Nothing was loaded."
        )

    if (
        not isinstance(state, Mapping)
        or not isinstance(state.get("param_groups"), list)
        or (not isinstance(state.get("state"), Mapping))
    ):
        raise fail("it is not an optimizer state_dict with 'state' and 'param_groups'")
    current = optimizer.param_groups
    saved = state["param_groups"]
    if len(saved) != len(current):
        raise fail(f"the file has {len(saved)} parameter groups, the optimizer {len(current)}")
    params: dict[Any, torch.Tensor] = {}
    for index, (group, mine) in enumerate(zip(saved, current, strict=True)):
        if not isinstance(group, Mapping) or not isinstance(group.get("params"), list):
            raise fail(f"parameter group {index} is malformed")
        if len(group["params"]) != len(mine["params"]):
            raise fail(
                f"parameter group {index} holds {len(group['params'])} parameters in the file, "
                f"{len(mine['params'])} in the optimizer"
            )
        theirs_keys = set(group) - {"params"}
        mine_keys = set(mine) - {"params"}
        if not theirs_keys >= _essential_keys(mine_keys) or not mine_keys >= _essential_keys(
            theirs_keys
        ):
            raise fail(
                f"it was saved from another kind of optimizer (settings "
                f"{sorted(theirs_keys ^ mine_keys)} differ)"
            )
        for key in ("lr",) if "lr" in group else ():
            value = group[key]
            value = float(value) if isinstance(value, torch.Tensor) else value
            if not isinstance(value, int | float) or value != value or value < 0:
                raise fail(f"group {index} has learning rate {group[key]!r}")
        params.update(zip(group["params"], mine["params"], strict=True))
    for pid, entry in state["state"].items():
        if pid not in params:
            raise fail(f"it holds state for parameter {pid!r}, which no group lists")
        if not isinstance(entry, Mapping):
            raise fail(f"the state of parameter {pid!r} is not a mapping")
        shape = params[pid].shape
        for name, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != shape:
                raise fail(
                    f"the state {name!r} of parameter {pid!r} has shape {tuple(value.shape)}, "
                    f"the parameter {tuple(shape)}"
                )


def _essential_keys(keys: set[str]) -> set[str]:
    # Flags torch adds in newer versions (foreach, fused, ...) may be absent from older files.
    optional = {
        "foreach",
        "fused",
        "capturable",
        "differentiable",
        "maximize",
        "decoupled_weight_decay",
        "initial_lr",
        "amsgrad",
        "nesterov",
        "weight_decay",
        "iterations",  # kfit's update count (optimizer.iterations), set on the first step
        "lr",
    }
    return keys - optional


def check_rng_state(state: Any, source: str) -> None:
    """Validates what `rng_state` returned, as read from a file.

    Raises:
        ValueError: naming `source` and the malformed part.
    """

    def fail(part: str) -> ValueError:
        return ValueError(f"{source}: the random-generator state is malformed ({part}).")

    if not isinstance(state, Mapping):
        raise fail("not a mapping")
    torch_state = state.get("torch")
    if not isinstance(torch_state, torch.Tensor) or torch_state.dtype != torch.uint8:
        raise fail("'torch' is not a uint8 tensor")
    numpy_state = state.get("numpy")
    if not isinstance(numpy_state, Mapping):
        raise fail("'numpy' is missing")
    keys = numpy_state.get("keys")
    if not isinstance(keys, torch.Tensor) or keys.shape != (624,):
        raise fail("'numpy.keys' is not 624 integers")
    if not all(isinstance(numpy_state.get(k), int) for k in ("pos", "has_gauss")) or not (
        isinstance(numpy_state.get("cached_gaussian"), float | int)
    ):
        raise fail("'numpy' lacks pos, has_gauss or cached_gaussian")
    python_state = state.get("python")
    if not isinstance(python_state, list) or len(python_state) != 3:
        raise fail("'python' is not Python's random state")
    try:  # the only reliable test of the torch and python parts is to try them on a scratch copy
        generator = torch.Generator()
        generator.set_state(torch_state)
        random.Random().setstate(_to_tuples(python_state))
    except (RuntimeError, ValueError, TypeError) as err:
        raise fail(str(err)) from err


def check_training_state(module: torch.nn.Module, state: Any, source: str) -> None:
    """Validates a full training state (what `Model.save` wrote) before anything is applied.

    Checks the format and version, that every section is present, the weights (see
    `check_state_dict`), the counters, History and random-generator states. The optimizer
    section is checked by the caller against the optimizer it will load into
    (`check_optimizer_state`).

    Raises:
        ValueError: naming `source` and the problem.
    """
    if not isinstance(state, Mapping) or state.get("format") != FORMAT:
        raise ValueError(
            f"{source} is not a kfit training state (made by Model.save); for weights alone "
            "use load_weights."
        )
    version = state.get("version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"{source} has training-state format version {version!r}; this kfit reads versions "
            f"1 to {FORMAT_VERSION}. Upgrade kfit to load it."
        )
    missing = [key for key in _SECTIONS if key not in state]
    if missing:
        raise ValueError(f"{source} is incomplete: it lacks the sections {missing}.")
    check_state_dict(module, state["weights"], source)
    if not isinstance(state["compile"], Mapping):
        raise ValueError(f"{source}: the 'compile' section is not a mapping.")
    epochs = state["epochs_completed"]
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
        raise ValueError(f"{source}: 'epochs_completed' must be an integer >= 0; got {epochs!r}.")
    history = state["history"]
    if history is not None:
        if not isinstance(history, Mapping) or not all(
            key in history for key in ("history", "epoch", "params")
        ):
            raise ValueError(f"{source}: the 'history' section is malformed.")
        if not isinstance(history["history"], Mapping) or not isinstance(history["epoch"], list):
            raise ValueError(f"{source}: the 'history' section is malformed.")
    if state["optimizer"] is not None and not isinstance(state["optimizer"], Mapping):
        raise ValueError(f"{source}: the 'optimizer' section is not an optimizer state_dict.")
    check_rng_state(state["rng"], source)


_SECTIONS = ("weights", "optimizer", "compile", "epochs_completed", "history", "rng")


# --------------------------------------------------------------------------- RNG state


def rng_state() -> dict[str, Any]:
    """The state of torch's, numpy's and Python's global random generators."""
    # legacy=True is numpy's default (its stub types the bare call as legacy=False): the
    # global generator is always MT19937, whose legacy state is this tuple.
    numpy_state = np.random.get_state(legacy=True)
    if not isinstance(numpy_state, tuple):
        raise TypeError(f"numpy's global generator is not MT19937: {numpy_state['bit_generator']}")
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restores what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple | list) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value
