"""The `DataSource` contract, run against every kind of source kfit makes.

Each kind wraps the same samples: sample `i` has `x = (i, -i)` (float64 as given), `y = i % 3`
(int64 class ids) and `sample_weight = i / 10`, so any batch says which samples it holds. A new
kind of source joins `KINDS` (and, if it can be split among processes, `SPLITTABLE`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from kfit.data import DataSource, Processes, make_data

SIZE, BATCH = 37, 8
CPU = torch.device("cpu")
IDS = np.arange(SIZE)
X = np.stack([IDS, -IDS], axis=1).astype(np.float64)
Y = (IDS % 3).astype(np.int64)
W = (IDS / 10).astype(np.float64)


def _host_batches() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [(X[i : i + BATCH], Y[i : i + BATCH], W[i : i + BATCH]) for i in range(0, SIZE, BATCH)]


def _tensor_dataset() -> TensorDataset:
    return TensorDataset(*(torch.from_numpy(a) for a in (X, Y, W)))


class _Batches:
    """A re-iterable, sized source that is neither a DataLoader nor a list (a list is arrays)."""

    def __iter__(self):
        return iter(_host_batches())

    def __len__(self) -> int:
        return len(_host_batches())


def _generator() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    yield from _host_batches()


def _make(x, y=None, w=None, float_dtype=torch.float32, shuffle=False) -> DataSource:
    return make_data(x, y, w, float_dtype, batch_size=BATCH, shuffle=shuffle)


@dataclass(frozen=True)
class Kind:
    name: str
    make: Callable[..., DataSource]  # make(float_dtype=..., shuffle=...)
    in_memory: bool
    one_shot: bool
    sized: bool
    shuffles: bool  # whether `shuffle=True` (to batches, or when made) reorders


KINDS = [
    Kind("arrays", lambda **kw: _make(X, Y, W, **kw), True, False, True, True),
    Kind(
        "tensors",
        lambda **kw: _make(*map(torch.from_numpy, (X, Y, W)), **kw),
        True,
        False,
        True,
        True,
    ),
    Kind("Dataset", lambda **kw: _make(_tensor_dataset(), **kw), False, False, True, True),
    Kind(
        "DataLoader",
        lambda **kw: _make(DataLoader(_tensor_dataset(), batch_size=BATCH), **kw),
        False,
        False,
        True,
        False,
    ),
    Kind("iterable of batches", lambda **kw: _make(_Batches(), **kw), False, False, True, False),
    Kind("generator", lambda **kw: _make(_generator(), **kw), False, True, False, False),
]


def _ids(batches) -> list[int]:
    return [int(i) for x, _, _ in batches for i in x[:, 0].tolist()]


@pytest.fixture(params=KINDS, ids=[kind.name for kind in KINDS])
def kind(request) -> Kind:
    return request.param


def test_is_a_data_source_with_its_declared_capabilities(kind):
    source = kind.make()
    assert isinstance(source, DataSource)
    assert source.in_memory is kind.in_memory
    assert source.one_shot is kind.one_shot
    assert source.counts is None


def test_one_pass_yields_every_sample_once_in_order_aligned(kind):
    source = kind.make()
    batches = list(source.batches(BATCH, False, CPU, torch.float32))

    assert _ids(batches) == list(range(SIZE))
    assert [len(x) for x, _, _ in batches] == [BATCH] * (SIZE // BATCH) + [SIZE % BATCH]
    for x, y, w in batches:
        assert all(t.device == CPU for t in (x, y, w))
        assert torch.equal(x[:, 1], -x[:, 0])
        assert torch.equal(y, x[:, 0].long() % 3)
        assert torch.allclose(w.double(), x[:, 0].double() / 10)


def test_num_batches_matches_the_batches_of_one_pass(kind):
    source = kind.make()
    expected = -(-SIZE // BATCH) if kind.sized else None
    assert source.num_batches(BATCH) == expected
    assert len(list(source.batches(BATCH, False, CPU))) == -(-SIZE // BATCH)


def test_shuffling_changes_the_order_only(kind):
    torch.manual_seed(0)
    source = kind.make(shuffle=True)
    passes = [_ids(source.batches(BATCH, True, CPU)) for _ in range(1 if kind.one_shot else 2)]
    for ids in passes:
        assert sorted(ids) == list(range(SIZE))
    if kind.shuffles:
        assert passes[0] != list(range(SIZE))
        assert passes[0] != passes[1]  # a new order every pass


def test_floats_take_the_model_dtype_and_class_ids_stay_integers(kind):
    source = kind.make(float_dtype=torch.float64)
    x, y, _ = next(source.batches(BATCH, False, CPU, torch.float64))
    assert x.dtype == torch.float64
    assert y.dtype == torch.int64
    source = kind.make(float_dtype=torch.float32)
    x, y, _ = next(source.batches(BATCH, False, CPU, torch.float32))
    assert x.dtype == torch.float32
    assert y.dtype == torch.int64


def test_a_pass_after_the_first_starts_afresh_unless_one_shot(kind):
    source = kind.make()
    list(source.batches(BATCH, False, CPU))
    again = _ids(source.batches(BATCH, False, CPU))
    assert again == ([] if kind.one_shot else list(range(SIZE)))


def test_to_the_host_keeps_the_batches(kind):
    source = kind.make().to(CPU)
    assert _ids(source.batches(BATCH, False, CPU)) == list(range(SIZE))


def test_targets_are_checked_at_once_in_memory_else_batch_by_batch(kind):
    source = kind.make()
    calls: list[tuple[list[int], int]] = []
    source.check_targets_with(lambda y, offset: calls.append((y.tolist(), offset)))
    if kind.in_memory:
        assert calls == [(Y.tolist(), 0)]
        return
    assert calls == []  # nothing read yet
    list(source.batches(BATCH, False, CPU))
    assert calls == [(Y[i : i + BATCH].tolist(), i) for i in range(0, SIZE, BATCH)]


def test_in_memory_capabilities_or_a_clear_error(kind):
    source = kind.make()
    if not kind.in_memory:
        with pytest.raises(ValueError, match="`validation_split` needs in-memory"):
            source.split(0.25)
        with pytest.raises(ValueError, match="`class_weight` needs in-memory"):
            source.with_class_weight({0: 1.0, 1: 2.0, 2: 3.0}, torch.float32)
        with pytest.raises(ValueError, match="take arrays or tensors, not data sets"):
            source.whole_batch(CPU)
        return
    train, val = source.split(0.25)  # Keras's rule: the last N - floor(0.75 N) samples
    assert _ids(train.batches(BATCH, False, CPU)) == list(range(27))
    assert _ids(val.batches(BATCH, False, CPU)) == list(range(27, SIZE))
    x, y, w = source.whole_batch(CPU)
    assert x[:, 0].tolist() == list(range(SIZE))
    with pytest.raises(ValueError, match="either `class_weight` or `sample_weight`"):
        source.with_class_weight({0: 1.0}, torch.float32)
    unweighted = _make(X, Y) if kind.name == "arrays" else _make(*map(torch.from_numpy, (X, Y)))
    weighted = unweighted.with_class_weight({0: 1.0, 1: 2.0, 2: 3.0}, torch.float64)
    _, y, w = weighted.whole_batch(CPU)
    assert w.dtype == torch.float64
    assert w.tolist() == (y + 1).double().tolist()


# --------------------------------------------------------------------------- torchrun parts

WORLD = 3
# In-memory data, and DataLoaders with their default sampler (a Dataset is given one).
SPLITTABLE = [k for k in KINDS if k.name in ("arrays", "tensors", "Dataset", "DataLoader")]


def _processes(rank: int, agreed: list[tuple[int, str]]) -> Processes:
    return Processes(rank, WORLD, lambda size, what: agreed.append((size, what)))


@pytest.mark.parametrize("kind", SPLITTABLE, ids=[kind.name for kind in SPLITTABLE])
def test_training_parts_are_disjoint_equal_and_agreed(kind):
    agreed: list[tuple[int, str]] = []
    parts = [
        kind.make(shuffle=True).for_training_process(7, _processes(r, agreed)) for r in range(WORLD)
    ]
    assert [size for size, _ in agreed] == [SIZE] * WORLD
    for _ in range(2):  # every pass: a new shared order
        ids = [_ids(part.batches(BATCH, True, CPU)) for part in parts]
        assert all(len(part_ids) == SIZE // WORLD for part_ids in ids)
        everything = sum(ids, [])
        assert len(set(everything)) == len(everything)
        assert {part.num_batches(BATCH) for part in parts} == {-(-(SIZE // WORLD) // BATCH)}


@pytest.mark.parametrize("kind", SPLITTABLE, ids=[kind.name for kind in SPLITTABLE])
def test_evaluation_parts_cover_every_sample_once_in_rank_order(kind):
    agreed: list[tuple[int, str]] = []
    parts = [
        kind.make().for_evaluation_process(BATCH, None, _processes(r, agreed)) for r in range(WORLD)
    ]
    assert [size for size, _ in agreed] == [SIZE] * WORLD
    ids = [_ids(part.batches(BATCH, False, CPU)) for part in parts]
    assert sum(ids, []) == list(range(SIZE))
    assert all(part.counts == [len(part_ids) for part_ids in ids] for part in parts)


@pytest.mark.parametrize("kind", [k for k in KINDS if k not in SPLITTABLE], ids=lambda k: k.name)
def test_sources_kfit_cannot_split_are_used_as_given(kind):
    source = kind.make()
    with pytest.warns(UserWarning, match="kfit cannot split"):
        assert source.for_training_process(7, _processes(0, [])) is source


STREAMED_SPLITTABLE = [k for k in SPLITTABLE if not k.in_memory]


@pytest.mark.parametrize("kind", STREAMED_SPLITTABLE, ids=[k.name for k in STREAMED_SPLITTABLE])
def test_a_process_part_checks_class_ids_as_its_source_does(kind):
    # Under torchrun `fit` sets the class-id check before splitting a streamed source; each
    # process's part must keep it (it was dropped before: bad ids reached the loss unchecked).
    # (In-memory targets are checked at once, before splitting.)
    checked: list[int] = []
    source = kind.make()
    source.check_targets_with(lambda y, offset: checked.append(offset))
    part = source.for_training_process(7, _processes(0, []))
    list(part.batches(BATCH, True, CPU))
    assert checked, "the process's part did not check its batches' targets"


def test_a_distributed_sampler_loader_keeps_the_class_id_check():
    from torch.utils.data.distributed import DistributedSampler

    dataset = TensorDataset(torch.randn(8, 2), torch.arange(8) % 2)
    loader = DataLoader(dataset, batch_size=2, sampler=DistributedSampler(dataset, 2, 0))
    source = make_data(loader, None, None, torch.float32, batch_size=2, shuffle=True)
    checked: list[int] = []
    source.check_targets_with(lambda y, offset: checked.append(offset))
    part = source.for_training_process(7, _processes(0, []))
    list(part.batches(2, True, CPU))
    assert checked, "the process's part did not check its batches' targets"
