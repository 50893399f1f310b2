"""Metrics under torchrun: two gloo CPU processes, each with part of the data, give the epoch
value one process gives on all of it (the states sum across processes when read)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
import metrics_ddp_worker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORLD = 2

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo"
)


def test_confusion_metrics_and_auc_over_two_processes_equal_one_process(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
    }
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={WORLD}",
        str(ROOT / "tests" / "metrics_ddp_worker.py"),
        str(tmp_path),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    y_true, y_pred, weight = metrics_ddp_worker.data()
    whole = metrics_ddp_worker.values([(y_true, y_pred, weight)])
    for rank in range(WORLD):
        synced = json.loads((tmp_path / f"metrics-{rank}.json").read_text())
        assert synced.keys() == whole.keys()
        for name, expected in whole.items():
            np.testing.assert_allclose(synced[name], expected, rtol=1e-5, err_msg=name)
