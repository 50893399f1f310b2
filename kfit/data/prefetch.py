"""Host batches copied to a CUDA device one batch ahead, on a side stream."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from kfit.data.batch import Batch
from kfit.data.trees import Tree, leaves, map_tree, move_tree


def _pinned(tree: Tree) -> Tree:
    if tree is None or not torch.cuda.is_available():
        return tree
    return map_tree(lambda t: t.pin_memory(), tree)


def prefetch_to_cuda(batches: Iterable[Batch], device: torch.device) -> Iterator[Batch]:
    """Copies host batches to a CUDA `device` one batch ahead, on a side stream.

    Each batch is copied to page-locked memory (the caching host allocator reuses those blocks)
    and sent with `non_blocking=True` on a copy stream while the previous batch's step runs.
    The step's stream waits for that batch's copy only (an event, not a host sync), and the
    tensors are marked as used by it so their memory is not reused too early.

    Args:
        batches: `(x, y, sample_weight)` batches on the host.
        device: a CUDA device.

    Returns:
        The same batches on `device`, in order.
    """
    copy_stream = torch.cuda.Stream(device)

    def start_copy(batch: Batch) -> tuple[Batch, torch.cuda.Event]:
        with torch.cuda.stream(copy_stream):
            moved = tuple(move_tree(_pinned(part), device) for part in batch)
            copied = torch.cuda.Event()
            copied.record(copy_stream)
        return moved, copied

    def hand_over(moved: Batch, copied: torch.cuda.Event) -> Batch:
        compute_stream = torch.cuda.current_stream(device)
        compute_stream.wait_event(copied)
        for tensor in leaves(moved):
            if isinstance(tensor, torch.Tensor):
                tensor.record_stream(compute_stream)
        return moved

    pending = None
    for batch in batches:
        started = start_copy(batch)
        if pending is not None:
            yield hand_over(*pending)
        pending = started
    if pending is not None:
        yield hand_over(*pending)
