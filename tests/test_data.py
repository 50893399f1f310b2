"""Input forms (arrays, tensors, structures, data sets, iterables) and the dtype/shape rules.

Values are checked with the `frozen_model` fixture (always outputs 0, never changes): its
`'mse'` loss is the mean of `y**2`, whatever form the data takes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import kfit
from kfit import data as data_module

X = np.arange(30, dtype=np.float32).reshape(10, 3) / 30
Y = np.array([[1.0]] * 8 + [[3.0]] * 2, dtype=np.float32)
LOSS = float(np.mean(Y**2))  # 2.6


class PairDataset(Dataset):
    """A map-style data set of `(x, y)` samples (not a TensorDataset)."""

    def __len__(self) -> int:
        return len(X)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return X[index], Y[index]


def _batches(with_weights: bool = False) -> Iterator[tuple[np.ndarray, ...]]:
    for start in range(0, 10, 4):
        batch = (X[start : start + 4], Y[start : start + 4])
        yield (*batch, np.full(len(batch[0]), 0.5, dtype=np.float32)) if with_weights else batch


class ReIterable:
    """An iterable (not an iterator) of `(x, y)` batches: each `iter()` starts afresh."""

    def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        return _batches()


# --------------------------------------------------------------------------- input forms

IN_MEMORY_FORMS = {
    "numpy": lambda: {"x": X, "y": Y},
    "tensor": lambda: {"x": torch.from_numpy(X), "y": torch.from_numpy(Y)},
    "nested_lists": lambda: {"x": X.tolist(), "y": Y.tolist()},
    "numpy_x_tensor_y": lambda: {"x": X, "y": torch.from_numpy(Y)},
}

DATA_SET_FORMS = {
    "tensor_dataset": lambda: {"x": TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))},
    "map_style_dataset": lambda: {"x": PairDataset()},
    "data_loader": lambda: {
        "x": DataLoader(TensorDataset(torch.from_numpy(X), torch.from_numpy(Y)), batch_size=3)
    },
    "generator": lambda: {"x": _batches()},
    "re_iterable": lambda: {"x": ReIterable()},
}


@pytest.mark.parametrize(
    "make_inputs",
    [*IN_MEMORY_FORMS.values(), *DATA_SET_FORMS.values()],
    ids=[*IN_MEMORY_FORMS, *DATA_SET_FORMS],
)
def test_fit_accepts_the_input_form(frozen_model, make_inputs):
    history = frozen_model().fit(**make_inputs(), batch_size=4, verbose=0)

    assert history.history["loss"] == [pytest.approx(LOSS)]


@pytest.mark.parametrize(
    "make_inputs",
    [*IN_MEMORY_FORMS.values(), *DATA_SET_FORMS.values()],
    ids=[*IN_MEMORY_FORMS, *DATA_SET_FORMS],
)
def test_evaluate_accepts_the_input_form(frozen_model, make_inputs):
    assert frozen_model(metrics=()).evaluate(**make_inputs(), verbose=0) == pytest.approx(LOSS)


@pytest.mark.parametrize(
    "make_x",
    [
        lambda: X,
        lambda: torch.from_numpy(X),
        lambda: TensorDataset(torch.from_numpy(X)),
        lambda: DataLoader(TensorDataset(torch.from_numpy(X), torch.from_numpy(Y)), batch_size=3),
        lambda: (x for x, _ in _batches()),
    ],
    ids=["numpy", "tensor", "x_only_dataset", "data_loader_with_targets", "generator_of_x"],
)
def test_predict_accepts_the_input_form(make_x):
    module = nn.Linear(3, 2)

    result = kfit.Model(module).predict(make_x(), verbose=0)

    np.testing.assert_allclose(result, module(torch.from_numpy(X)).detach().numpy(), rtol=1e-6)


def test_generator_sample_weights_weight_the_loss(frozen_model):
    history = frozen_model().fit(_batches(with_weights=True), verbose=0)

    assert history.history["loss"] == [pytest.approx(0.5 * LOSS)]


def test_dataset_batches_use_fit_batch_size(frozen_model):
    history = frozen_model().fit(
        TensorDataset(torch.from_numpy(X), torch.from_numpy(Y)), batch_size=4, verbose=0
    )

    assert history.params["steps"] == 3


def test_re_iterable_source_starts_afresh_each_epoch(frozen_model):
    history = frozen_model().fit(ReIterable(), epochs=3, verbose=0)

    assert history.epoch == [0, 1, 2]
    assert history.history["loss"] == [pytest.approx(LOSS)] * 3


class TwoInputs(nn.Module):
    """Takes two inputs positionally: `forward(features, extra)`."""

    def __init__(self):
        super().__init__()
        self.features, self.extra = nn.Linear(3, 1), nn.Linear(2, 1)
        self.shapes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def forward(self, features, extra):
        self.shapes.append((tuple(features.shape), tuple(extra.shape)))
        return self.features(features) + self.extra(extra)


class KeywordInputs(TwoInputs):
    """Takes its inputs by keyword only."""

    def forward(self, *, features, extra):
        return super().forward(features, extra)


def test_tuple_x_is_passed_to_forward_positionally():
    module = TwoInputs()
    model = kfit.Model(module)
    model.compile(optimizer="sgd", loss="mse")

    model.fit((X, np.ones((10, 2), np.float32)), Y, batch_size=4, verbose=0)

    assert module.shapes[0] == ((4, 3), (4, 2))


def test_dict_x_is_passed_to_forward_by_keyword():
    module = KeywordInputs()
    model = kfit.Model(module)
    model.compile(optimizer="sgd", loss="mse")

    model.fit({"extra": np.ones((10, 2), np.float32), "features": X}, Y, batch_size=4, verbose=0)

    assert module.shapes[0] == ((4, 3), (4, 2))


def test_predict_with_dict_x_calls_forward_by_keyword():
    module = KeywordInputs()

    result = kfit.Model(module).predict({"features": X, "extra": np.ones((10, 2))}, verbose=0)

    assert result.shape == (10, 1)


def test_structured_x_with_unequal_lengths_raises_naming_x(frozen_model):
    with pytest.raises(ValueError, match="`x`"):
        frozen_model().fit((X, X[:9]), Y, verbose=0)


# --------------------------------------------------------------------------- dtypes


class DtypeLoss:
    """A loss `f(y_true, y_pred)` that records the dtype of each `y_true` it gets."""

    __name__ = "dtype_loss"

    def __init__(self):
        self.dtypes: list[torch.dtype] = []

    def __call__(self, y_true, y_pred):
        self.dtypes.append(y_true.dtype)
        return (y_pred - y_true.to(y_pred.dtype).reshape(y_pred.shape)).square().mean(-1)


@pytest.mark.parametrize(
    ("x_dtype", "model_dtype", "expected"),
    [
        (np.float64, torch.float32, torch.float32),
        (np.float16, torch.float32, torch.float32),
        (np.float32, torch.float64, torch.float64),
    ],
)
def test_floating_inputs_take_the_model_dtype(recorder, x_dtype, model_dtype, expected):
    model = kfit.Model(recorder.to(model_dtype))
    model.compile(optimizer="sgd", loss="mse")

    model.fit(X.astype(x_dtype), Y, verbose=0)

    assert {batch.dtype for batch in recorder.seen} == {expected}


def test_integer_inputs_stay_integer():
    model = kfit.Sequential(nn.Embedding(10, 1), nn.Flatten())
    model.compile(optimizer="sgd", loss="mse")
    tokens = np.arange(10).reshape(10, 1)

    history = model.fit(tokens, Y, verbose=0)

    assert len(history.history["loss"]) == 1


@pytest.mark.parametrize("y_dtype", [np.int64, np.int32, np.uint8])
def test_integer_labels_stay_integer(y_dtype):
    loss = DtypeLoss()
    model = kfit.Sequential(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss=loss)

    model.fit(X, (np.arange(10) % 2).astype(y_dtype), verbose=0)

    assert set(loss.dtypes) == {torch.from_numpy(np.zeros(1, y_dtype)).dtype}


def test_float64_targets_become_float32():
    loss = DtypeLoss()
    model = kfit.Sequential(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss=loss)

    model.fit(X, Y.astype(np.float64), verbose=0)

    assert set(loss.dtypes) == {torch.float32}


def test_bool_targets_become_float():
    loss = DtypeLoss()
    model = kfit.Sequential(nn.Linear(3, 1), nn.Sigmoid())
    model.compile(optimizer="sgd", loss=loss)

    model.fit(X, Y > 2, verbose=0)

    assert set(loss.dtypes) == {torch.float32}


def test_bool_targets_work_with_binary_crossentropy_and_accuracy():
    model = kfit.Sequential(nn.Linear(3, 1), nn.Sigmoid())
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])

    history = model.fit(X, Y > 2, verbose=0)

    assert 0.0 <= history.history["accuracy"][0] <= 1.0


def test_integer_labels_work_with_sparse_categorical_crossentropy():
    model = kfit.Sequential(nn.Linear(3, 4), nn.Softmax(dim=-1))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    history = model.fit(X, np.arange(10) % 4, verbose=0)

    assert history.history["loss"][0] > 0


# --------------------------------------------------------------------------- shapes


def test_flat_target_for_a_single_column_output_is_reshaped(frozen_model):
    history = frozen_model().fit(X, Y[:, 0], verbose=0)

    assert history.history["loss"] == [pytest.approx(LOSS)]


def test_flat_target_for_a_multi_column_output_raises_naming_both_shapes(
    frozen_model, take_snapshot, assert_unchanged
):
    model = frozen_model(out_features=3, optimizer="sgd")
    before = take_snapshot(model)

    with pytest.raises(ValueError, match=r"\(10,\).*\(10, 3\)"):
        model.fit(X, Y[:, 0], batch_size=10, verbose=0)

    assert_unchanged(model, before)


@pytest.mark.parametrize("scalar", [torch.tensor(1.0), np.float32(1.0)], ids=["tensor", "numpy"])
def test_scalar_x_raises_asking_for_a_batch_axis(frozen_model, scalar):
    with pytest.raises(ValueError, match="batch axis"):
        frozen_model().fit(scalar, Y, verbose=0)


# --------------------------------------------------------------------------- kfit.data helpers


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("x", ("x", None, None)),
        (("x",), ("x", None, None)),
        (("x", "y"), ("x", "y", None)),
        (["x", "y", "w"], ("x", "y", "w")),
    ],
)
def test_unpack_splits_what_a_data_set_yields(item, expected):
    assert data_module.unpack(item) == expected


def test_unpack_rejects_four_items():
    with pytest.raises(ValueError, match="4 items"):
        data_module.unpack(("x", "y", "w", "extra"))


@pytest.mark.parametrize(
    "y",
    [
        torch.tensor([0, 2, 1, 2]),
        torch.tensor([[0], [2], [1], [2]]),
        torch.eye(3)[[0, 2, 1, 2]],
    ],
    ids=["ids", "ids_column", "one_hot"],
)
def test_class_weight_gives_each_sample_its_class_weight(y):
    weights = data_module.class_weight_to_sample_weight(y, {0: 1.0, 1: 2.0, 2: 3.0})

    assert weights.tolist() == [1.0, 3.0, 2.0, 3.0]


def test_class_weight_applies_to_the_loss(frozen_model):
    labels = np.array([[0.0]] * 5 + [[1.0]] * 5, dtype=np.float32)

    history = frozen_model().fit(X, labels, class_weight={0: 1.0, 1: 3.0}, verbose=0)

    assert history.history["loss"] == [pytest.approx(5 * 3.0 / 10)]


@settings(max_examples=40, deadline=None)
@given(
    samples=st.integers(1, 70),
    batch_size=st.integers(1, 40),
    shuffle=st.booleans(),
)
def test_array_batches_cover_every_sample_once_with_only_the_last_partial(
    samples, batch_size, shuffle
):
    data = data_module.make_data(
        np.arange(samples).reshape(samples, 1),
        None,
        None,
        torch.float32,
        batch_size=batch_size,
        shuffle=shuffle,
    )

    batches = [x for x, _, _ in data.batches(batch_size, shuffle, torch.device("cpu"))]

    sizes = [len(batch) for batch in batches]
    assert len(batches) == data.num_batches(batch_size) == -(-samples // batch_size)
    assert all(size == batch_size for size in sizes[:-1])
    assert sorted(torch.cat(batches)[:, 0].tolist()) == list(range(samples))
    if not shuffle:
        assert torch.cat(batches)[:, 0].tolist() == list(range(samples))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_host_data_is_prefetched_to_the_gpu_batch_for_batch():
    x = torch.randn(100, 3)
    y = torch.arange(100)
    data = kfit.data.make_data(x, y, None, torch.float32, batch_size=16, shuffle=False)
    device = torch.device("cuda", torch.cuda.current_device())
    order = torch.randperm(100)
    on_gpu = list(data.batches_in_order(order, 16, device))  # data stays on the host
    on_host = list(data.batches_in_order(order, 16, torch.device("cpu")))
    assert len(on_gpu) == len(on_host) == 7
    for (gx, gy, _), (hx, hy, _) in zip(on_gpu, on_host, strict=True):
        assert gx.device == device
        assert torch.equal(gx.cpu(), hx)
        assert torch.equal(gy.cpu(), hy)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_model_on_cuda_reports_an_indexed_device_and_trains_on_host_batches(monkeypatch):
    monkeypatch.setattr(kfit.data.arrays, "_ON_DEVICE_SHARE", 0.0)  # force the pinned host path
    model = kfit.Model(torch.nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse", device="cuda")
    assert model.device.index is not None
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    history = model.fit(x, x.sum(1, keepdims=True), epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
