"""`summary`: Keras's layer table for any `nn.Module` (layers, output shapes, parameters)."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter

HEADER = ("Layer (type)", "Output Shape", "Param #")
#: Where each column ends, as a fraction of the line (Keras's, for sequential-like models).
POSITIONS = (0.45, 0.80, 1.0)
DEFAULT_LINE_LENGTH = 88


def summary(
    model: nn.Module,
    input_size: Sequence[int] | Sequence[Sequence[int]] | None = None,
    input_data: Any = None,
    print_fn: Callable[[str], Any] | None = print,
    line_length: int = DEFAULT_LINE_LENGTH,
) -> str:
    """Prints and returns Keras's summary table: one row per layer, then parameter totals.

    A layer is a module without children (or one holding parameters of its own). Output
    shapes come from one forward pass in eval mode without gradients, on `input_data` or on
    zeros of `input_size`; the batch axis shows as `None`, as in Keras. Every module's
    training mode is restored afterwards and the hooks removed, even if `forward` raises.
    Without an input, shapes show as `unknown`. A parameter shared by several layers is
    counted once, on the first layer that holds it. Buffers (BatchNorm's running statistics)
    are not parameters and are not counted.

    Args:
        model: any `nn.Module`, a `kfit.Model` included.
        input_size: the input's shape, batch axis included (`(32, 100)`), or a list of shapes
            for a `forward` taking several tensors; zeros of the model's dtype and device.
        input_data: an input to run instead: a tensor, a tuple/list (passed positionally) or
            a dict (passed by keyword). Tensors are moved to the model's device.
        print_fn: called once with the whole text; None prints nothing.
        line_length: the width of the table in characters.

    Returns:
        The summary text.

    Raises:
        ValueError: both `input_size` and `input_data` are given, or `line_length` leaves a
            column narrower than 4 characters.

    Example:
        >>> model = kfit.Sequential(nn.Linear(100, 64), nn.ReLU(), nn.Linear(64, 10))
        >>> text = kfit.summary.summary(model, input_size=(32, 100), print_fn=None)
        >>> print(text.splitlines()[-4])
         Total params: 7,114 (27.79 KB)
    """
    if input_size is not None and input_data is not None:
        raise ValueError("Pass `input_size` or `input_data`, not both.")
    widths = _column_widths(line_length)
    layers = _layers(model)
    if input_size is None and input_data is None:
        shapes = dict.fromkeys((module for _, module in layers), "unknown")
    else:
        args, kwargs = _inputs(model, input_size, input_data)
        shapes = _output_shapes(model, [module for _, module in layers], args, kwargs)

    rows: list[tuple[str, str, str]] = []
    seen: set[int] = set()
    for name, module in layers:
        label = f"{name} ({type(module).__name__})" if name else type(module).__name__
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        if any(isinstance(p, UninitializedParameter) for p in own):
            count = "0 (unbuilt)"
        else:
            count = f"{sum(p.numel() for p in own):,}"
        rows.append((label, shapes[module], count))

    params = [p for p in model.parameters() if not isinstance(p, UninitializedParameter)]
    trainable = [p for p in params if p.requires_grad]
    frozen = [p for p in params if not p.requires_grad]
    lines = [f'Model: "{type(model).__name__}"', "_" * line_length]
    lines += _table_row(HEADER, widths)
    lines.append("=" * line_length)
    for index, row in enumerate(rows):
        lines += _table_row(row, widths)
        lines.append("=" * line_length if index == len(rows) - 1 else "_" * line_length)
    if not rows:
        lines.append("=" * line_length)
    lines += [
        f" Total params: {_count_and_size(params)}",
        f" Trainable params: {_count_and_size(trainable)}",
        f" Non-trainable params: {_count_and_size(frozen)}",
        "_" * line_length,
    ]
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text


def _column_widths(line_length: int) -> list[int]:
    widths, end = [], 0
    for position in POSITIONS:
        width = int(position * line_length) - end
        if width < 4:
            raise ValueError(
                f"`line_length` leaves a summary column narrower than 4 characters; "
                f"got {line_length}."
            )
        widths.append(width)
        end += width
    return widths


def _elide(text: str, width: int) -> str:
    """`text` cut to `width` characters in the middle (`bert.embed…embeddings`), never mid-line."""
    if len(text) <= width:
        return text
    tail = (width - 1) // 2
    return text[: width - 1 - tail] + "…" + text[len(text) - tail :]


def _table_row(cells: Sequence[str], widths: Sequence[int]) -> list[str]:
    """The row's lines: the last cell right-aligned, long cells wrapped within their column.

    Cells wrap at spaces only; a word longer than its column (a long layer name) is elided in
    the middle with `…` rather than cut in two.
    """
    wrapped = [
        [
            _elide(part, width - 1)
            for part in textwrap.wrap(
                cell, width - 1, break_long_words=False, break_on_hyphens=False
            )
        ]
        or [""]
        for cell, width in zip(cells, widths, strict=True)
    ]
    lines = []
    for parts in itertools.zip_longest(*wrapped, fillvalue=""):
        *left, last = parts
        text = "".join(
            " " + part.ljust(width - 1) for part, width in zip(left, widths, strict=False)
        )
        lines.append((text + last.rjust(widths[-1] - 1)).rstrip())
    return lines


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaf modules, and containers holding parameters of their own, in registration order."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if not any(True for _ in module.children())
        or any(True for _ in module.parameters(recurse=False))
    ]


def _placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """The device and floating dtype of the model's first initialised parameter or buffer."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if not isinstance(tensor, UninitializedParameter):
            dtype = tensor.dtype if tensor.is_floating_point() else torch.float32
            return tensor.device, dtype
    return torch.device("cpu"), torch.float32


def _inputs(
    model: nn.Module, input_size: Any, input_data: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    device, dtype = _placement(model)
    if input_size is not None:
        sizes = list(input_size)
        shapes = [sizes] if all(isinstance(d, int) for d in sizes) else sizes
        return tuple(torch.zeros(*shape, device=device, dtype=dtype) for shape in shapes), {}
    data = _to_device(input_data, device)
    if isinstance(data, Mapping):
        return (), dict(data)
    if isinstance(data, tuple | list):
        return tuple(data), {}
    return (data,), {}


def _to_device(data: Any, device: torch.device) -> Any:
    if isinstance(data, torch.Tensor):
        return data.to(device)
    if isinstance(data, Mapping):
        return {key: _to_device(value, device) for key, value in data.items()}
    if isinstance(data, tuple | list):
        return type(data)(_to_device(value, device) for value in data)
    return data


def _first_tensor(data: Any) -> torch.Tensor | None:
    if isinstance(data, torch.Tensor):
        return data
    if isinstance(data, Mapping):
        data = list(data.values())
    if isinstance(data, tuple | list):
        for value in data:
            found = _first_tensor(value)
            if found is not None:
                return found
    return None


def _output_shapes(
    model: nn.Module, modules: list[nn.Module], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[nn.Module, str]:
    """Runs `model` once (eval mode, no gradients) and formats each module's output shape."""
    first = _first_tensor((args, kwargs))
    batch_size = first.shape[0] if first is not None and first.dim() > 0 else None
    calls: dict[nn.Module, list[str]] = {module: [] for module in modules}

    def record(module: nn.Module, _args: Any, output: Any) -> None:
        calls[module].append(_format_output(output, batch_size))

    # Restore each module's own mode: a frozen BatchNorm kept in eval stays in eval.
    modes = {module: module.training for module in model.modules()}
    handles = [module.register_forward_hook(record) for module in modules]
    try:
        model.eval()
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training

    def shape(outputs: list[str]) -> str:
        if not outputs:
            return "not called"
        return outputs[0] if len(set(outputs)) == 1 else "multiple"

    return {module: shape(outputs) for module, outputs in calls.items()}


def _format_output(output: Any, batch_size: int | None) -> str:
    """`(None, 64)` for a tensor (batch axis as None); nested outputs keep their structure."""
    if isinstance(output, torch.Tensor):
        dims = [str(d) for d in output.shape]
        if dims and output.shape[0] == batch_size:
            dims[0] = "None"
        return f"({', '.join(dims)})"
    if isinstance(output, Mapping):
        items = ", ".join(f"{k}: {_format_output(v, batch_size)}" for k, v in output.items())
        return f"{{{items}}}"
    if isinstance(output, tuple | list):
        inner = ", ".join(_format_output(v, batch_size) for v in output)
        return f"[{inner}]" if isinstance(output, list) else f"({inner})"
    return "None" if output is None else "?"


def _count_and_size(params: Sequence[torch.Tensor]) -> str:
    """`4,170 (16.29 KB)`: the count, then the bytes in Keras's units."""
    count = sum(p.numel() for p in params)
    size = float(sum(p.numel() * p.element_size() for p in params))
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024:
            return f"{count:,} ({size:.2f} {unit})"
        size /= 1024
    return f"{count:,} ({size:.2f} PB)"
