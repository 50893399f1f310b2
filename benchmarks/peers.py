"""kfit `fit()` against a hand-written loop and against peer libraries, one process per run.

Contenders (each one skipped with a note when its package is not installed):

- `fast`: the hand-written fast loop of `overhead.py`: data held as tensors, permutation
  indexing, loss (weighted by batch size) and metric summed on the device, one read per epoch.
- `dataloader`: the textbook loop: `DataLoader(TensorDataset(x, y), shuffle=True)`, and
  `loss.item()` and the metric's batch sum `.item()` added to Python floats every step.
- `kfit`: `kfit.Model(module).compile('rmsprop', loss, metrics=[metric]).fit(x, y, verbose=0)`.
- `keras`: Keras 3 on its torch backend: the same architecture built from `keras.layers`, the
  torch initial weights copied in (images stay channels-first, the layout torch uses natively),
  `compile(RMSprop(), loss, metrics=[metric]).fit(x, y, shuffle=True, verbose=0)`.
- `lightning`: a `LightningModule` whose `training_step` updates a torchmetrics metric and
  logs it and the loss with `self.log(..., on_step=False, on_epoch=True)`, trained by
  `Trainer(enable_progress_bar=False, logger=False, enable_checkpointing=False,
  enable_model_summary=False)` on a shuffling `DataLoader(TensorDataset)`; Lightning's info
  logging off.
- `poutyne`: `poutyne.Model(module, optimizer, loss, batch_metrics=[metric]).fit(x, y,
  verbose=False)`: poutyne reads the loss and the metric back every step and averages them.
- `skorch`: `NeuralNetRegressor`/`NeuralNetClassifier(train_split=None, verbose=0,
  iterator_train__shuffle=True)` plus `EpochScoring(metric, on_train=True)`: scikit-learn's
  scorer on the training predictions that skorch caches during the epoch. skorch's default
  callbacks stay on (per-step `loss.item()`, `PrintLog` still formats its table).
- `torchkeras`: `KerasModel(module, loss, metrics_dict={name: torchmetrics metric},
  optimizer).fit(loader, monitor='train_loss', plot=False)`, its progress bar switched off
  through its `EpochRunner` extension point. What torchkeras does that the others don't and
  cannot be turned off: gradient-norm clipping to 1.0 every step, `.item()` of the loss and of
  the metric's batch value every step, a checkpoint written whenever the epoch's training loss
  improves and the best one loaded back at the end of `fit`.

Every contender trains the same torch-built model (Keras: a copy) from the same initial weights
(seed 0) on the same data with RMSprop (lr 1e-3, rho 0.9, eps 1e-7: Keras's defaults), the same
batch size, shuffling every epoch, the same loss (mse; cross-entropy from logits), one metric per
epoch on the training data (mae; accuracy), no validation and nothing printed. Only the fit call
(the loop for the hand-written ones) is timed, after an untimed warm-up fit on a few batches in
the same process; imports, data, model, optimizer and trainer construction are outside it.

Each run of a contender on a workload is a fresh subprocess, so imports and the peak RSS
(`ru_maxrss`, which includes the data and torch itself) are its own; it times one or more fits
(`--fits`). Runs alternate: a round is `fast, c1, fast, c2, ..., cN, fast` (the contenders'
order rotates between rounds, `--repeats` rounds), so every contender's run sits between two
fast-loop runs, and its paired ratio is its median fit time over the mean of those two runs'
medians. The table gives each contender's median fit seconds and time per step, the median
of its paired ratios, the ratio of its best fit to the best fast-loop fit beside it, its peak
RSS and the time to import the framework (not counted in the fit).

Threads: one torch intra-op thread by default. On a shared 2-core machine two threads wait for
each other whenever another process holds a core, and runs then vary several-fold; pass
`--threads 2` (or 0 for torch's choice) on a quiet machine.

Usage:
    python benchmarks/peers.py                      # all four CPU workloads, default repeats
    python benchmarks/peers.py --workload small --repeats 7 --contenders kfit skorch
    python benchmarks/peers.py --check              # one run each: does every contender train?
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import logging
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]

CONTENDERS = (
    "fast",
    "dataloader",
    "kfit",
    "keras",
    "lightning",
    "poutyne",
    "skorch",
    "torchkeras",
)
# Modules a contender needs beyond torch; a contender whose modules are missing is skipped.
REQUIRES = {
    "kfit": ("torchmetrics", "tqdm"),
    "keras": ("keras",),
    "lightning": ("pytorch_lightning", "torchmetrics"),
    "poutyne": ("poutyne",),
    "skorch": ("skorch", "sklearn"),
    "torchkeras": ("torchkeras", "accelerate", "torchmetrics"),
}
CPU_WORKLOADS = ("small", "mnist", "cnn", "lstm")
# Default (rounds, timed fits per process), chosen to keep the whole
# default CPU run near ten minutes on a 2-core machine.
DEFAULT_REPEATS = {
    "small": (2, 2),
    "mnist": (1, 1),
    "cnn": (1, 1),
    "lstm": (1, 1),
    "resnet18": (1, 1),
}
WARMUP_BATCHES = 4


# --------------------------------------------------------------------------------- workloads
class SequenceClassifier(nn.Module):
    """LSTM over the sequence, linear head on its last output."""

    def __init__(self, features: int, hidden: int, classes: int):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class BasicBlock(nn.Module):
    """ResNet's two-convolution block; attribute names as torchvision's `BasicBlock`."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 inputs (3x3 stem, no max-pool), laid out as torchvision's."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        widths, cin = (64, 128, 256, 512), 64
        for i, width in enumerate(widths, start=1):
            stride = 1 if i == 1 else 2
            layer = nn.Sequential(BasicBlock(cin, width, stride), BasicBlock(width, width, 1))
            setattr(self, f"layer{i}", layer)
            cin = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18() -> nn.Module:
    """torchvision's ResNet-18 adapted to 32x32 inputs when it imports, else `ResNet18`.

    The two are the same network (same parameter names and shapes, same outputs for the same
    weights) with the same initialisation scheme.
    """
    try:
        import torchvision
    except Exception:  # absent, or built for another torch (its C ops fail to register)
        return ResNet18()
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


def _resnet18_source() -> str:
    try:
        import torchvision  # noqa: F401
    except Exception:
        return "peers.ResNet18"
    return "torchvision"


@dataclass
class Workload:
    """One benchmark case: data, model, loss/metric pair, batch size, epochs."""

    key: str
    label: str  # the model and data, e.g. "MLP 1213x13"
    x: np.ndarray
    y: np.ndarray
    build: Callable[[], nn.Module]
    kind: str  # "regression" (mse + mae) or "classification" (CE from logits + accuracy)
    batch_size: int
    epochs: int

    @property
    def name(self) -> str:
        work = "mse + mae" if self.kind == "regression" else "CE + accuracy"
        epochs = f"{self.epochs} epoch{'s' * (self.epochs > 1)}"
        return f"{self.label}, batch {self.batch_size}, {epochs} ({work})"

    @property
    def steps(self) -> int:
        return self.epochs * math.ceil(len(self.x) / self.batch_size)

    @property
    def classes(self) -> int:
        return int(self.y.max()) + 1 if self.kind == "classification" else 0


def _labels(
    features: np.ndarray, rng: np.random.Generator, center: float | np.ndarray = 0.0
) -> np.ndarray:
    """Learnable labels: the argmax of a fixed random projection of the centred features.

    Computed a block of rows at a time, so that making the labels does not raise the
    process's peak memory above what the data itself takes.
    """
    flat = features.reshape(len(features), -1)
    center = np.reshape(center, -1) if np.ndim(center) else center
    projection = rng.normal(size=(flat.shape[1], 10))
    blocks = [
        (block - center) @ projection for block in np.array_split(flat, -(-len(flat) // 4096))
    ]
    return np.concatenate(blocks).argmax(1).astype(np.int64)


def _images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.random((n, 3, 32, 32), dtype=np.float32)
    pooled = x.reshape(n, 3, 4, 8, 4, 8).mean((3, 5))  # 3x4x4 coarse image
    return x, _labels(pooled, rng, pooled.mean(0))


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def _cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
    )  # fmt: skip


def make_workload(key: str, smoke: bool = False) -> Workload:
    """The workload named `key`; `smoke` shrinks it to a few batches for testing the code."""
    rng = np.random.default_rng(0)
    if key == "small":
        n = 256 if smoke else 1213
        x = rng.normal(size=(n, 13)).astype(np.float32)
        y = (x @ rng.normal(size=(13, 1)) + 0.1 * rng.normal(size=(n, 1))).astype(np.float32)
        build = lambda: _mlp([13, 64, 64, 1])  # noqa: E731
        return Workload(key, f"MLP {n}x13", x, y, build, "regression", 32, 2 if smoke else 20)
    if key == "mnist":
        n = 512 if smoke else 48_000
        x = rng.random((n, 784), dtype=np.float32)
        build = lambda: _mlp([784, 128, 10])  # noqa: E731
        return Workload(key, f"MLP {n}x784", x, _labels(x, rng, 0.5), build, "classification",
                        128, 2)  # fmt: skip
    if key == "cnn":
        n = 256 if smoke else 10_000
        x, y = _images(n, rng)
        return Workload(key, f"CNN 2 conv, {n}x3x32x32", x, y, _cnn, "classification", 128, 1)
    if key == "lstm":
        n, length = (256, 10) if smoke else (8_000, 50)
        x = rng.normal(size=(n, length, 16)).astype(np.float32)
        build = lambda: SequenceClassifier(16, 64, 10)  # noqa: E731
        return Workload(key, f"LSTM 64, {n}x{length}x16", x, _labels(x.mean(1), rng), build,
                        "classification", 128, 1)  # fmt: skip
    if key == "resnet18":
        n = 64 if smoke else 10_000
        x, y = _images(n, rng)
        label = f"ResNet-18 ({_resnet18_source()}), {n}x3x32x32"
        return Workload(key, label, x, y, resnet18, "classification", 32 if smoke else 128, 1)
    raise ValueError(f"unknown workload {key!r}; expected one of {sorted(DEFAULT_REPEATS)}")


def fresh_model(workload: Workload) -> nn.Module:
    """The workload's model with the initial weights every contender starts from."""
    torch.manual_seed(0)
    return workload.build()


def _rmsprop(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)


def _loss_fn(workload: Workload) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return F.mse_loss if workload.kind == "regression" else F.cross_entropy


def _metric_sum(workload: Workload, pred: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    if workload.kind == "regression":
        return (pred - yb).abs().sum()
    return (pred.argmax(1) == yb).sum()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _torch_predict(module: nn.Module) -> Callable[[np.ndarray], torch.Tensor]:
    def predict(x: np.ndarray) -> torch.Tensor:
        device, training = next(module.parameters()).device, module.training
        module.eval()
        with torch.no_grad():
            parts = [module(torch.from_numpy(c).to(device)).cpu() for c in np.array_split(x, 64)]
        module.train(training)  # as it was: Lightning's fit keeps the mode it finds
        return torch.cat(parts)

    return predict


# A contender's setup builds everything (untimed) and returns the fit to time and a predictor
# (numpy inputs -> torch outputs on the CPU) used by --check.
Setup = tuple[Callable[[], Any], Callable[[np.ndarray], torch.Tensor]]


def setup_fast(
    w: Workload,
    device: str,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    compile_model: bool = False,
) -> Setup:
    """The hand-written loop; `compile_model=True` runs it around `torch.compile(model)`."""
    model = fresh_model(w).to(device)
    forward = torch.compile(model) if compile_model else model
    optimizer = _rmsprop(model)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    loss_fn, n, batch_size = _loss_fn(w), len(x), w.batch_size

    def fit() -> None:
        for _ in range(epochs):
            model.train()
            order = torch.randperm(n, device=device)
            loss_sum = torch.zeros((), device=device)
            metric_sum = torch.zeros((), device=device)
            for begin in range(0, n, batch_size):
                index = order[begin : begin + batch_size]
                xb, yb = xt[index], yt[index]
                pred = forward(xb)
                loss = loss_fn(pred, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    loss_sum.add_(loss.detach(), alpha=len(index))
                    metric_sum.add_(_metric_sum(w, pred, yb))
            (loss_sum / n).item(), (metric_sum / n).item()  # the one read (a sync) per epoch

    return fit, _torch_predict(model)


def setup_dataloader(w: Workload, device: str, x: np.ndarray, y: np.ndarray, epochs: int) -> Setup:
    from torch.utils.data import DataLoader, TensorDataset

    model = fresh_model(w).to(device)
    optimizer = _rmsprop(model)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        batch_size=w.batch_size,
        shuffle=True,
    )
    loss_fn = _loss_fn(w)

    def fit() -> None:
        for _ in range(epochs):
            model.train()
            total_loss = total_metric = 0.0
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                pred = model(xb)
                loss = loss_fn(pred, yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * len(xb)
                total_metric += _metric_sum(w, pred.detach(), yb).item()
            total_loss / len(x), total_metric / len(x)

    return fit, _torch_predict(model)


def setup_kfit(w: Workload, device: str, x: np.ndarray, y: np.ndarray, epochs: int) -> Setup:
    import kfit

    module = fresh_model(w)
    model = kfit.Model(module)
    if w.kind == "regression":
        model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"], device=device)
    else:
        model.compile(
            optimizer="rmsprop",
            loss=kfit.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            device=device,
        )

    def fit() -> None:
        model.fit(x, y, batch_size=w.batch_size, epochs=epochs, verbose=0)

    return fit, _torch_predict(module)


def _keras_apply(module: nn.Module, t: Any, keras: Any) -> Any:
    """Applies a Keras copy of `module` (with its weights) to the symbolic tensor `t`."""
    layers = keras.layers

    def with_weights(layer: Any, weights: list[torch.Tensor]) -> Any:
        out = layer(t)
        layer.set_weights([w.detach().cpu().numpy() for w in weights])
        return out

    if isinstance(module, nn.Sequential):
        for child in module:
            t = _keras_apply(child, t, keras)
        return t
    if isinstance(module, nn.Identity):
        return t
    if isinstance(module, nn.ReLU):
        return layers.ReLU()(t)
    if isinstance(module, nn.Flatten):
        return layers.Flatten()(t)  # no permutation: the tensor is already (C, H, W)
    if isinstance(module, nn.Linear):
        dense = layers.Dense(module.out_features, use_bias=module.bias is not None)
        return with_weights(dense, [module.weight.T, *([module.bias] * (module.bias is not None))])
    if isinstance(module, nn.Conv2d):
        if module.padding != (0, 0):
            t = layers.ZeroPadding2D(module.padding, data_format="channels_first")(t)
        conv = layers.Conv2D(
            module.out_channels,
            module.kernel_size,
            strides=module.stride,
            use_bias=module.bias is not None,
            data_format="channels_first",
        )
        weights = [module.weight.permute(2, 3, 1, 0)]
        return with_weights(conv, weights + [module.bias] * (module.bias is not None))
    if isinstance(module, nn.MaxPool2d):
        return layers.MaxPooling2D(module.kernel_size, module.stride, data_format="channels_first")(
            t
        )
    if isinstance(module, nn.BatchNorm2d):
        norm = layers.BatchNormalization(axis=1, momentum=1 - module.momentum, epsilon=module.eps)
        return with_weights(
            norm, [module.weight, module.bias, module.running_mean, module.running_var]
        )
    if isinstance(module, SequenceClassifier):
        lstm = module.lstm
        t = with_weights(
            layers.LSTM(lstm.hidden_size),
            [lstm.weight_ih_l0.T, lstm.weight_hh_l0.T, lstm.bias_ih_l0 + lstm.bias_hh_l0],
        )
        return _keras_apply(module.head, t, keras)
    if hasattr(module, "layer4"):  # ResNet (ours or torchvision's)
        for child in (module.conv1, module.bn1, module.relu, module.maxpool):
            t = _keras_apply(child, t, keras)
        for name in ("layer1", "layer2", "layer3", "layer4"):
            t = _keras_apply(getattr(module, name), t, keras)
        t = layers.GlobalAveragePooling2D(data_format="channels_first")(t)
        return _keras_apply(module.fc, t, keras)
    if hasattr(module, "conv2") and hasattr(module, "bn2"):  # ResNet's BasicBlock
        identity = t if module.downsample is None else _keras_apply(module.downsample, t, keras)
        out = t
        for child in (module.conv1, module.bn1, module.relu, module.conv2, module.bn2):
            out = _keras_apply(child, out, keras)
        return layers.ReLU()(layers.Add()([out, identity]))
    raise TypeError(f"no Keras equivalent written for {type(module).__name__}")


def setup_keras(w: Workload, device: str, x: np.ndarray, y: np.ndarray, epochs: int) -> Setup:
    os.environ["KERAS_BACKEND"] = "torch"
    import keras

    if keras.backend.backend() != "torch":
        raise RuntimeError(f"Keras runs on {keras.backend.backend()!r}, not torch")
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, _keras_apply(fresh_model(w), inputs, keras))
    optimizer = keras.optimizers.RMSprop(learning_rate=1e-3, rho=0.9, epsilon=1e-7)
    if w.kind == "regression":
        model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    keras.utils.set_random_seed(1)

    def fit() -> None:
        model.fit(x, y, batch_size=w.batch_size, epochs=epochs, shuffle=True, verbose=0)

    def predict(data: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(model.predict(data, batch_size=1024, verbose=0)))

    return fit, predict


def _loader(w: Workload, x: np.ndarray, y: np.ndarray) -> Any:
    from torch.utils.data import DataLoader, TensorDataset

    dataset = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    return DataLoader(dataset, batch_size=w.batch_size, shuffle=True)


def _torchmetric(w: Workload) -> Any:
    import torchmetrics

    if w.kind == "regression":
        return torchmetrics.MeanAbsoluteError()
    return torchmetrics.Accuracy(task="multiclass", num_classes=w.classes)


def setup_lightning(w: Workload, device: str, x: np.ndarray, y: np.ndarray, epochs: int) -> Setup:
    try:
        import lightning.pytorch as pl
    except ImportError:
        import pytorch_lightning as pl
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)

    metric_name = "mae" if w.kind == "regression" else "accuracy"
    loss_fn = _loss_fn(w)

    class Module(pl.LightningModule):
        def __init__(self, net: nn.Module):
            super().__init__()
            self.net = net
            self.metric = _torchmetric(w)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            xb, yb = batch
            pred = self.net(xb)
            loss = loss_fn(pred, yb)
            self.metric.update(pred, yb)
            self.log("loss", loss, on_step=False, on_epoch=True)
            self.log(metric_name, self.metric, on_step=False, on_epoch=True)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return _rmsprop(self)

    module = Module(fresh_model(w))
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="gpu" if device.startswith("cuda") else "cpu",
        devices=1,
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    loader = _loader(w, x, y)

    def fit() -> None:
        trainer.fit(module, train_dataloaders=loader)

    return fit, _torch_predict(module.net)


def setup_poutyne(w: Workload, device: str, x: np.ndarray, y: np.ndarray, epochs: int) -> Setup:
    import poutyne

    net = fresh_model(w)
    loss = "mse" if w.kind == "regression" else "cross_entropy"
    metric = "l1" if w.kind == "regression" else "accuracy"
    model = poutyne.Model(net, _rmsprop(net), loss, batch_metrics=[metric], device=device)

    def fit() -> None:
        model.fit(x, y, batch_size=w.batch_size, epochs=epochs, verbose=False)

    return fit, _torch_predict(net)


def setup_skorch(w: Workload, device: str, x: np.ndarray, y: np.ndarray, epochs: int) -> Setup:
    from skorch import NeuralNetClassifier, NeuralNetRegressor
    from skorch.callbacks import EpochScoring

    net_class, criterion, scoring, name = (
        (NeuralNetRegressor, nn.MSELoss, "neg_mean_absolute_error", "train_mae")
        if w.kind == "regression"
        else (NeuralNetClassifier, nn.CrossEntropyLoss, "accuracy", "train_acc")
    )
    module = fresh_model(w)
    net = net_class(
        module,  # an instance: skorch trains it as it is, initial weights included
        criterion=criterion,
        optimizer=torch.optim.RMSprop,
        lr=1e-3,
        optimizer__alpha=0.9,
        optimizer__eps=1e-7,
        batch_size=w.batch_size,
        max_epochs=epochs,
        train_split=None,
        iterator_train__shuffle=True,
        callbacks=[EpochScoring(scoring, lower_is_better=False, on_train=True, name=name)],
        verbose=0,
        device=device,
    )

    def fit() -> None:
        net.fit(x, y)

    return fit, _torch_predict(module)


def setup_torchkeras(w: Workload, device: str, x: np.ndarray, y: np.ndarray, epochs: int) -> Setup:
    from torchkeras import KerasModel

    class QuietEpochRunner(KerasModel.EpochRunner):
        """torchkeras's epoch loop with its tqdm bar disabled (`fit` has no such option)."""

        def __init__(self, step_runner: Any, quiet: bool = False):
            super().__init__(step_runner, quiet=True)

    class QuietKerasModel(KerasModel):
        EpochRunner = QuietEpochRunner

    net = fresh_model(w)
    loss = nn.MSELoss() if w.kind == "regression" else nn.CrossEntropyLoss()
    metric_name = "mae" if w.kind == "regression" else "acc"
    model = QuietKerasModel(
        net, loss_fn=loss, metrics_dict={metric_name: _torchmetric(w)}, optimizer=_rmsprop(net)
    )
    loader = _loader(w, x, y)
    checkpoints = tempfile.mkdtemp(prefix="peers_torchkeras_")

    def fit() -> None:
        model.fit(
            train_data=loader,
            epochs=epochs,
            ckpt_path=os.path.join(checkpoints, "checkpoint.pt"),
            patience=epochs + 1,
            monitor="train_loss",
            mode="min",
            plot=False,
            cpu=not device.startswith("cuda"),
        )

    return fit, _torch_predict(model.net)


SETUPS: dict[str, Callable[..., Setup]] = {
    "fast": setup_fast,
    "dataloader": setup_dataloader,
    "kfit": setup_kfit,
    "keras": setup_keras,
    "lightning": setup_lightning,
    "poutyne": setup_poutyne,
    "skorch": setup_skorch,
    "torchkeras": setup_torchkeras,
}
IMPORTS = {
    "kfit": ("kfit",),
    "keras": ("keras",),
    "lightning": ("pytorch_lightning",),
    "poutyne": ("poutyne",),
    "skorch": ("skorch",),
    "torchkeras": ("torchkeras", "accelerate", "torchmetrics"),
}


def available(contender: str) -> bool:
    """Whether the packages `contender` needs are installed."""
    return all(importlib.util.find_spec(m) is not None for m in REQUIRES.get(contender, ()))


def _full_loss(w: Workload, pred: torch.Tensor) -> float:
    return float(_loss_fn(w)(pred.float(), torch.from_numpy(w.y)))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def peak_rss_mib() -> float:
    """This process's peak resident memory, MiB.

    On Linux this is `VmHWM`, the high-water mark of the process's own address space:
    `getrusage(RUSAGE_SELF).ru_maxrss` of a child process also counts the parent's resident
    size when it forked (the kernel carries it across exec), which would hide the child's own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, else KiB
    return maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def child(
    contender: str, key: str, device: str, smoke: bool, check: bool, fits: int
) -> dict[str, Any]:
    """One contender on one workload in this (fresh) process: warm-up, then `fits` timed fits.

    Every timed fit starts from a freshly built model with the same initial weights.
    """
    if contender == "keras":
        os.environ["KERAS_BACKEND"] = "torch"
    w = make_workload(key, smoke)
    start = time.perf_counter()
    for module in IMPORTS.get(contender, ()):
        importlib.import_module(module)
    import_seconds = time.perf_counter() - start

    setup = SETUPS[contender]
    warm = min(len(w.x), WARMUP_BATCHES * w.batch_size)
    _seed_everything(2)
    fit, predict = setup(w, device, w.x[:warm], w.y[:warm], 1)
    fit()  # first-call costs: lazy imports, allocator, tracing, thread pools
    del fit, predict
    gc.collect()  # frees the previous model now, even one held in a reference cycle

    seconds = []
    for _ in range(fits):
        fit, predict = setup(w, device, w.x, w.y, w.epochs)
        initial_loss = _full_loss(w, predict(w.x)) if check else None
        _seed_everything(1)
        _sync(device)
        start = time.perf_counter()
        fit()
        _sync(device)
        seconds.append(time.perf_counter() - start)
        final_loss = _full_loss(w, predict(w.x)) if check else None
        del fit, predict
        gc.collect()
    return {
        "seconds": seconds,
        "import_seconds": import_seconds,
        "rss_mib": peak_rss_mib(),
        "workload": w.name,
        "steps": w.steps,
        "initial_loss": initial_loss,
        "final_loss": final_loss,
    }


# ------------------------------------------------------------------------------- the driver
def run_child(
    contender: str,
    key: str,
    device: str = "cpu",
    smoke: bool = False,
    check: bool = False,
    threads: int | None = None,
    fits: int = 1,
) -> dict[str, Any]:
    """Runs `child` in a fresh Python process and returns its measurements."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child", contender, "--workload", key, "--device", device,
            "--fits", str(fits), "--result", str(result),
        ]  # fmt: skip
        command += ["--smoke"] * smoke + ["--check"] * check
        command += ["--threads", str(threads or 0)]
        env = dict(os.environ, KERAS_BACKEND="torch")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not result.exists():
            raise RuntimeError(
                f"{contender} on {key} failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
            )
        return json.loads(result.read_text())


@dataclass
class Row:
    """One contender's measurements on one workload."""

    contender: str
    seconds: list[float]  # every timed fit
    paired: list[float]  # each process's median fit over its fast-loop neighbours' (mean)
    fast_seconds: list[float]  # every timed fit of those neighbouring fast-loop processes
    rss_mib: list[float]
    import_seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def paired_ratio(self) -> float:
        return statistics.median(self.paired)

    @property
    def best_ratio(self) -> float:
        return min(self.seconds) / min(self.fast_seconds)


@dataclass
class Table:
    """A workload's results: its description, steps per fit, and one row per contender."""

    workload: str
    steps: int
    rows: list[Row]


def benchmark(
    key: str,
    contenders: list[str],
    repeats: int,
    fits: int,
    device: str = "cpu",
    smoke: bool = False,
    threads: int | None = None,
) -> Table:
    """Fresh processes alternating fast loop / contender for one workload, `repeats` rounds.

    A round runs `fast, c1, fast, c2, ..., fast, cN, fast` (the contenders' order rotates from
    round to round), so every contender's process sits between two fast-loop processes; its
    paired ratio is its median fit over the mean of theirs. Each process times `fits` fits
    after its warm-up. The workload's data is made only in the child processes.
    """
    others = [c for c in contenders if c != "fast"]
    rows = {c: Row(c, [], [], [], [], []) for c in ["fast", *others]}
    table = Table("", 0, list(rows.values()))

    def run(contender: str) -> list[float]:
        got = run_child(contender, key, device, smoke, threads=threads, fits=fits)
        table.workload, table.steps = got["workload"], got["steps"]
        row = rows[contender]
        row.seconds += got["seconds"]
        row.rss_mib.append(got["rss_mib"])
        row.import_seconds.append(got["import_seconds"])
        return got["seconds"]

    before = run("fast")
    for repeat in range(repeats):
        shift = repeat % len(others) if others else 0
        for contender in others[shift:] + others[:shift]:
            seconds = run(contender)
            after = run("fast")
            fast_median = (statistics.median(before) + statistics.median(after)) / 2
            rows[contender].paired.append(statistics.median(seconds) / fast_median)
            rows[contender].fast_seconds += before + after
            before = after
    fast = rows["fast"]
    fast.paired, fast.fast_seconds = [1.0], list(fast.seconds)
    return table


def format_table(table: Table, device: str) -> str:
    """The workload's results as a markdown table."""
    lines = [
        f"{table.workload} on {device}, {table.steps} steps",
        "",
        "| contender | fit s (median) | ms/step | paired ratio | best ratio | RSS MiB | import s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table.rows:
        lines.append(
            f"| {r.contender} | {r.median:.3f} | {1000 * r.median / table.steps:.2f} "
            f"| {r.paired_ratio:.2f} | {r.best_ratio:.2f} | {statistics.median(r.rss_mib):.0f} "
            f"| {statistics.median(r.import_seconds):.2f} |"
        )
    return "\n".join(lines)


def check(keys: list[str], contenders: list[str], device: str, smoke: bool, threads: int | None):
    """One run of each contender: prints initial and final full-data loss; False if one fails."""
    ok = True
    for key in keys:
        for i, contender in enumerate(contenders):
            got = run_child(contender, key, device, smoke, check=True, threads=threads)
            if i == 0:
                print(got["workload"])
            trained = got["final_loss"] < got["initial_loss"]
            ok &= trained
            print(
                f"  {contender:<11} initial loss {got['initial_loss']:.5f}  final loss "
                f"{got['final_loss']:.5f}  {'trained' if trained else 'DID NOT TRAIN'}  "
                f"fit {got['seconds'][0]:.2f} s  peak RSS {got['rss_mib']:.0f} MiB",
                flush=True,
            )
    return ok


def parse_contenders(requested: list[str] | None) -> list[str]:
    """The requested (default: all) contenders that are installed, `fast` always first."""
    chosen = requested or list(CONTENDERS)
    missing = [c for c in chosen if not available(c)]
    for c in missing:
        print(f"skipping {c}: needs {', '.join(REQUIRES[c])}", file=sys.stderr)
    return ["fast", *[c for c in chosen if c != "fast" and c not in missing]]


def machine_line(device: str, threads: int | None) -> str:
    """Versions, threads and (on Linux) load averages, for the record."""
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load averages {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return (
        f"torch {torch.__version__}, Python {sys.version.split()[0]}, device {device}, "
        f"{threads or torch.get_num_threads()} threads, {os.cpu_count()} CPUs{load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workload", choices=[*DEFAULT_REPEATS, "all"], default="all")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default: table)")
    parser.add_argument(
        "--fits", type=int, default=None, help="timed fits per process (default: table)"
    )
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=None)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (default 1; 0: torch's)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny data: tests the code paths")
    parser.add_argument("--check", action="store_true", help="does every contender train?")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        got = child(args.child, args.workload, args.device, args.smoke, args.check, args.fits)
        Path(args.result).write_text(json.dumps(got))
        return

    keys = list(CPU_WORKLOADS) if args.workload == "all" else [args.workload]
    contenders = parse_contenders(args.contenders)
    print(machine_line(args.device, args.threads))
    if args.check:
        sys.exit(0 if check(keys, contenders, args.device, args.smoke, args.threads) else 1)
    for key in keys:
        repeats, fits = DEFAULT_REPEATS[key]
        repeats, fits = args.repeats or repeats, args.fits or fits
        table = benchmark(key, contenders, repeats, fits, args.device, args.smoke, args.threads)
        print(
            f"\n{repeats} round(s), {fits} timed fit(s) per process; "
            + machine_line(args.device, args.threads)
        )
        print(format_table(table, args.device), flush=True)


if __name__ == "__main__":
    main()
