"""Keras's `class_weight`: a `{class: weight}` dict turned into one weight per sample."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from kfit.data.trees import Tree


def class_weight_to_sample_weight(
    y: Tree | None, class_weight: Mapping[Any, float]
) -> torch.Tensor:
    """Per-sample weights from a `{class: weight}` dict (on the host, once, as Keras does).

    Args:
        y: the targets, one tensor: class ids, or one-hot / probability rows (the class is
            the argmax).
        class_weight: a weight for every class present in `y`.

    Returns:
        A float32 tensor of one weight per sample.

    Raises:
        ValueError: if `y` is not one tensor (several outputs), or a class present in `y` has
            no weight.
    """
    if not isinstance(y, torch.Tensor):
        raise ValueError(
            "`class_weight` is only supported for models with a single output (as in Keras); "
            "for several outputs pass `sample_weight` as a list or dict, one array per output."
        )
    labels = y.argmax(-1) if y.dim() > 1 and y.shape[-1] > 1 else y.reshape(y.shape[0], -1)[:, 0]
    labels = torch.round(labels.double()).long()
    present = sorted(int(c) for c in torch.unique(labels).tolist())
    missing = [c for c in present if c not in class_weight]
    if missing:
        raise ValueError(
            f"`class_weight` has no weight for classes {missing} present in `y`; "
            f"it has {sorted(class_weight)}."
        )
    keys = torch.tensor(present)
    values = torch.tensor([float(class_weight[c]) for c in present], dtype=torch.float32)
    return values[torch.searchsorted(keys, labels)]  # negative labels (e.g. -1/1) included
