"""How often a plain kfit script exits cleanly under torchrun: N runs, their exit codes.

    python benchmarks/torchrun_exits.py --runs 50            # 2 CPU processes (gloo) a run
    python benchmarks/torchrun_exits.py --runs 20 --own-group

Each run starts this file under `torchrun --standalone --nproc_per_node=2`; launched so, it is
the worker: the few lines a user writes (compile, fit, evaluate, predict), with no teardown
code. `--own-group` makes the worker start the process group itself (kfit must then leave it
alone). The report counts clean exits and shows the tail of any failed run's output.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import time


def worker(own_group: bool) -> None:
    import numpy as np
    import torch.distributed as dist
    from torch import nn

    import kfit

    if own_group:
        dist.init_process_group("gloo")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x.sum(axis=1, keepdims=True) > 0).astype("float32")
    model = kfit.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1), nn.Sigmoid())
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--own-group", action="store_true", help="the script makes the group")
    args = parser.parse_args()
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={args.processes}",
        __file__,
        *(["--own-group"] if args.own_group else []),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    codes: collections.Counter[int] = collections.Counter()
    start = time.perf_counter()
    for run in range(1, args.runs + 1):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        codes[done.returncode] += 1
        if done.returncode != 0:
            print(f"run {run}: exit {done.returncode}\n{(done.stdout + done.stderr)[-1500:]}")
    seconds = time.perf_counter() - start
    group = "the script's own" if args.own_group else "kfit's"
    print(
        f"{codes[0]} of {args.runs} runs exited 0 ({args.processes} processes, gloo, {group} "
        f"process group, {seconds:.0f} s); exit codes: {dict(sorted(codes.items()))}"
    )
    sys.exit(0 if codes[0] == args.runs else 1)


if __name__ == "__main__":
    if "LOCAL_RANK" in os.environ:
        worker(own_group="--own-group" in sys.argv[1:])
    else:
        main()
