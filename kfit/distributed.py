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
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
import torchmetrics
from torch import nn
from torch.nn.parameter import UninitializedParameter
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)
from torch.utils.data.distributed import DistributedSampler

from kfit.data import ArrayData, Batch, IterableData, index_tree, map_tree
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


def training_positions(size: int, batch_size: int, rank: int, world: int) -> torch.Tensor:
    """The positions in an epoch's sample order that process `rank` trains on.

    Every process gets `size // world` positions (the last `size % world` of the order are
    left out that epoch, so that all take the same number of steps). Step `s` of the `world`
    processes together covers positions `s * world * batch_size` onwards, each process a block
    of them in rank order: `world` processes with `batch_size` see the same samples per step as
    one process with `world * batch_size`.
    """
    per_rank = size // world
    index = torch.arange(per_rank)
    start = (index // batch_size) * batch_size
    step = torch.clamp(per_rank - start, max=batch_size)
    return start * world + rank * step + (index - start)


def training_indices(
    size: int, batch_size: int, rank: int, world: int, seed: int | None
) -> torch.Tensor:
    """The samples process `rank` trains on in one pass, in step order.

    Its `training_positions` of an order every process draws alike: a permutation from
    `seed`, or the samples in order when `seed` is None (no shuffling).
    """
    if seed is None:
        order = torch.arange(size)
    else:
        order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    return order[training_positions(size, batch_size, rank, world)]


def evaluation_counts(size: int, world: int) -> list[int]:
    """How many consecutive samples each process evaluates: all of them, each once."""
    return [size // world + (r < size % world) for r in range(world)]


class _TrainingShard(ArrayData):
    """This process's part of in-memory training data, drawn afresh every pass."""

    def __init__(self, data: ArrayData, seed: int, rank: int, world: int):
        super().__init__(data.x, data.y, data.sample_weight, data.size)
        self.seed, self.rank, self.world = seed, rank, world
        self.passes = 0

    def num_batches(self, batch_size: int) -> int:
        return -(-(self.size // self.world) // batch_size)

    def batches(self, batch_size: int, shuffle: bool, device: torch.device) -> Iterator[Batch]:
        seed = self.seed + self.passes if shuffle else None  # a new shared order each pass
        self.passes += 1
        indices = training_indices(self.size, batch_size, self.rank, self.world, seed)
        yield from self.batches_in_order(indices, batch_size, device)


class _EvaluationShard(ArrayData):
    """This process's consecutive part of evaluation data; `counts` has every process's size."""

    def __init__(self, data: ArrayData, rank: int, world: int):
        counts = evaluation_counts(data.size, world)
        part = slice(sum(counts[:rank]), sum(counts[: rank + 1]))
        super().__init__(
            index_tree(data.x, part),
            index_tree(data.y, part),
            index_tree(data.sample_weight, part),
            counts[rank],
        )
        self.counts = counts


class _ShardSampler(Sampler[int]):
    """The sampler of a rebuilt DataLoader: `training_positions` or an evaluation part."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        shuffle: bool,
        seed: int,
        training: bool,
        rank: int,
        world: int,
    ):
        self.size, self.batch_size, self.shuffle = size, batch_size, shuffle
        self.seed, self.training = seed, training
        self.rank, self.world = rank, world
        self.counts = evaluation_counts(size, self.world)
        self.passes = 0

    def __len__(self) -> int:
        return self.size // self.world if self.training else self.counts[self.rank]

    def __iter__(self) -> Iterator[int]:
        if not self.training:
            start = sum(self.counts[: self.rank])
            return iter(range(start, start + self.counts[self.rank]))
        seed = self.seed + self.passes if self.shuffle else None  # a new shared order each pass
        self.passes += 1
        indices = training_indices(self.size, self.batch_size, self.rank, self.world, seed)
        return iter(indices.tolist())


class _ShardedLoader(IterableData):
    """A DataLoader rebuilt with a `_ShardSampler`; `counts` as in `_EvaluationShard`."""

    def __init__(self, source: DataLoader, counts: list[int] | None):
        super().__init__(source)
        self.counts = counts


class _EpochedLoader(IterableData):
    """A DataLoader the script sharded with a DistributedSampler: `set_epoch` every pass."""

    def __init__(self, source: DataLoader):
        super().__init__(source)
        self.passes = 0

    def batches(self, float_dtype: torch.dtype, device: torch.device) -> Iterator[Batch]:
        self.source.sampler.set_epoch(self.passes)
        self.passes += 1
        yield from super().batches(float_dtype, device)


def _default_sampling(loader: DataLoader) -> bool:
    """Whether a DataLoader samples a sized map-style data set the ordinary way."""
    sampler = loader.sampler
    return (
        not isinstance(loader.dataset, IterableDataset)
        and type(loader.batch_sampler) is BatchSampler
        and (
            type(sampler) is SequentialSampler
            or (
                type(sampler) is RandomSampler
                and not sampler.replacement
                and sampler.num_samples == len(sampler.data_source)  # every sample once
            )
        )
    )


def _rebuilt(loader: DataLoader, sampler: Sampler[int]) -> DataLoader:
    """The same DataLoader (workers, collate_fn, pinning, ...) with another sampler."""
    settings = {
        name: getattr(loader, name)
        for name in inspect.signature(DataLoader.__init__).parameters
        if name not in ("self", "dataset", "shuffle", "sampler", "batch_sampler")
        and hasattr(loader, name)
    }
    return DataLoader(loader.dataset, sampler=sampler, **settings)


def _shard_loader(data: IterableData, training: bool, seed: int) -> IterableData:
    source = data.source
    if isinstance(source, DataLoader) and _default_sampling(source):
        _agreed_size(len(source.dataset), "data set" if training else "evaluation data set")
        sampler = _ShardSampler(
            len(source.dataset),
            source.batch_size,
            shuffle=training and isinstance(source.sampler, RandomSampler),
            seed=seed,
            training=training,
            rank=rank(),
            world=world_size(),
        )
        return _ShardedLoader(_rebuilt(source, sampler), None if training else sampler.counts)
    if isinstance(source, DataLoader) and isinstance(source.sampler, DistributedSampler):
        return _EpochedLoader(source) if training else data
    warnings.warn(
        f"kfit cannot split a {type(source).__name__} among the {world_size()} processes: each "
        "uses all of it as given. Pass arrays, a map-style Dataset or a DataLoader with its "
        "default sampler (kfit then splits it), or a DataLoader with a DistributedSampler. "
        "Every process must yield the same number of batches.",
        stacklevel=4,
    )
    return data


def _shared_seed() -> int:
    """A seed drawn from rank 0's torch generator, the same in every process."""
    return _all_gather_object(int(torch.randint(2**62, ()).item()))[0]


def shard_for_training(
    data: ArrayData | IterableData, device: torch.device | None = None
) -> ArrayData | IterableData:
    """This process's part of the training data; the data itself when alone.

    In-memory data: every pass (epoch) all processes draw the same order (a seed shared from
    rank 0, plus the pass number) and each takes `len(data) // world_size` samples of it (see
    `training_positions`), so all take the same number of steps; `batch_size` is per
    process. A DataLoader with its default sampler (or a map-style Dataset) is rebuilt with
    such a sampler; one with a DistributedSampler gets `set_epoch` every pass; other sources
    are used as given (with a warning).

    Raises:
        ValueError: when the processes hold different numbers of samples, or fewer than one
            each.
    """
    setup(device)
    if not is_distributed():
        return data
    seed = _shared_seed()
    if isinstance(data, IterableData):
        return _shard_loader(data, training=True, seed=seed)
    _agreed_size(data.size, "training data")
    return _TrainingShard(data, seed, rank(), world_size())


def shard_for_evaluation(
    data: ArrayData | IterableData | None,
    batch_size: int,
    steps: int | None,
    device: torch.device | None = None,
) -> ArrayData | IterableData | None:
    """This process's consecutive part of evaluation data: every sample once, no padding.

    With `steps`, the samples of the first `steps` batches are split. The parts differ by at
    most one sample, so the processes may run different numbers of steps; nothing in an
    evaluation step waits for the others.

    Raises:
        ValueError: when the processes hold different numbers of samples, or fewer than one
            each.
    """
    setup(device)
    if data is None or not is_distributed():
        return data
    if isinstance(data, IterableData):
        return _shard_loader(data, training=False, seed=0)
    if steps is not None and steps * batch_size < data.size:
        first = slice(0, steps * batch_size)
        data = ArrayData(
            index_tree(data.x, first),
            index_tree(data.y, first),
            index_tree(data.sample_weight, first),
            steps * batch_size,
        )
    _agreed_size(data.size, "evaluation data")
    return _EvaluationShard(data, rank(), world_size())


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


def gather_outputs(outputs: Any, data: ArrayData | IterableData) -> Any:
    """`predict`'s outputs of every process, in the input order; this process's when alone.

    For a source kfit could not split, each process keeps its own outputs.
    """
    counts = getattr(data, "counts", None)
    if counts is None or not is_distributed():
        return outputs
    return map_tree(lambda tensor: _gather_rows(tensor, counts), outputs)


# --------------------------------------------------------------------------- the model


class _DDPForward:
    """The model's training forward pass through DistributedDataParallel, built on first use.

    Built at the first training call, so that lazy modules are materialised first (by one
    forward pass without gradients, in eval mode). Building it copies rank 0's parameters and
    buffers to every process. Kept in the model's `__dict__`, out of the module registry: the
    wrapper holds the model, and `state_dict` keys stay unprefixed.
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


def prepare_training(model: nn.Module) -> None:
    """Gives `model` a DistributedDataParallel training forward when processes are running.

    A wrapper made earlier is kept while the model's device, parameters (and which of them
    train) and `set_ddp_options` stay the same; `Trainer.call_forward` uses it in training mode.
    """
    if not is_distributed():
        model.__dict__["_ddp_forward"] = None
        return
    key = _wrapper_key(model)
    current = model.__dict__.get("_ddp_forward")
    if current is None or current.key != key:
        model.__dict__["_ddp_forward"] = _DDPForward(model, key)


# --------------------------------------------------------------------------- metrics and logs


def _metrics_of(model: nn.Module) -> list[torchmetrics.Metric]:
    """Every torchmetrics metric the trainer reads: `model.metrics` and their sub-metrics."""
    return [
        sub
        for metric in model.metrics
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
    from kfit.callbacks.backup_and_restore import BackupAndRestore
    from kfit.callbacks.model_checkpoint import ModelCheckpoint

    return any(
        not getattr(callback, "rank_zero_only", False)
        and not isinstance(callback, ModelCheckpoint | BackupAndRestore)  # they never stop
        for hook in ("on_train_batch_begin", "on_train_batch_end")
        for callback in callback_list.targets(hook)
    )
