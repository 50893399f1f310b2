"""kfit `fit()` against a hand-written PyTorch loop doing the same work, in one run.

Both sides train the same model from the same initial weights on the same data with the same
optimizer, shuffle every epoch by permutation indexing, accumulate the loss (weighted by batch
size) and the metric on the device, and read them once per epoch. kfit runs at `verbose=0`.
Runs alternate (fast loop, kfit, fast loop, kfit, ...), so each kfit run has a fast-loop run
next to it under the same machine conditions. The headline ratio is the median of these paired
ratios; the ratio of the best (minimum) times is printed beside it. On a shared machine single
runs vary by 10% or more, so both are needed to read a few-percent difference.

Usage:
    python benchmarks/overhead.py                 # both workloads, 21 pairs each
    python benchmarks/overhead.py --repeats 41 --workload small
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import kfit  # noqa: E402


@dataclass
class Workload:
    """One benchmark case: data, model, loss/metric pair, batch size, epochs."""

    name: str
    x: np.ndarray
    y: np.ndarray
    build: Callable[[], nn.Module]
    kind: str  # "regression" (mse + mae) or "classification" (sparse CE logits + accuracy)
    batch_size: int
    epochs: int


def small_regression() -> Workload:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1213, 13)).astype(np.float32)
    y = (x @ rng.normal(size=(13, 1)) + 0.1 * rng.normal(size=(1213, 1))).astype(np.float32)

    def build() -> nn.Module:
        return nn.Sequential(
            nn.Linear(13, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)
        )

    return Workload(
        "MLP 1213x13, batch 32, 20 epochs (mse + mae)", x, y, build, "regression", 32, 20
    )


def mnist_size() -> Workload:
    rng = np.random.default_rng(0)
    x = rng.random((48_000, 784), dtype=np.float32)
    y = (x @ rng.normal(size=(784, 10))).argmax(1).astype(np.int64)

    def build() -> nn.Module:
        return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))

    return Workload(
        "MLP 48000x784, batch 128, 2 epochs (sparse CE + accuracy)",
        x,
        y,
        build,
        "classification",
        128,
        2,
    )


def fresh_model(workload: Workload) -> nn.Module:
    torch.manual_seed(0)
    return workload.build()


def fast_loop(workload: Workload, on_epoch_end: Callable[[], None] | None = None) -> float:
    """The hand-written loop: permutation indexing, on-device sums, one read per epoch.

    `on_epoch_end`, if given, is called after each epoch's read (`memory.py` reads RSS there).
    """
    model = fresh_model(workload)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    x, y = torch.from_numpy(workload.x), torch.from_numpy(workload.y)
    n, batch_size = len(x), workload.batch_size
    start = time.perf_counter()
    for _ in range(workload.epochs):
        model.train()
        order = torch.randperm(n)
        loss_sum, metric_sum = torch.zeros(()), torch.zeros(())
        for begin in range(0, n, batch_size):
            index = order[begin : begin + batch_size]
            xb, yb = x[index], y[index]
            pred = model(xb)
            if workload.kind == "regression":
                loss = F.mse_loss(pred, yb)
            else:
                loss = F.cross_entropy(pred, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                loss_sum.add_(loss.detach(), alpha=len(index))
                if workload.kind == "regression":
                    metric_sum.add_((pred - yb).abs().sum())
                else:
                    metric_sum.add_((pred.argmax(1) == yb).sum())
        (loss_sum / n).item(), (metric_sum / n).item()  # the one read per epoch
        if on_epoch_end is not None:
            on_epoch_end()
    return time.perf_counter() - start


def kfit_fit(workload: Workload, jit_compile: bool = False) -> float:
    model = kfit.Model(fresh_model(workload))
    if workload.kind == "regression":
        loss, metrics = "mse", ["mae"]
    else:
        loss = kfit.losses.SparseCategoricalCrossentropy(from_logits=True)
        metrics = ["accuracy"]
    model.compile("rmsprop", loss, metrics=metrics, device="cpu", jit_compile=jit_compile)
    start = time.perf_counter()
    model.fit(
        workload.x, workload.y, batch_size=workload.batch_size, epochs=workload.epochs, verbose=0
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--workload", choices=["small", "mnist", "all"], default="all")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)"
    )
    parser.add_argument(
        "--jit", action="store_true", help="kfit with compile(jit_compile=True) (compiled once)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = {
        "small": [small_regression],
        "mnist": [mnist_size],
        "all": [small_regression, mnist_size],
    }[args.workload]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} "
        "alternating pairs; seconds are each side's best run"
        + ("; kfit with jit_compile=True" if args.jit else "")
    )
    print(f"{'workload':<60} {'fast loop':>10} {'kfit':>10} {'paired':>7} {'best':>7}")
    for make in chosen:
        workload = make()
        # Warm-up: allocators, first-call costs, and with --jit the compilation (its graphs
        # are shared by every later model, so the timed fits do not compile).
        fast_loop(workload), kfit_fit(workload, args.jit)
        fast_times, kfit_times = [], []
        for _ in range(args.repeats):
            fast_times.append(fast_loop(workload))
            kfit_times.append(kfit_fit(workload, args.jit))
        fast, ours = min(fast_times), min(kfit_times)
        paired = statistics.median(k / f for k, f in zip(kfit_times, fast_times, strict=True))
        print(f"{workload.name:<60} {fast:>10.3f} {ours:>10.3f} {paired:>7.3f} {ours / fast:>7.3f}")


if __name__ == "__main__":
    main()
