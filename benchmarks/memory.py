"""Memory that `fit()` costs: kfit against the hand-written fast loop, apart from imports.

`peers.py` reports each contender's peak RSS, which includes its imports (kfit's torchmetrics
brings scipy.signal and matplotlib). Here both contenders import torch *and* kfit, so the
import footprint is the same on both sides, and the numbers that matter are measured around
the fit alone.

Each run is a fresh process (`--child CONTENDER WORKLOAD`) that, on one torch thread:

1. imports torch and kfit (through `overhead.py`) and torch._dynamo (which the first
   `torch.optim` optimizer imports, with sympy, in both contenders: ~66 MiB that is import
   footprint, not training), and records RSS (`VmRSS`);
2. builds the workload's data (`overhead.py`'s workloads) and records RSS "before fit";
3. records the peak so far (`VmHWM`: imports and building the data; the MNIST-size targets
   are computed through a float64 copy of `x`, ~290 MiB above the data's final RSS), then
   resets the kernel's high-water mark (writing 5 to `/proc/self/clear_refs`; this resets
   `getrusage(RUSAGE_SELF).ru_maxrss` too), so the peak read after the fit is the fit's own;
4. runs one fit: `overhead.kfit_fit` or a copy of `overhead.fast_loop` with one hook per
   epoch; both build the model from seed 0 inside the fit function. RSS is read at the end
   of every epoch (kfit: a `Callback.on_epoch_end`; kfit's `fit` gets it through a subclass
   of `kfit.Model` put in place for this process only);
5. reads the peak during the fit (`VmHWM`; `ru_maxrss` where there is no /proc) and RSS
   after the fit, and prints one JSON line.

The table gives, per workload and contender, the median over `--repeats` processes of: RSS
after imports, RSS before the fit (imports + data), the peak before the fit (imports and
data), the peak during the fit, the training peak (peak during the fit minus RSS before it),
RSS after the fit, the anonymous part of what the fit added (`RssAnon` after minus before:
the rest is libtorch's code, paged in by the first fit of a process) and the growth of RSS
from the end of the first epoch to the end of the last; then the kfit/fast ratios of the peak
and of the training peak. Once, in other fresh processes: RSS after `import torch`,
`import torchmetrics`, `import kfit` and `import torch._dynamo`, and each import's time.

Usage:
    python benchmarks/memory.py                    # both workloads, 3 processes each
    python benchmarks/memory.py --workload mnist --repeats 5 --epochs 6
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Nothing heavy is imported at module level: the import-footprint child measures the imports.
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKLOADS = {"small": "small_regression", "mnist": "mnist_size"}
CONTENDERS = ("fast", "kfit")
MIB = 1024


def _status_kib(field: str) -> int | None:
    """A `kB` field of /proc/self/status (`VmRSS`, `VmHWM`), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mib() -> float:
    """This process's resident memory now, MiB."""
    kib = _status_kib("VmRSS")
    if kib is None:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    return kib / MIB


def _reset_peak() -> bool:
    """Resets `VmHWM` to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _maxrss_mib() -> float:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, else KiB
    return maxrss / (2**20 if sys.platform == "darwin" else MIB)


# ------------------------------------------------------------------------------ the children
def fast_loop_traced(workload: Any, on_epoch_end: Callable[[], None]) -> float:
    """`overhead.fast_loop` with `on_epoch_end()` after each epoch's read."""
    import overhead

    return overhead.fast_loop(workload, on_epoch_end)


def kfit_fit_traced(workload: Any, on_epoch_end: Callable[[], None]) -> float:
    """`overhead.kfit_fit` as it is, with `on_epoch_end()` called by a kfit callback."""
    from unittest import mock

    import overhead

    import kfit

    class EpochHook(kfit.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            on_epoch_end()

    class TracedModel(kfit.Model):
        def fit(self, *args: Any, **kwargs: Any) -> Any:
            return super().fit(*args, callbacks=[EpochHook()], **kwargs)

    with mock.patch.object(overhead.kfit, "Model", TracedModel):
        return overhead.kfit_fit(workload)


def train_child(contender: str, key: str, epochs: int | None) -> dict[str, Any]:
    """One fit of `contender` on workload `key` in this (fresh) process; RSS around it."""
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(REPO))
    import overhead
    import torch

    # The first torch.optim optimizer imports torch._dynamo (and sympy: ~66 MiB) in either
    # contender; imported here, it counts as import footprint, not as memory the fit uses.
    import torch._dynamo  # noqa: F401

    import kfit  # noqa: F401  (both contenders carry kfit's import footprint)

    torch.set_num_threads(1)
    rss_imports = rss_mib()
    workload = getattr(overhead, WORKLOADS[key])()
    if epochs:
        name = workload.name.replace(f"{workload.epochs} epochs", f"{epochs} epochs")
        workload = dataclasses.replace(workload, name=name, epochs=epochs)
    gc.collect()
    rss_before = rss_mib()
    modules_before = set(sys.modules)
    anon_before = _status_kib("RssAnon")
    setup_hwm = _status_kib("VmHWM")
    peak_reset = _reset_peak()

    epoch_rss: list[float] = []
    fit = fast_loop_traced if contender == "fast" else kfit_fit_traced
    seconds = fit(workload, lambda: epoch_rss.append(rss_mib()))

    hwm = _status_kib("VmHWM")
    peak = hwm / MIB if hwm is not None and peak_reset else _maxrss_mib()
    new_modules = sorted({m.split(".")[0] for m in set(sys.modules) - modules_before})
    gc.collect()
    anon_after = _status_kib("RssAnon")
    return {
        "workload": workload.name,
        "epochs": workload.epochs,
        "seconds": seconds,
        "rss_imports": rss_imports,
        "rss_before": rss_before,
        "peak": peak,
        "peak_is_fit_only": hwm is not None and peak_reset,
        "setup_peak": setup_hwm / MIB if setup_hwm is not None else float("nan"),
        "ru_maxrss": _maxrss_mib(),
        "rss_after": rss_mib(),
        # Anonymous memory (heap, tensors) kept after the fit; the rest of the growth is
        # file-backed: libtorch's code pages first touched by the fit, once per process.
        "anon_growth": (anon_after - anon_before) / MIB
        if anon_after is not None and anon_before is not None
        else float("nan"),
        "epoch_rss": epoch_rss,
        "modules_imported_during_fit": new_modules,
    }


def imports_child(with_torchmetrics: bool) -> dict[str, Any]:
    """RSS and time of `import torch` then (optionally `import torchmetrics`, then) kfit."""
    sys.path.insert(0, str(REPO))
    out: dict[str, Any] = {"python": rss_mib()}
    steps = ["torch"] + ["torchmetrics"] * with_torchmetrics + ["kfit", "torch._dynamo"]
    for name in steps:
        start = time.perf_counter()
        __import__(name)
        out[f"{name}_seconds"] = time.perf_counter() - start
        out[name] = rss_mib()
    heavy = ("scipy", "matplotlib", "pandas", "sklearn", "tqdm", "torchmetrics")
    out["heavy_modules"] = [m for m in heavy if m in sys.modules]
    out["kfit_file"] = sys.modules["kfit"].__file__
    return out


# ------------------------------------------------------------------------------ the driver
def run_child(args: list[str]) -> dict[str, Any]:
    """Runs this script with `args` in a fresh Python process; returns its JSON line."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median(runs: list[dict[str, Any]], key: str | Callable[[dict[str, Any]], float]) -> float:
    get = key if callable(key) else (lambda run: run[key])
    return statistics.median(get(run) for run in runs)


def _growth(run: dict[str, Any]) -> float:
    return run["epoch_rss"][-1] - run["epoch_rss"][0]


def _training_peak(run: dict[str, Any]) -> float:
    return run["peak"] - run["rss_before"]


def report_imports(repeats: int) -> None:
    plain = [run_child(["--child-imports"]) for _ in range(repeats)]
    split = [run_child(["--child-imports", "--torchmetrics"]) for _ in range(repeats)]
    print(f"Import footprint (fresh processes, median of {repeats}; {plain[0]['kfit_file']})")
    print(f"  RSS bare python                      {_median(plain, 'python'):7.1f} MiB")
    print(
        f"  RSS after import torch               {_median(plain, 'torch'):7.1f} MiB"
        f"   ({_median(plain, 'torch_seconds'):.2f} s)"
    )
    print(
        f"  RSS after import torch, kfit         {_median(plain, 'kfit'):7.1f} MiB"
        f"   (+{_median(plain, lambda r: r['kfit'] - r['torch']):.1f} MiB, kfit import "
        f"{_median(plain, 'kfit_seconds'):.2f} s)"
    )
    print(
        f"  of which import torchmetrics         "
        f"+{_median(split, lambda r: r['torchmetrics'] - r['torch']):.1f} MiB"
        f"   ({_median(split, 'torchmetrics_seconds'):.2f} s); kfit after it "
        f"+{_median(split, lambda r: r['kfit'] - r['torchmetrics']):.1f} MiB"
        f" ({_median(split, 'kfit_seconds'):.2f} s)"
    )
    print(
        f"  then import torch._dynamo            "
        f"+{_median(plain, lambda r: r['torch._dynamo'] - r['kfit']):.1f} MiB"
        f"   ({_median(plain, 'torch._dynamo_seconds'):.2f} s; the first torch.optim "
        "optimizer imports it, so the children import it before the fit)"
    )
    print(f"  loaded by import kfit: {', '.join(plain[0]['heavy_modules'])}")
    print()


def report_training(keys: list[str], repeats: int, epochs: int | None) -> None:
    epochs_args = ["--epochs", str(epochs)] if epochs else []
    columns = ("imports", "before", "setup pk", "peak", "train pk", "after", "anon +", "growth")
    print(
        f"Training memory, MiB (fresh process per run, 1 torch thread, median of {repeats}; "
        "'before' = imports + data;\n'setup pk' = peak before the fit; 'peak' = peak during the "
        "fit; 'train pk' = peak - before;\n'anon +' = anonymous RSS after the fit - before (the "
        "rest of 'after - before' is libtorch code paged in); 'growth' = RSS at end of last "
        "epoch - end of first)"
    )
    print(f"{'workload':<58} {'':<5}" + "".join(f"{c:>9}" for c in columns))
    for key in keys:
        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in CONTENDERS}
        for _ in range(repeats):  # alternate, so both sides see the same machine conditions
            for contender in CONTENDERS:
                runs[contender].append(run_child(["--child", contender, key, *epochs_args]))
        for contender in CONTENDERS:
            r = runs[contender]
            values = (
                _median(r, "rss_imports"),
                _median(r, "rss_before"),
                _median(r, "setup_peak"),
                _median(r, "peak"),
                _median(r, _training_peak),
                _median(r, "rss_after"),
                _median(r, "anon_growth"),
                _median(r, _growth),
            )
            print(f"{r[0]['workload']:<58} {contender:<5}" + "".join(f"{v:>9.1f}" for v in values))
        fast, ours = runs["fast"], runs["kfit"]
        peak_ratio = _median(ours, "peak") / _median(fast, "peak")
        train_ratio = _median(ours, _training_peak) / _median(fast, _training_peak)
        extra = _median(ours, _training_peak) - _median(fast, _training_peak)
        print(
            f"  kfit/fast: peak {peak_ratio:.3f}, training peak {train_ratio:.3f} "
            f"({extra:+.1f} MiB)"
        )
        if not ours[0]["peak_is_fit_only"]:
            print("  (VmHWM could not be reset: 'peak' is the whole process's)")
        for contender in CONTENDERS:
            series = ", ".join(f"{v:.1f}" for v in runs[contender][0]["epoch_rss"])
            modules = ", ".join(runs[contender][0]["modules_imported_during_fit"]) or "none"
            print(f"  {contender} RSS at each epoch end (run 1): {series}")
            print(f"  {contender} packages first imported during the fit: {modules}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per cell")
    parser.add_argument("--workload", choices=["small", "mnist", "all"], default="all")
    parser.add_argument("--epochs", type=int, default=None, help="override workload epochs")
    parser.add_argument("--no-imports", action="store_true", help="skip the import footprint")
    parser.add_argument(
        "--child", nargs=2, metavar=("CONTENDER", "WORKLOAD"), help=argparse.SUPPRESS
    )
    parser.add_argument("--child-imports", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--torchmetrics", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        contender, key = args.child
        if contender not in CONTENDERS or key not in WORKLOADS:
            parser.error(f"--child takes one of {CONTENDERS} and one of {list(WORKLOADS)}")
        print(json.dumps(train_child(contender, key, args.epochs)))
        return
    if args.child_imports:
        print(json.dumps(imports_child(args.torchmetrics)))
        return
    if not args.no_imports:
        report_imports(args.repeats)
    keys = list(WORKLOADS) if args.workload == "all" else [args.workload]
    report_training(keys, args.repeats, args.epochs)


if __name__ == "__main__":
    main()
