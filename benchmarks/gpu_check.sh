#!/usr/bin/env bash
# The GPU checks in one call (for the `device` tool: a lent H100/H200, ~8 minutes).
#   1. `gpu.py --jit`: eager loop, compiled loop, kfit, kfit jit_compile="reduce-overhead" on the
#      four jit_step workloads, then the host-sync check (set_sync_debug_mode("error")).
#   2. The whole test suite with CUDA present (kfit then trains on the GPU by default),
#      in parallel workers; the Keras comparisons skip where keras is not installed.
# Logs go to $OUT (or ./gpu_out). Usage: bash benchmarks/gpu_check.sh [jit_seconds] [test_seconds]
set -u
out="${OUT:-gpu_out}"; mkdir -p "$out"
export PYTHONPATH="$PWD" KERAS_BACKEND=torch PYTHONUNBUFFERED=1
python3 - <<'PY' 2>&1 | tee "$out/env.txt"
import torch, torchmetrics, tqdm
print(torch.cuda.get_device_name(0), "torch", torch.__version__, "torchmetrics",
      torchmetrics.__version__, "tqdm", tqdm.__version__)
PY
timeout "${1:-270}" python3 benchmarks/gpu.py --jit --repeats 3 2>&1 | tee "$out/jit.txt"
echo "gpu.py --jit exit: ${PIPESTATUS[0]}"
timeout "${2:-210}" python3 -m pytest -q -p no:cacheprovider -n 12 --timeout 120 \
    --continue-on-collection-errors -W ignore::DeprecationWarning 2>&1 > "$out/tests.txt"
echo "pytest exit: $?"
grep -E "^(FAILED|ERROR)" "$out/tests.txt" | cut -c1-220 | head -40
tail -3 "$out/tests.txt"
