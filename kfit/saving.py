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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

FORMAT = "kfit-training-state"
FORMAT_VERSION = 1

PathLike = str | os.PathLike


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Writes a file so that readers see either the old file or the complete new one.

    Args:
        path: the destination.
        write: writes the content to the binary file object it is given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where supported
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


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

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if the file holds pickled objects other than tensors and plain containers.
    """
    if not Path(path).exists():
        raise FileNotFoundError(f"No such file: {str(path)!r}.")
    if str(path).endswith(".safetensors"):
        return _safetensors().load_file(str(path), device="cpu")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError) as err:
        raise ValueError(
            f"Cannot read {str(path)!r}: the file is truncated or not a torch checkpoint ({err})."
        ) from err
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"Refusing to load {str(path)!r}: it holds pickled objects other than tensors and "
            "plain containers, and loading them could run code. kfit only loads weights and "
            f"state saved by kfit or torch.save(state_dict). ({err})"
        ) from err


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


def state_dict_differences(
    module: torch.nn.Module, state: Mapping[str, Any]
) -> tuple[list[str], list[str], list[str]]:
    """The missing keys, unexpected keys and `key: file shape vs model shape` mismatches."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{key}: file {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in set(expected) & set(state)
        if isinstance(state[key], torch.Tensor) and state[key].shape != expected[key].shape
    )
    return missing, unexpected, mismatched


def check_state_dict(
    module: torch.nn.Module, state: Mapping[str, Any], source: str, hint: str = ""
) -> None:
    """Raises a short `ValueError` counting the missing, unexpected and mismatched keys.

    Each list shows its first five entries.
    """
    if not isinstance(state, Mapping):
        raise ValueError(f"{source} does not hold a state dict (got {type(state).__name__}).")
    missing, unexpected, mismatched = state_dict_differences(module, state)
    if missing or unexpected or mismatched:
        parts = [
            f"{len(missing)} missing keys {_shown(missing)}" if missing else "",
            f"{len(unexpected)} unexpected keys {_shown(unexpected)}" if unexpected else "",
            f"{len(mismatched)} mismatched shapes {_shown(mismatched)}" if mismatched else "",
        ]
        raise ValueError(
            f"{source} was saved from another architecture: "
            + "; ".join(p for p in parts if p)
            + "."
            + hint
        )


# --------------------------------------------------------------------------- RNG state


def rng_state() -> dict[str, Any]:
    """The state of torch's, numpy's and Python's global random generators."""
    numpy_state = np.random.get_state()
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
