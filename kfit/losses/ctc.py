"""Connectionist Temporal Classification (CTC) loss, with Keras's padded-label convention."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kfit.losses.loss import LossFunctionWrapper, Reduction

__all__ = ["CTC", "ctc"]

_DType = str | torch.dtype | None


def ctc(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """CTC loss per sample, as Keras computes it.

    Class 0 is the blank (and the padding of `y_true`): each label sequence's length is its
    number of non-zero entries, and every sample uses all `max_length` time steps.

    Args:
        y_true: integer labels of shape `(batch_size, max_label_length)`, padded with 0.
        y_pred: logits of shape `(batch_size, max_length, num_classes)` (not softmaxed).

    Returns:
        The negative log-likelihood of each label sequence, shape `(batch_size,)`; inf where
        no alignment exists (a label longer than the time steps allow), as in Keras.

    Raises:
        ValueError: for inputs of the wrong rank.
    """
    if y_true.dim() != 2:
        raise ValueError(
            "Targets `y_true` are expected to be a tensor of shape `(batch_size, max_length)` "
            f"in integer format. Received: y_true.shape={tuple(y_true.shape)}"
        )
    if y_pred.dim() != 3:
        raise ValueError(
            "Logits `y_pred` are expected to be a tensor of shape "
            f"`(batch_size, max_length, num_classes)`. Received: y_pred.shape={tuple(y_pred.shape)}"
        )
    labels = y_true.long()
    batch_size, time_steps = y_pred.shape[0], y_pred.shape[1]
    if y_pred.dtype in (torch.float16, torch.bfloat16):
        y_pred = y_pred.float()  # as Keras: at least float32
    log_probs = F.log_softmax(y_pred.transpose(0, 1), dim=-1)
    input_lengths = torch.full((batch_size,), time_steps, dtype=torch.long, device=y_pred.device)
    label_lengths = (labels != 0).sum(-1)
    return F.ctc_loss(log_probs, labels, input_lengths, label_lengths, blank=0, reduction="none")


class CTC(LossFunctionWrapper):
    """CTC (Connectionist Temporal Classification) loss; see `ctc` for the inputs.

    `y_true` holds integer labels padded with 0 (the blank), `y_pred` the logits of shape
    `(batch_size, time_steps, num_classes)`. For labels or logits of varying lengths given
    explicitly, use `torch.nn.CTCLoss` instead.

    Args:
        reduction: how per-sample values are combined.
        name: the name used in logs.
        dtype: the dtype to compute in; None keeps the predictions' dtype.
    """

    def __init__(
        self,
        reduction: Reduction | None = "sum_over_batch_size",
        name: str = "ctc",
        dtype: _DType = None,
    ):
        super().__init__(ctc, reduction=reduction, name=name, dtype=dtype)
