"""`kfit.training.tracking`: reading the epoch's values, and the model's accumulators."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import kfit
from kfit.training.tracking import read_values, to_float32


def test_read_values_gives_floats_lists_and_passes_numbers_through():
    values = {
        "loss": torch.tensor(0.25),
        "count": 3,
        "wide": torch.tensor([1.0, 2.0]),
        "double": torch.tensor(0.5, dtype=torch.float64),
        "grad": torch.tensor(1.5, requires_grad=True) * 1,
    }
    read = read_values(values)
    assert read == {"loss": 0.25, "count": 3, "wide": [1.0, 2.0], "double": 0.5, "grad": 1.5}
    assert list(read) == list(values)  # the log order is kept
    assert all(type(read[key]) is float for key in ("loss", "double", "grad"))


@pytest.mark.parametrize("scalars", [[0.1, 0.2, 0.3], [7.0]])
def test_read_values_of_float32_scalars_is_the_one_stack_read(scalars, count_host_reads):
    values = {f"v{i}": torch.tensor(v) for i, v in enumerate(scalars)}
    reads = count_host_reads()
    read = read_values(values)
    assert read == pytest.approx({f"v{i}": v for i, v in enumerate(scalars)})
    assert reads.calls == ["tolist"]


def test_to_float32_widens_half_precision_only():
    assert to_float32(torch.ones(2, dtype=torch.bfloat16)).dtype == torch.float32
    assert to_float32(torch.ones(2, dtype=torch.float16)).dtype == torch.float32
    assert to_float32(torch.ones(2, dtype=torch.float64)).dtype == torch.float64
    assert to_float32("not a tensor") == "not a tensor"


def test_metrics_lists_every_accumulator_and_reset_clears_them():
    class WithTracker(kfit.Model):
        def __init__(self):
            super().__init__(nn.Linear(2, 1))
            self.extra = kfit.metrics.Mean(name="extra")

    model = WithTracker()
    model.compile("sgd", "mse", metrics=["mae"], device="cpu")
    model.evaluate(torch.ones(4, 2), torch.zeros(4, 1), verbose=0)
    names = [getattr(m, "name", None) for m in model.metrics]
    assert names == ["loss", "mae", "extra"]
    model.extra.update(torch.tensor([2.0]))
    assert set(model.metric_values()) == {"loss", "mae", "extra"}
    model.reset_metrics()
    assert all(m.update_count == 0 for m in model.metrics)
    with pytest.warns(UserWarning, match="before the ``update``"):  # torchmetrics' warning
        assert set(model.metric_values()) == {"mae"}  # compiled metrics are always listed
