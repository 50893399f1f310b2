"""`compile(jit_compile=True)` against eager and compiled hand-written loops, in one run.

Four contenders train the same model from the same weights with the same optimizer (RMSprop)
and the same per-epoch work (`peers.py`'s fast loop: permutation indexing on the device, loss
and metric summed on the device, one read per epoch):

- `loop`: the hand-written eager loop (`peers.setup_fast`);
- `loop compiled`: the same loop around `torch.compile(model)` (forward and backward compiled,
  the optimizer eager), the usual way to compile a hand-written loop;
- `kfit`: `fit()` eagerly;
- `kfit jit`: `fit()` with `compile(jit_compile=True)` (or `"reduce-overhead"` with `--mode`),
  the whole training step compiled (`kfit.training.jit`).

Every library and `torch._dynamo` are imported before any clock starts. Each contender is set
up once and fitted once untimed (the warm-up, which compiles: its extra time over a timed fit
is the compile column, and kfit's own measure `model.jit_compile_seconds` is printed beside it);
then rounds alternate the contenders (loop, loop compiled, kfit, kfit jit, loop, ...), and each
ratio is the median over rounds of the contender's fit time over the loop's in the same round.

Usage:
    python benchmarks/jit_step.py --rounds 7 --threads 1           # CPU, all four workloads
    python benchmarks/jit_step.py --workload mnist --rounds 3
    python benchmarks/jit_step.py --device cuda --mode reduce-overhead   # (gpu.py --jit)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch._dynamo  # noqa: F401 - imported before the clock, as kfit jit and compile need it

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import peers  # noqa: E402

import kfit  # noqa: E402

WORKLOADS = ("small", "mnist", "cnn", "lstm")
CONTENDERS = ("loop", "loop compiled", "kfit", "kfit jit")
# Samples kept per workload (the CNN and the LSTM are cut to keep a CPU run short).
MAX_SAMPLES = {"small": None, "mnist": None, "cnn": 2560, "lstm": 2560}


def setup_kfit(w: peers.Workload, device: str, x, y, epochs: int, jit_compile: Any = False):
    model = kfit.Model(peers.fresh_model(w))
    if w.kind == "regression":
        loss, metrics = "mse", ["mae"]
    else:
        loss, metrics = kfit.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"]
    model.compile("rmsprop", loss, metrics=metrics, device=device, jit_compile=jit_compile)

    def fit() -> None:
        model.fit(x, y, batch_size=w.batch_size, epochs=epochs, verbose=0)

    return fit, model


def timed(fit: Callable[[], None], device: str) -> float:
    peers._sync(device)
    start = time.perf_counter()
    fit()
    peers._sync(device)
    return time.perf_counter() - start


def run_workload(
    key: str, device: str, rounds: int, mode: str | None, smoke: bool = False
) -> list[str]:
    """Times the four contenders on workload `key`; returns the table's lines."""
    w = peers.make_workload(key, smoke=smoke)
    cut = None if smoke else MAX_SAMPLES[key]
    x, y = (w.x[:cut], w.y[:cut]) if cut else (w.x, w.y)
    w.label = w.label.replace(f"{len(w.x)}x", f"{len(x)}x")
    w.x, w.y = x, y
    setups = {
        "loop": lambda: peers.setup_fast(w, device, x, y, w.epochs),
        "loop compiled": lambda: peers.setup_fast(w, device, x, y, w.epochs, compile_model=True),
        "kfit": lambda: setup_kfit(w, device, x, y, w.epochs),
        "kfit jit": lambda: setup_kfit(w, device, x, y, w.epochs, mode or True),
    }
    fits, warm_up, notes = {}, {}, {}
    for name in CONTENDERS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit, handle = setups[name]()
            warm_up[name] = timed(fit, device)  # compiles, for the compiled contenders
        fits[name] = fit
        if name == "kfit jit":
            jit = handle.compile_state.jit
            whole = jit is not None and jit.whole_step
            notes[name] = f"jit_compile_seconds {handle.jit_compile_seconds:.1f}; " + (
                "whole step" if whole else "fallback: forward and loss compiled"
            )
            fallback = [str(c.message) for c in caught if "whole training step" in str(c.message)]
            if fallback:
                notes[name] += f" ({fallback[0][:90]}...)"
    times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for _ in range(rounds):
        for name in CONTENDERS:
            times[name].append(timed(fits[name], device))
    steps = w.steps
    lines = [f"{w.name}, {steps} steps per fit, {rounds} rounds"]
    lines.append(
        f"  {'contender':<15} {'median s':>9} {'ms/step':>8} {'x loop':>7} {'best x':>7} "
        f"{'compile s':>9}"
    )
    loop_best = min(times["loop"])
    for name in CONTENDERS:
        median = statistics.median(times[name])
        paired = statistics.median(
            t / base for t, base in zip(times[name], times["loop"], strict=True)
        )
        compile_s = max(warm_up[name] - median, 0.0)
        lines.append(
            f"  {name:<15} {median:>9.3f} {1000 * median / steps:>8.3f} {paired:>7.3f} "
            f"{min(times[name]) / loop_best:>7.3f} {compile_s:>9.1f}"
        )
    lines += [f"  {name}: {note}" for name, note in notes.items()]
    return lines


class _NoHostSyncInSteps(kfit.callbacks.Callback):
    """Any host-device sync from the epoch's first step to its last raises (CUDA)."""

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        if batch == 0:
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if batch == self.params["steps"] - 1:
            torch.cuda.set_sync_debug_mode("default")


def check_no_host_sync(key: str, device: str, mode: Any, smoke: bool = False) -> str:
    """Trains a `jit_compile=mode` model for an epoch with syncs raising; says how it went."""
    w = peers.make_workload(key, smoke=smoke)
    cut = None if smoke else MAX_SAMPLES[key]
    x, y = (w.x[:cut], w.y[:cut]) if cut else (w.x, w.y)
    fit, model = setup_kfit(w, device, x, y, 1, mode)
    fit()  # compiles
    steps = -(-len(x) // w.batch_size)
    try:
        model.fit(
            x, y, batch_size=w.batch_size, epochs=1, verbose=0, callbacks=[_NoHostSyncInSteps()]
        )
    except RuntimeError as err:
        return f"{key}, jit_compile={mode!r}: a host sync inside the epoch: {err}"
    finally:
        torch.cuda.set_sync_debug_mode("default")
    whole = "whole step" if model.compile_state.jit.whole_step else "fallback"
    return f"{key}, jit_compile={mode!r} ({whole}): 0 host syncs over {steps} steps"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--mode", choices=["reduce-overhead"], default=None, help="kfit's jit_compile value"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    keys = WORKLOADS if args.workload == "all" else (args.workload,)
    print(
        f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads; "
        f"x loop: median of per-round ratios to the eager loop; compile s: warm-up fit minus "
        f"median fit"
    )
    for key in keys:
        print("\n".join(run_workload(key, args.device, args.rounds, args.mode)), flush=True)


if __name__ == "__main__":
    main()
