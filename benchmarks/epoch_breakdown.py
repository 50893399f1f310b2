"""Where kfit's per-epoch cost goes, against the hand-written loop, epoch by epoch.

Single epochs are interleaved (fast loop, then each variant) many times, and each variant is
reported as the median of its ratios to the adjacent fast-loop epoch. The variants swap one
part of kfit into the hand-written loop at a time:

- `kfit data`: kfit's batching (`ArrayData.batches`), the rest hand-written;
- `kfit step, own update`: kfit's forward and compiled loss, the loop's own metric update;
- `kfit step`: `Model.train_step` (forward, loss, backward, step, metric update);
- `kfit epoch`: kfit's whole epoch loop (`_run_epoch`) with its batching and one read.

Usage:
    python benchmarks/epoch_breakdown.py --pairs 150
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import overhead  # noqa: E402

import kfit  # noqa: E402
from kfit.callbacks.callback_list import CallbackList  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    workload = overhead.small_regression()
    x, y = torch.from_numpy(workload.x), torch.from_numpy(workload.y)
    n, batch_size = len(x), workload.batch_size

    model = kfit.Model(overhead.fresh_model(workload))
    model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"], device="cpu")
    model.fit(workload.x, workload.y, epochs=1, verbose=0)  # settles metrics, warms up
    data = kfit.data.make_data(
        workload.x, workload.y, None, torch.float32, batch_size=batch_size, shuffle=True
    )
    no_callbacks = CallbackList([], model, {})
    module = overhead.fresh_model(workload)
    optimizer = torch.optim.RMSprop(module.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)

    def hand_written_step(net, opt, forward, loss_fn, xb, yb, sums):
        pred = forward(xb)
        loss = loss_fn(pred, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            sums[0].add_(loss.detach(), alpha=len(xb))
            sums[1].add_((pred - yb).abs().sum())

    def permuted_batches():
        order = torch.randperm(n)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            yield x[index], y[index]

    def run(batches, step):
        sums = [torch.zeros(()), torch.zeros(())]
        for xb, yb, *_ in batches:
            step(xb, yb, sums)
        (sums[0] / n).item(), (sums[1] / n).item()

    def fast_loop():
        module.train()
        run(
            permuted_batches(),
            lambda xb, yb, sums: hand_written_step(
                module, optimizer, module, F.mse_loss, xb, yb, sums
            ),
        )

    def kfit_data():
        module.train()
        run(
            data.batches(batch_size, True, model.device),
            lambda xb, yb, sums: hand_written_step(
                module, optimizer, module, F.mse_loss, xb, yb, sums
            ),
        )

    def kfit_step_own_update():
        model.train()
        run(
            permuted_batches(),
            lambda xb, yb, sums: hand_written_step(
                model,
                model.optimizer,
                model.call_forward,
                lambda pred, target: model.compute_loss(xb, target, pred, None),
                xb,
                yb,
                sums,
            ),
        )

    def kfit_step():
        model.reset_metrics()
        model.train()
        for xb, yb in permuted_batches():
            model.train_step((xb, yb, None))
        model.get_metrics_result()

    def kfit_epoch():
        model.reset_metrics()
        model.train()
        model._run_epoch(
            data.batches(batch_size, True, model.device), no_callbacks, "train", model.train_step
        )
        model.get_metrics_result()

    variants = {
        "kfit data": kfit_data,
        "kfit step, own update": kfit_step_own_update,
        "kfit step": kfit_step,
        "kfit epoch": kfit_epoch,
    }
    ratios: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.pairs):
        for name, variant in variants.items():
            start = time.perf_counter()
            fast_loop()
            fast = time.perf_counter() - start
            start = time.perf_counter()
            variant()
            ratios[name].append((time.perf_counter() - start) / fast)
    print(f"{workload.name}; {args.pairs} interleaved epoch pairs, {args.threads} thread(s)")
    for name, values in ratios.items():
        print(f"{name:<24} median ratio to the fast loop {statistics.median(values):.3f}")


if __name__ == "__main__":
    main()
