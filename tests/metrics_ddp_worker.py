"""Run under torchrun by `tests/test_metrics_distributed.py`: each process streams its part of
the same data into kfit's confusion metrics and AUC, and writes the synced epoch values.

Run as `python -m torch.distributed.run --nproc_per_node=2 tests/metrics_ddp_worker.py OUT`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

import kfit.metrics as km

N, C = 29, 3  # odd: the processes hold different numbers of samples


def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same labels, predictions (with ties at thresholds) and weights everywhere."""
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, size=(N, C)).astype("float32")
    y_pred = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0, 0.33, 0.9], size=(N, C)).astype("float32")
    weight = rng.uniform(0.0, 2.0, size=N).astype("float32")
    return torch.tensor(y_true), torch.tensor(y_pred), torch.tensor(weight)


def metrics() -> dict[str, km.Metric]:
    return {
        "precision": km.Precision(thresholds=[0.3, 0.5, 0.8]),
        "recall_top_k": km.Recall(top_k=1),
        "true_negatives": km.TrueNegatives(thresholds=[0.0, 0.5, 1.0]),
        "auc": km.AUC(),
        "auc_pr_multi_label": km.AUC(curve="PR", multi_label=True),
        "sensitivity_at_specificity": km.SensitivityAtSpecificity(0.5),
    }


def values(batches) -> dict[str, list[float]]:
    """Each metric's epoch value after streaming `batches` of (y_true, y_pred, weight)."""
    results = {}
    for name, metric in metrics().items():
        for y_true, y_pred, weight in batches:
            metric.update_state(y_true, y_pred, weight)
        results[name] = np.atleast_1d(metric.result().numpy()).tolist()
    return results


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    y_true, y_pred, weight = data()
    mine = torch.arange(N)[rank::world]  # this process's samples, in batches of 4
    batches = [(y_true[ids], y_pred[ids], weight[ids]) for ids in torch.split(mine, 4)]
    (out / f"metrics-{rank}.json").write_text(json.dumps(values(batches)))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
