"""Mixed precision: `compile(precision=...)` (Lightning's names).

`"bf16-mixed"` and `"16-mixed"` run the forward pass and the loss under `torch.autocast` with
that dtype, keeping the weights, the optimizer state and the metrics in float32. `"16-mixed"`
also scales the loss with a `torch.amp.GradScaler`, since float16 gradients underflow. The
scaler checks the gradients for infinities before each update, which reads a value back to
the host every step unless the optimizer takes the scale itself (`_step_supports_amp_scaling`,
e.g. `torch.optim.Adam(fused=True)`); `"bf16-mixed"` needs no scaler and no read.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from kfit.registry import unknown_id_error

#: The precisions `compile` accepts, with the autocast dtype of each (None: no autocast).
PRECISIONS: dict[str, torch.dtype | None] = {
    "32": None,
    "32-true": None,
    "bf16-mixed": torch.bfloat16,
    "16-mixed": torch.float16,
}

_NO_AUTOCAST = contextlib.nullcontext()


class Precision:
    """The autocast context and the gradient scaler for one `compile`.

    Args:
        precision: one of `PRECISIONS` (`"32"` by default; also `32`, `16`, `"bf16"`).
        device: the device the model runs on.

    Raises:
        ValueError: for an unknown precision (naming the closest one) or bfloat16 on a GPU
            that lacks it.
    """

    def __init__(self, precision: str | int | None, device: torch.device):
        name = _normalise(precision)
        self.name = name
        self.dtype = PRECISIONS[name]
        cuda_bf16 = self.dtype is torch.bfloat16 and device.type == "cuda"
        if cuda_bf16 and not torch.cuda.is_bf16_supported():
            raise ValueError(
                "`precision='bf16-mixed'` needs a GPU with bfloat16 support; this one has "
                "none. Use precision='16-mixed'."
            )
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if self.dtype is torch.float16 else None

    def autocast(self) -> Any:
        """The context the forward pass and the loss run in."""
        if self.dtype is None:
            return _NO_AUTOCAST
        return torch.autocast(self.device_type, dtype=self.dtype)

    def __repr__(self) -> str:
        return f"Precision({self.name!r})"


def _normalise(precision: Any) -> str:
    aliases = {None: "32", 32: "32", 16: "16-mixed", "16": "16-mixed", "bf16": "bf16-mixed"}
    if isinstance(precision, bool):
        raise ValueError(f"`precision` must be one of {list(PRECISIONS)}; got {precision!r}.")
    if precision in aliases:
        return aliases[precision]
    if isinstance(precision, str) and precision in PRECISIONS:
        return precision
    if isinstance(precision, str):
        if precision in ("16-true", "bf16-true", "64", "64-true"):
            raise ValueError(
                f"`precision={precision!r}` is not supported: cast the model yourself "
                "(`model.to(torch.bfloat16)`; inputs follow the parameters' dtype), or use "
                "'bf16-mixed' / '16-mixed'."
            )
        raise unknown_id_error(
            "precision", precision, list(PRECISIONS), "kfit.training.precision.PRECISIONS"
        )
    raise ValueError(f"`precision` must be one of {list(PRECISIONS)}; got {precision!r}.")


#: The precision of a model that was never compiled (`predict` works without `compile`).
UNCOMPILED = Precision("32", torch.device("cpu"))
