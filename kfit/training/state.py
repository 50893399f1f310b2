"""`CompileState`: everything `Model.compile` decides, in one declared object.

`compile` checks every argument and builds a `CompileState` (`build_compile_state`) before it
changes anything; the model then holds it as `model.compile_state` (None before `compile`).
The training package reads it each step; nothing else needs the model's private attributes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from kfit import distributed
from kfit import optimizers as optimizers_module
from kfit.callbacks.torch_scheduler import TorchScheduler
from kfit.compiled import config as compile_config
from kfit.compiled.loss import CompiledLoss, LossTracker
from kfit.compiled.metrics import CompiledMetrics
from kfit.training import jit as jit_module
from kfit.training.jit import Jit
from kfit.training.precision import Precision


@dataclass(eq=False)
class CompileState:
    """What `compile` decided for a model (its arguments resolved and checked).

    Attributes:
        device: the device the model and its accumulators live on.
        precision: autocast dtype and gradient scaler (`kfit.training.precision`).
        channels_last: whether weights and 4-d inputs use the channels-last layout.
        loss: the compiled loss, or None (a custom step or `add_loss` terms supply it).
        metrics: the compiled metrics (built on the first batch).
        loss_tracker: the epoch `loss` accumulator.
        optimizer_source: what `optimizer=` resolved to: a `kfit.optimizers` spec, a torch
            optimizer class or instance; the torch optimizer is built from it.
        step_controls: the spec, when it does more per step than zero_grad/backward/step
            (clipping, decoupled decay, a schedule, accumulation); else None.
        scheduler_callback: the callback stepping `compile(lr_scheduler=...)`, or None.
        jit: the compiled step (`jit_compile`), or None.
        config: the record of the `compile` call that `save` writes (`kfit.compiled.config`).
    """

    device: torch.device
    precision: Precision
    channels_last: bool
    loss: CompiledLoss | None
    metrics: CompiledMetrics
    loss_tracker: LossTracker
    optimizer_source: Any
    step_controls: optimizers_module.Optimizer | None
    scheduler_callback: TorchScheduler | None
    jit: Jit | None
    config: dict[str, Any] = field(default_factory=dict)


def build_compile_state(
    optimizer: Any,
    loss: Any,
    loss_weights: Any,
    metrics: Any,
    weighted_metrics: Any,
    jit_compile: bool | str,
    device: str | torch.device | None,
    lr_scheduler: Any,
    precision: str | int,
    channels_last: bool,
) -> CompileState:
    """Checks `compile`'s arguments and resolves them; changes nothing (see `Model.compile`).

    Returns:
        The `CompileState` for those arguments.

    Raises:
        ValueError: for unknown ids (naming the closest valid one), an unavailable device or
            invalid options.
        TypeError: for arguments of the wrong kind.
    """
    if not isinstance(jit_compile, bool) and jit_compile != "reduce-overhead":
        raise TypeError(
            f"`jit_compile` must be True, False or 'reduce-overhead'; got {jit_compile!r}."
        )
    if not isinstance(channels_last, bool):
        raise TypeError(f"`channels_last` must be True or False; got {channels_last!r}.")
    # torchrun: an unnumbered `cuda` is this process's GPU, cuda:LOCAL_RANK.
    target_device = _with_index(distributed.setup(resolve_device(device)))
    mixed_precision = Precision(precision, target_device)
    optimizer_source = optimizers_module.get(optimizer)
    compiled_loss = CompiledLoss(loss, loss_weights) if loss is not None else None
    compiled_metrics = CompiledMetrics(metrics, weighted_metrics)
    scheduler_callback = _scheduler_callback(lr_scheduler)
    spec = optimizer_source if isinstance(optimizer_source, optimizers_module.Optimizer) else None
    return CompileState(
        device=target_device,
        precision=mixed_precision,
        channels_last=channels_last,
        loss=compiled_loss,
        metrics=compiled_metrics,
        loss_tracker=LossTracker().to(target_device),
        optimizer_source=optimizer_source,
        # Only a spec with clipping, decay, a schedule or accumulation changes the step.
        step_controls=spec if spec is not None and spec.has_step_controls else None,
        scheduler_callback=scheduler_callback,
        jit=_jit_for_compile(jit_compile, target_device) if jit_compile else None,
        config=compile_config.to_config(
            optimizer=optimizer,
            loss=loss,
            loss_weights=loss_weights,
            metrics=metrics,
            weighted_metrics=weighted_metrics,
            jit_compile=jit_compile,
            precision=mixed_precision.name,
            channels_last=channels_last,
        ),
    )


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device `compile` puts the model on: CUDA, else MPS, else CPU, unless named.

    Raises:
        ValueError: for a malformed device string or a device this machine does not have.
    """
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"`device` must name a torch device such as 'cpu' or 'cuda:0'; got {device!r}."
        ) from err
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"`device={device!r}` but CUDA is not available on this machine; "
                "use device='cpu' or leave it None to choose automatically."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"`device={device!r}` but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)."
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"`device={device!r}` but MPS is not available on this machine.")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        backend = getattr(torch, resolved.type, None)
        if backend is None or not backend.is_available():
            raise ValueError(f"`device={device!r}` is not available on this machine.")
    return resolved


def _with_index(device: torch.device) -> torch.device:
    """`cuda` as `cuda:<current>` (and `mps` as `mps:0`): the device its tensors report.

    With the index, the model's device and its data's device compare equal.
    """
    if device.index is None and device.type == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    if device.index is None and device.type == "mps":
        return torch.device("mps", 0)
    return device


def _scheduler_callback(lr_scheduler: Any) -> TorchScheduler | None:
    """The callback that steps `compile(lr_scheduler=...)`, or None."""
    if lr_scheduler is None:
        return None
    if isinstance(lr_scheduler, TorchScheduler):
        return lr_scheduler
    if isinstance(lr_scheduler, LRScheduler | ReduceLROnPlateau) or callable(lr_scheduler):
        return TorchScheduler(lr_scheduler)
    raise TypeError(
        "`lr_scheduler` must be a torch.optim.lr_scheduler scheduler, a function optimizer -> "
        f"scheduler, or a kfit.callbacks.TorchScheduler; got {type(lr_scheduler).__name__}."
    )


def _jit_for_compile(jit_compile: bool | str, device: torch.device) -> Jit | None:
    try:
        jit_module.check_available()
    except Exception as err:  # noqa: BLE001 - any reason torch.compile cannot run at all
        warnings.warn(f"torch.compile is unavailable ({err}); running eagerly.", stacklevel=4)
        return None
    mode = "reduce-overhead" if jit_compile == "reduce-overhead" else None
    if mode is not None and device.type != "cuda":
        warnings.warn(
            "jit_compile='reduce-overhead' captures CUDA graphs, which need a CUDA device; "
            f"compiling without them on {device.type}.",
            stacklevel=4,
        )
        mode = None
    return Jit(mode)
