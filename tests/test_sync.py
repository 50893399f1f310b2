"""No host read inside the training step.

On the CPU, the device-to-host reads that would be syncs on a GPU are made visible by wrapping
the tensor methods that perform them; on a GPU, `torch.cuda.set_sync_debug_mode("error")` is
the real check.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import kfit


def _regression_data(n: int = 96):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, x.sum(1, keepdims=True)


def _compiled_model(**compile_kwargs) -> kfit.Model:
    torch.manual_seed(0)
    model = kfit.Model(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)))
    model.compile(device="cpu", **compile_kwargs)
    return model


@pytest.mark.parametrize(
    "compile_kwargs",
    [
        {"optimizer": "rmsprop", "loss": "mse", "metrics": ["mae", "mse"]},
        {"optimizer": kfit.optimizers.Adam(clipnorm=1.0), "loss": "mse", "metrics": ["mae"]},
        {
            "optimizer": kfit.optimizers.SGD(global_clipnorm=1.0, weight_decay=0.01),
            "loss": nn.MSELoss(),
            "metrics": [kfit.metrics.RootMeanSquaredError()],
        },
    ],
)
def test_fit_reads_values_once_per_epoch_at_verbose_0(count_host_reads, compile_kwargs):
    x, y = _regression_data()
    model = _compiled_model(**compile_kwargs)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # first batch settles the metrics
    counter = count_host_reads()
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    # 6 steps per epoch, 3 epochs: one read (a single tolist of all values) per epoch.
    assert counter.calls == ["tolist"] * 3


def test_validation_adds_one_read_per_validated_epoch(count_host_reads):
    x, y = _regression_data()
    model = _compiled_model(optimizer="sgd", loss="mse", metrics=["mae"])
    model.fit(x, y, epochs=1, verbose=0)
    counter = count_host_reads()
    model.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, verbose=0)
    assert counter.calls == ["tolist"] * 4


def test_batch_hooks_that_ignore_logs_cost_no_read(count_host_reads):
    class CountBatches(kfit.callbacks.Callback):
        seen = 0

        def on_train_batch_end(self, batch, logs=None):
            CountBatches.seen += 1

    x, y = _regression_data()
    model = _compiled_model(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    counter = count_host_reads()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[CountBatches()])
    assert CountBatches.seen == 6
    assert counter.calls == ["tolist"]


CUDA_SETTINGS = {
    "adam": {"optimizer": "adam", "metrics": ["mae", "mse"]},
    "bf16-mixed": {"optimizer": "adam", "metrics": ["mae"], "precision": "bf16-mixed"},
    "fused-adam-16-mixed": {
        "optimizer": lambda: torch.optim.Adam,  # replaced below by a fused instance
        "metrics": ["mae"],
        "precision": "16-mixed",
    },
    "options": {
        "optimizer": lambda: kfit.optimizers.AdamW(
            learning_rate=kfit.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)
            if hasattr(kfit.optimizers, "schedules")
            else 1e-3,
            global_clipnorm=1.0,
            gradient_accumulation_steps=2,
        ),
        "metrics": ["mae", kfit.metrics.R2Score()],
    },
}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("setting", list(CUDA_SETTINGS))
def test_cuda_training_steps_do_not_synchronize(setting):
    x, y = _regression_data(512)
    torch.manual_seed(0)
    model = kfit.Model(nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 1)))
    options = dict(CUDA_SETTINGS[setting])
    optimizer = options.pop("optimizer")
    optimizer = optimizer() if callable(optimizer) else optimizer
    if optimizer is torch.optim.Adam:  # the fused Adam takes the GradScaler's scale itself
        model.to("cuda")
        optimizer = torch.optim.Adam(model.parameters(), fused=True)
    model.compile(optimizer=optimizer, loss="mse", device="cuda", **options)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # settle lazy state first
    data = kfit.data.make_data(x, y, None, torch.float32, batch_size=64, shuffle=True)
    data = data.to(model.device)
    model.reset_metrics()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for batch in data.batches(64, True, model.device):
            model.train_step(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert model.get_metrics_result()["loss"] > 0
