"""kfit `fit()` against the hand-written loops and peer libraries on a CUDA GPU.

The contenders, the work they do and the method are `peers.py`'s (read its docstring): every
run of a contender on a workload is a fresh process that warms up and then times its fits, each
contender's process is paired with an adjacent fast-loop process, and the table gives median
fit time, time per step, the median paired ratio to the fast loop and the ratio of best times.
Here the clock is read after `torch.cuda.synchronize()`, so queued GPU work is counted.

The fast loop keeps the whole training set on the GPU and gathers batches there; the
`DataLoader` loop, Lightning, skorch, poutyne and torchkeras copy every batch from host memory
(their usual way), and kfit and Keras do what their `fit(x, y)` does with host arrays. Peers
that are not installed are skipped.

Workloads: the MNIST-size MLP, the small CNN, the LSTM (all as in `peers.py`) and a ResNet-18
for 32x32 inputs (torchvision's with a 3x3 stem and no max-pool when torchvision is installed,
otherwise `peers.ResNet18`, the same network).

Usage:
    python benchmarks/gpu.py                          # all four workloads
    python benchmarks/gpu.py --workload resnet18 --repeats 5 --contenders kfit lightning
    python benchmarks/gpu.py --check                  # does every contender train?
    python benchmarks/gpu.py --device cpu --smoke     # tiny data: tests the code without a GPU
    python benchmarks/gpu.py --jit                    # kfit's compiled step (`jit_step.py`)

`--jit` runs `jit_step.py`'s four contenders (eager loop, `torch.compile`d loop, kfit, kfit
with `jit_compile="reduce-overhead"`) on the small MLP, the MNIST-size MLP, the small CNN and the
LSTM, in one process and well under five minutes, then trains `jit_compile=True` and
`"reduce-overhead"` models for an epoch under `torch.cuda.set_sync_debug_mode("error")`: 0
host syncs per step, or the sync that raised.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

GPU_WORKLOADS = ("mnist", "cnn", "lstm", "resnet18")
# (rounds, timed fits per process)
DEFAULT_REPEATS = {"mnist": (3, 3), "cnn": (3, 3), "lstm": (3, 3), "resnet18": (3, 2)}


def device_line(device: str) -> str:
    """The GPU's name and the CUDA/cuDNN versions torch was built with."""
    if not device.startswith("cuda"):
        return f"device {device} (not a GPU: a test of the code paths only)"
    index = torch.device(device).index or 0
    return (
        f"{torch.cuda.get_device_name(index)}, CUDA {torch.version.cuda}, "
        f"cuDNN {torch.backends.cudnn.version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workload", choices=[*GPU_WORKLOADS, "all"], default="all")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default: table)")
    parser.add_argument(
        "--fits", type=int, default=None, help="timed fits per process (default: table)"
    )
    parser.add_argument("--contenders", nargs="+", choices=peers.CONTENDERS, default=None)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op CPU threads (default 0: torch's)"
    )
    parser.add_argument("--device", default="cuda", help="default cuda; cpu only with --smoke")
    parser.add_argument("--smoke", action="store_true", help="tiny data: tests the code paths")
    parser.add_argument("--check", action="store_true", help="does every contender train?")
    parser.add_argument("--jit", action="store_true", help="kfit's compiled step: jit_step.py")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(
            f"gpu.py: no CUDA device (torch {torch.__version__}: torch.cuda.is_available() is "
            "False). Run it on a machine with a GPU, or test its code paths with "
            "`--device cpu --smoke`."
        )
    if not args.device.startswith("cuda") and not args.smoke:
        sys.exit(
            "gpu.py: a CPU run is a test of the code paths only; add --smoke (or use peers.py)"
        )

    if args.jit:
        run_jit(args)
        return
    keys = list(GPU_WORKLOADS) if args.workload == "all" else [args.workload]
    contenders = peers.parse_contenders(args.contenders)
    print(device_line(args.device))
    print(peers.machine_line(args.device, args.threads))
    if args.check:
        ok = peers.check(keys, contenders, args.device, args.smoke, args.threads)
        sys.exit(0 if ok else 1)
    for key in keys:
        repeats, fits = DEFAULT_REPEATS[key]
        repeats, fits = args.repeats or repeats, args.fits or fits
        table = peers.benchmark(
            key, contenders, repeats, fits, args.device, args.smoke, args.threads
        )
        print(f"\n{repeats} round(s), {fits} timed fit(s) per process")
        print(peers.format_table(table, args.device), flush=True)


def run_jit(args: argparse.Namespace) -> None:
    """`--jit`: the compiled-step table on every `jit_step` workload, then the sync check."""
    import jit_step

    if args.threads:
        torch.set_num_threads(args.threads)
    mode = "reduce-overhead" if args.device.startswith("cuda") else None
    print(device_line(args.device))
    keys = jit_step.WORKLOADS if args.workload == "all" else [args.workload]
    for key in keys:
        if key not in jit_step.WORKLOADS:
            continue
        lines = jit_step.run_workload(key, args.device, args.repeats or 3, mode, args.smoke)
        print("\n".join(lines), flush=True)
    if not args.device.startswith("cuda"):
        print("host-sync check skipped: not a CUDA device")
        return
    for key in ("small", "mnist"):
        for jit_compile in (True, "reduce-overhead"):
            print(jit_step.check_no_host_sync(key, args.device, jit_compile, args.smoke))


if __name__ == "__main__":
    main()
