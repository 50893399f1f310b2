"""Many processes and machines: the same script under `torchrun`, with DistributedDataParallel.

`torchrun --nproc_per_node=N train.py` starts N copies of a script; each finds `RANK`,
`WORLD_SIZE` and `LOCAL_RANK` in its environment. kfit notices them and, with no change to the
script:

- joins the process group (once, at `compile` or the first `fit`/`evaluate`/`predict`) unless
  the script already did: NCCL for CUDA tensors (with gloo beside it for CPU tensors) when
  CUDA is available, gloo otherwise;
- puts each process on its own GPU, `cuda:LOCAL_RANK`, when `compile` chooses CUDA;
- trains through a `DistributedDataParallel` wrapper of the model, so the gradients are
  averaged across processes at every step (evaluation and prediction call the model itself);
- gives each process its own part of in-memory data (see `shard_for_training` and
  `shard_for_evaluation`) and reassembles `predict`'s outputs in the input order;
- reads the epoch's loss and metrics over every process (torchmetrics' synchronisation), so
  History and the callbacks' `logs` are the same everywhere, while batch-level logs stay this
  process's own (reading them must not wait for the others);
- prints the log and writes files on rank 0 only.

Without torchrun's environment (and without a process group the script made itself) every
function here leaves things as they are.
"""

from __future__ import annotations

import atexit
import gc
import inspect
import os
import weakref
from collections.abc import Callable
from typing import Any, cast, overload

import torch
import torch.distributed as dist
import torchmetrics
from torch import nn
from torch.nn.parameter import UninitializedParameter

from kfit.data.sharded import Processes

# Which samples each process takes: kfit.data.sharded's, still reachable here.
from kfit.data.sharded import evaluation_counts as evaluation_counts
from kfit.data.sharded import training_indices as training_indices
from kfit.data.sharded import training_positions as training_positions
from kfit.data.source import DataSource
from kfit.data.trees import map_tree
from kfit.internals import sync_disabled

__all__ = [
    "barrier",
    "is_distributed",
    "is_rank_zero",
    "local_rank",
    "rank",
    "set_ddp_options",
    "world_size",
]

_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
_ddp_options: dict[str, Any] = {}
_started_group = False  # whether kfit (not the script) made the process group
_ddp_forwards: weakref.WeakSet[_DDPForward] = weakref.WeakSet()  # live DDP wrappers


# --------------------------------------------------------------------------- where we are


def launched() -> bool:
    """Whether this process was started by `torchrun` (its variables are in the environment)."""
    return all(name in os.environ for name in _TORCHRUN_VARIABLES)


def is_distributed() -> bool:
    """Whether a process group of more than one process is running (kfit then shards data)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank among all processes (0 when alone)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0))


def local_rank() -> int:
    """This process's rank on its machine, `LOCAL_RANK` (0 when alone): its GPU's index."""
    return int(os.environ.get("LOCAL_RANK", 0))


def world_size() -> int:
    """How many processes take part (1 when alone)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1))


def is_rank_zero() -> bool:
    """Whether this process is rank 0, the one that prints and writes files."""
    return rank() == 0


def barrier() -> None:
    """Waits until every process gets here; does nothing when alone.

    Every process must call it, as with any collective operation: calling it inside
    `if rank() == 0:` waits forever.
    """
    if is_distributed():
        dist.barrier()


def set_ddp_options(**options: Any) -> None:
    """Sets keyword arguments for the `DistributedDataParallel` wrapper kfit makes in `fit`.

    Call it before `fit`, in every process. For instance `find_unused_parameters=True` for a
    model whose forward pass leaves some parameters out, or `static_graph=True`.

    Args:
        **options: arguments of `torch.nn.parallel.DistributedDataParallel` (not `module`,
            `device_ids` or `output_device`, which kfit sets from the model's device).

    Raises:
        ValueError: for an argument DistributedDataParallel does not take, or one kfit sets.
    """
    accepted = set(inspect.signature(nn.parallel.DistributedDataParallel).parameters)
    reserved = {"module", "device_ids", "output_device"}
    for name in options:
        if name not in accepted or name in reserved:
            raise ValueError(
                f"`{name}` is not an option kfit can pass to DistributedDataParallel; "
                f"choose from {sorted(accepted - reserved)}."
            )
    _ddp_options.clear()
    _ddp_options.update(options)


@overload
def setup(device: torch.device) -> torch.device: ...


@overload
def setup(device: None = None) -> None: ...


def setup(device: torch.device | None = None) -> torch.device | None:
    """Joins torchrun's process group (once) and maps an unnumbered CUDA device to this process.

    Called by `compile` with the device it chose, and by `fit`/`evaluate`/`predict`.

    Args:
        device: the model's device; `cuda` without an index becomes `cuda:LOCAL_RANK`.

    Returns:
        The device to use.
    """
    if not launched():
        return device
    if device is not None and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank())
    if torch.cuda.is_available():
        # NCCL and `torch.device("cuda")` use the current GPU: this process's own.
        on_gpu = device is not None and device.type == "cuda"
        torch.cuda.set_device(device if on_gpu else torch.device("cuda", local_rank()))
    if dist.is_available() and not dist.is_initialized():
        # With CUDA, NCCL for GPU tensors and gloo beside it for CPU ones.
        dist.init_process_group(
            backend="cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        )
        global _started_group
        _started_group = True
        _register_exit_handler()
    return device


def _register_exit_handler() -> None:
    atexit.unregister(release_at_exit)  # registered once, however often called
    atexit.register(release_at_exit)


def release_at_exit() -> None:
    """Frees what kfit made for the processes, in order, while the interpreter still runs.

    Runs at interpreter exit (`atexit`); calling it earlier is allowed, and training again
    afterwards builds what it needs anew. First every DistributedDataParallel wrapper kfit
    made is released: a wrapper and its model refer to each other, so without this they would
    be freed only during the interpreter's own teardown, after the process group's threads,
    which aborts the process (`terminate called without an active exception`) and makes
    `torchrun` report a failure although the script finished. Then the process group is
    destroyed if kfit started it; a group the script started itself is left to the script.
    """
    global _started_group
    forwards = list(_ddp_forwards)
    for forward in forwards:
        forward.release()
    if forwards:
        gc.collect()  # wrappers a compiled graph's cache still held in a cycle
    if _started_group and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _started_group = False


# --------------------------------------------------------------------------- collectives


def _collective_device() -> torch.device:
    """Where small tensors for collectives go: the CPU unless the group is NCCL alone."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _all_gather_object(value: Any) -> list[Any]:
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def any_process(flag: bool) -> bool:
    """Whether `flag` is True on any process (the flag itself when alone). Sync point."""
    if not is_distributed():
        return flag
    value = torch.tensor([int(bool(flag))], device=_collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())  # a host read: only where every process must decide alike


def _agreed_size(size: int, what: str) -> None:
    """Raises on every process when they hold different numbers of samples."""
    sizes = _all_gather_object(size)
    if len(set(sizes)) > 1:
        raise ValueError(
            f"Every process must hold the same {what}: each takes its own part of it. Got "
            f"{sizes} samples on ranks 0..{len(sizes) - 1} (load or generate the data the "
            "same way in every process, e.g. with a fixed seed)."
        )
    if size < len(sizes):
        raise ValueError(
            f"{len(sizes)} processes need at least {len(sizes)} samples in the {what}; got {size}."
        )


# --------------------------------------------------------------------------- sharding


def _processes() -> Processes:
    """This process's rank, the number of processes, and the size check, for the data."""
    return Processes(rank(), world_size(), _agreed_size)


def _shared_seed() -> int:
    """A seed drawn from rank 0's torch generator, the same in every process."""
    return _all_gather_object(int(torch.randint(2**62, ()).item()))[0]


def shard_for_training(data: DataSource, device: torch.device | None = None) -> DataSource:
    """This process's part of the training data; the data itself when alone.

    In-memory data: every pass (epoch) all processes draw the same order (a seed shared from
    rank 0, plus the pass number) and each takes `len(data) // world_size` samples of it (see
    `training_positions`), so all take the same number of steps; `batch_size` is per
    process. A DataLoader with its default sampler (or a map-style Dataset) is rebuilt with
    such a sampler; one with a DistributedSampler gets `set_epoch` every pass; other sources
    are used as given (with a warning). Each kind of source does its own part
    (`DataSource.for_training_process`).

    Args:
        data: the training data.
        device: the model's device (see `setup`).

    Returns:
        This process's part of `data`.

    Raises:
        ValueError: when the processes hold different numbers of samples, or fewer than one
            each.
    """
    setup(device)
    if not is_distributed():
        return data
    seed = _shared_seed()
    return data.for_training_process(seed, _processes())


@overload
def shard_for_evaluation(
    data: DataSource, batch_size: int, steps: int | None, device: torch.device | None = None
) -> DataSource: ...


@overload
def shard_for_evaluation(
    data: None, batch_size: int, steps: int | None, device: torch.device | None = None
) -> None: ...


def shard_for_evaluation(
    data: DataSource | None,
    batch_size: int,
    steps: int | None,
    device: torch.device | None = None,
) -> DataSource | None:
    """This process's consecutive part of evaluation data: every sample once, no padding.

    With `steps`, the samples of the first `steps` batches are split. The parts differ by at
    most one sample, so the processes may run different numbers of steps; nothing in an
    evaluation step waits for the others.

    Args:
        data: the evaluation data, or None.
        batch_size: samples per step.
        steps: the number of steps, or None for all the data.
        device: the model's device (see `setup`).

    Returns:
        This process's part of `data` (None for None).

    Raises:
        ValueError: when the processes hold different numbers of samples, or fewer than one
            each.
    """
    setup(device)
    if data is None or not is_distributed():
        return data
    return data.for_evaluation_process(batch_size, steps, _processes())


def _gather_rows(tensor: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Every process's rows of `tensor`, in rank order (padded to the same length to send)."""
    is_bool = tensor.dtype == torch.bool  # gloo sends no booleans
    sent = tensor.to(torch.uint8) if is_bool else tensor
    padded = sent.new_zeros((max(counts), *sent.shape[1:]))
    padded[: sent.shape[0]] = sent
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    gathered = torch.cat([part[:count] for part, count in zip(parts, counts, strict=True)])
    return gathered.bool() if is_bool else gathered


def gather_outputs(outputs: Any, data: DataSource) -> Any:
    """`predict`'s outputs of every process, in the input order; this process's when alone.

    For a source kfit could not split, each process keeps its own outputs.

    Args:
        outputs: this process's outputs (a tensor or a structure of them).
        data: the data they were predicted from, as `shard_for_evaluation` returned it.

    Returns:
        The outputs of every process, concatenated in rank order.
    """
    counts = data.counts
    if counts is None or not is_distributed():
        return outputs
    return map_tree(lambda tensor: _gather_rows(tensor, counts), outputs)


# --------------------------------------------------------------------------- the model


class _DDPForward:
    """The model's training forward pass through DistributedDataParallel, built on first use.

    Built at the first training call, so that lazy modules are materialised first (by one
    forward pass without gradients, in eval mode). Building it copies rank 0's parameters and
    buffers to every process. Not a module, so `model.ddp_forward` stays out of the module
    registry: the wrapper holds the model, and `state_dict` keys stay unprefixed.
    """

    def __init__(self, model: nn.Module, key: tuple[Any, ...]):
        self.model, self.key = model, key
        self._forward: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._forward is None:
            self._forward = self._build(args, kwargs)
            _ddp_forwards.add(self)
            _register_exit_handler()  # also when the script made the process group
        return self._forward(*args, **kwargs)

    def release(self) -> None:
        """Drops the wrapper (and with it the model's reference cycle); the next call rebuilds."""
        self._forward = None

    def _build(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        model = self.model
        if any(isinstance(p, UninitializedParameter) for p in model.parameters()):
            model.eval()
            try:
                with torch.no_grad():
                    model(*args, **kwargs)
            finally:
                model.train()
        device = model.device
        ids = [device.index] if device.type == "cuda" else None
        wrapper = nn.parallel.DistributedDataParallel(
            model, device_ids=ids, output_device=ids[0] if ids else None, **_ddp_options
        )
        return wrapper  # with jit_compile, called inside kfit.training.jit's compiled function


def _wrapper_key(model: nn.Module) -> tuple[Any, ...]:
    """What a DDP wrapper depends on: the device, the options, which parameters train."""
    parameters = tuple((id(p), p.requires_grad) for p in model.parameters())
    return str(model.device), repr(sorted(_ddp_options.items())), parameters


def prepare_training(model: Any) -> None:
    """Gives `model` a DistributedDataParallel training forward when processes are running.

    A wrapper made earlier is kept while the model's device, parameters (and which of them
    train) and `set_ddp_options` stay the same; `Trainer.call_forward` uses it in training mode.
    """
    if not is_distributed():
        model.ddp_forward = None
        return
    key = _wrapper_key(model)
    current = getattr(model, "ddp_forward", None)
    if current is None or current.key != key:
        model.ddp_forward = _DDPForward(model, key)


# --------------------------------------------------------------------------- metrics and logs


def _metrics_of(model: nn.Module) -> list[torchmetrics.Metric]:
    """Every torchmetrics metric the trainer reads: `model.metrics` and their sub-metrics."""
    return [
        sub
        for metric in cast("list[nn.Module]", model.metrics)  # kfit.Model's list
        for sub in metric.modules()
        if isinstance(sub, torchmetrics.Metric)
    ]


def local_reads(read: Callable[[], dict[str, Any]], model: nn.Module):
    """`read` (the running values) made to read this process's values only, when distributed.

    Batch-level logs are read when a callback looks at them, which differs between processes
    (the progress bar of rank 0 redraws by the clock): a read that waited for the others
    would hang. So batch `logs` hold this process's running values, and the epoch values,
    read by every process at the same point, are synchronised.
    """
    if not is_distributed():
        return read

    def read_locally() -> dict[str, Any]:
        # On exit the local values are dropped: the epoch's read must not get them.
        with sync_disabled(_metrics_of(model)):
            return read()

    return read_locally


# --------------------------------------------------------------------------- callbacks


def runs_here(callback: Any) -> bool:
    """Whether a callback runs in this process: one marked `rank_zero_only` only on rank 0."""
    return is_rank_zero() or not getattr(callback, "rank_zero_only", False)


def agrees_each_step(callback_list: Any, mode: str) -> bool:
    """Whether training must agree on `stop_training` after every step.

    True when processes are running and a callback that runs everywhere has a training batch
    hook, which may stop one process (say, on its own NaN loss) and not the others.
    """
    if mode != "train" or not is_distributed():
        return False
    return any(
        not getattr(callback, "rank_zero_only", False)
        and getattr(callback, "may_stop_training", True)  # ModelCheckpoint, BackupAndRestore: no
        for hook in ("on_train_batch_begin", "on_train_batch_end")
        for callback in callback_list.targets(hook)
    )
