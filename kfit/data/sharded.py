"""Splitting data among the processes of a torchrun job: who takes which samples.

Under torchrun (see `kfit.distributed`) every process holds the same data and takes its own
part of it. For training, every pass all processes draw the same order and each takes
`training_positions` of it, so that all take the same number of steps; for evaluation each
takes a consecutive part (`evaluation_counts`), every sample once. Each kind of data source
applies these in its `for_training_process` / `for_evaluation_process` (see
`kfit.data.source.DataSource`), given a `Processes` that `kfit.distributed` fills in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Processes:
    """Where this process stands among the others, and the one collective data needs.

    Attributes:
        rank: this process's rank.
        world: how many processes take part.
        agree_on_size: `agree_on_size(size, what)` raises on every process when they hold
            different numbers of samples (or fewer than one each) of `what`; a collective:
            every process must call it.
    """

    rank: int
    world: int
    agree_on_size: Callable[[int, str], None]


def training_positions(size: int, batch_size: int, rank: int, world: int) -> torch.Tensor:
    """The positions in an epoch's sample order that process `rank` trains on.

    Every process gets `size // world` positions (the last `size % world` of the order are
    left out that epoch, so that all take the same number of steps). Step `s` of the `world`
    processes together covers positions `s * world * batch_size` onwards, each process a block
    of them in rank order: `world` processes with `batch_size` see the same samples per step as
    one process with `world * batch_size`.

    Args:
        size: the number of samples.
        batch_size: samples per step and process.
        rank: the process.
        world: how many processes take part.

    Returns:
        A 1-d integer tensor of `size // world` positions.
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
