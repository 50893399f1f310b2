"""Training keeps no tensors alive from epoch to epoch: memory stays flat."""

from __future__ import annotations

import copy
import gc
import warnings
import weakref

import numpy as np
import torch
from torch import nn

import kfit


def _live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():  # isinstance on torch.distributed's deprecated aliases
        warnings.simplefilter("ignore", FutureWarning)
        return sum(1 for obj in gc.get_objects() if isinstance(obj, torch.Tensor))


class CountTensors(kfit.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.counts: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.counts.append(_live_tensors())


def test_live_tensors_do_not_grow_across_epochs_and_history_holds_floats():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype("float32")
    y = (x.sum(1) > 0).astype("float32")[:, None]

    class WithTerm(kfit.Model):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(5, 1)

        def forward(self, inputs):
            out = torch.sigmoid(self.layer(inputs))
            self.add_loss(1e-3 * out.mean(), name="aux")
            return out

    model = WithTerm()
    model.compile(
        optimizer=kfit.optimizers.Adam(1e-2, gradient_accumulation_steps=2),
        loss="binary_crossentropy",
        metrics=["accuracy", "auc", kfit.metrics.Precision()],
        device="cpu",
    )
    counter = CountTensors()
    callbacks = [counter, kfit.callbacks.EarlyStopping(monitor="val_loss", patience=100)]
    history = model.fit(
        x, y, epochs=8, batch_size=16, validation_split=0.2, verbose=0, callbacks=callbacks
    )
    # Epoch 1 creates the optimizer state and accumulators; after that the count is fixed.
    assert counter.counts[2:] == [counter.counts[2]] * (len(counter.counts) - 2)
    for values in history.history.values():
        assert all(isinstance(v, float) for v in values)


def test_a_trained_model_is_freed_as_soon_as_it_is_deleted():
    # `model.history` and the compile(lr_scheduler=...) callback hold the model weakly: no
    # reference cycle keeps a deleted model (and its GPU memory) until a garbage collection.
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    y = x.sum(1, keepdims=True)

    def scheduler(optimizer):
        return torch.optim.lr_scheduler.StepLR(optimizer, 1)

    kfit.Model(nn.Linear(3, 1)).compile("sgd", "mse", device="cpu")  # first-use imports
    for options in ({}, {"lr_scheduler": scheduler}):
        model = kfit.Model(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)))
        model.compile("sgd", "mse", metrics=["mae"], device="cpu", **options)
        history = model.fit(x, y, epochs=2, validation_split=0.25, verbose=0)
        reference = weakref.ref(model)
        gc.disable()
        try:
            del model
            assert reference() is None
        finally:
            gc.enable()
        assert len(history.history["val_loss"]) == 2  # History keeps its data
        assert history.model is None


def test_a_copied_model_s_history_refers_to_the_copy():
    model = kfit.Model(nn.Linear(3, 1))
    model.compile("sgd", "mse", device="cpu")
    model.fit(np.ones((4, 3), "float32"), np.ones((4, 1), "float32"), verbose=0)
    assert model.history.model is model
    copied = copy.deepcopy(model)
    assert copied.history.model is copied
    assert copied.history.history == model.history.history
