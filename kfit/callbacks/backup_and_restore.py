"""`BackupAndRestore`: backs up the training state so that an interrupted `fit` resumes."""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from pathlib import Path
from typing import Literal

from kfit import distributed
from kfit.callbacks.callback import Callback
from kfit.callbacks.monitor import BatchCountdown, check_save_freq

# What an unreadable backup raises: a truncated or corrupt file (OSError, EOFError,
# RuntimeError from torch's zip reader) or a file that is not a kfit training state.
_UNREADABLE = (OSError, EOFError, RuntimeError, ValueError)


class BackupAndRestore(Callback):
    """Saves the full training state after every epoch and resumes from it in the next `fit`.

    At the start of `fit`, if `backup_dir` holds a backup, the model's weights, optimizer
    state, epoch count and random-generator states are restored (`model.load`) and training
    continues with the next epoch: a run killed after epoch k, started again, trains exactly as
    if it had never stopped. At the end of a `fit` that finished (all epochs, or stopped by a
    callback), the backup is deleted; after Ctrl-C, an exception or a killed process it stays.

    The backup is `backup_dir/latest.pt`, written atomically by `model.save` (Keras writes
    `latest.weights.h5` and `training_metadata.json`). The model must be built from the same
    code, with the same `compile` and `fit` arguments, as the run that wrote it.

    Args:
        backup_dir: the folder for the backup; do not share it with other runs or callbacks.
        save_freq: `'epoch'`, or an integer N to also save every N training batches. As in
            Keras, a run interrupted mid-epoch restarts that epoch from its beginning, with the
            weights of the last batch-level save (its shuffle order and results then differ
            from an uninterrupted run).
        double_checkpoint: also keep the previous backup (`backup_dir/previous.pt`), and
            restore from it, with a warning, when the latest one cannot be read.
        delete_checkpoint: delete the backup files (and `backup_dir`, if left empty) when
            `fit` finishes. Keras deletes the whole folder; kfit removes only its own files.

    Raises:
        ValueError: for an empty `backup_dir` or a `save_freq` that is neither `'epoch'` nor
            a positive integer.

    Example:
        >>> backup = kfit.callbacks.BackupAndRestore("/tmp/backup")
        >>> model.fit(x, y, epochs=10, callbacks=[backup])  # killed after epoch 4
        >>> model.fit(x, y, epochs=10, callbacks=[backup])  # runs epochs 5 to 10
    """

    def __init__(
        self,
        backup_dir: str | os.PathLike,
        save_freq: Literal["epoch"] | int = "epoch",
        double_checkpoint: bool = False,
        delete_checkpoint: bool = True,
    ):
        super().__init__()
        if not backup_dir:
            raise ValueError(f"`backup_dir` must name a folder; got {backup_dir!r}.")
        check_save_freq(save_freq)
        if Path(backup_dir).exists() and not Path(backup_dir).is_dir():
            raise ValueError(
                f"`backup_dir` must be a folder; {os.fspath(backup_dir)!r} is an existing file."
            )
        self.backup_dir = Path(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self._latest = self.backup_dir / "latest.pt"
        self._previous = self.backup_dir / "previous.pt"
        self._countdown: BatchCountdown | None = None
        self._diverged = False
        if save_freq != "epoch":
            # A batch hook on the instance only: epoch-frequency backups cost nothing per step.
            self.on_train_batch_end = self._save_every_n_batches

    def on_train_begin(self, logs=None):
        self._diverged = False
        if self.save_freq != "epoch":
            self._countdown = BatchCountdown(self.save_freq)
        if not self._restore(self._latest) and self.double_checkpoint:
            self._restore(self._previous)

    def _restore(self, path: Path) -> bool:
        """Restores the backup at `path`; False when there is none or (falling back) it failed."""
        if not path.exists():
            return False
        fallback = self.double_checkpoint and path == self._latest and self._previous.exists()
        try:
            self.model.load(path)
        except _UNREADABLE as err:
            if not fallback:
                raise
            warnings.warn(
                f"BackupAndRestore could not read {str(path)!r} ({err}); restoring the "
                f"previous backup {str(self._previous)!r}.",
                stacklevel=2,
            )
            return False
        # `fit` reads this after on_train_begin and starts from the epoch after the backup.
        self.model._initial_epoch = self.model.epochs_completed
        return True

    def _save_every_n_batches(self, batch, logs=None):
        if self._countdown.tick():
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        if _non_finite_loss(logs):
            # A NaN epoch (TerminateOnNaN stops after it) must not replace the last finite
            # backup, and its end is not a clean finish.
            self._diverged = True
            return
        if self.save_freq == "epoch":
            self._save()

    def _save(self) -> None:
        if self.double_checkpoint and self._latest.exists() and distributed.is_rank_zero():
            # A kill between these two lines leaves only previous.pt, which on_train_begin reads.
            os.replace(self._latest, self._previous)
        self.model.save(self._latest)

    def on_train_end(self, logs=None):
        if (
            not self.delete_checkpoint
            or self._interrupted()
            or self._diverged
            or not distributed.is_rank_zero()
        ):
            return  # under torchrun rank 0 deletes; `fit` then waits for it
        for path in (self._latest, self._previous):
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the folder holds other files, or is gone
            self.backup_dir.rmdir()

    def _interrupted(self) -> bool:
        """Whether `fit` is ending because of Ctrl-C or an exception.

        `fit` calls on_train_end after Ctrl-C or an error too (then re-raises); it still holds
        its interrupt guard, `model._interrupt`, only on that path.
        """
        return getattr(self.model, "_interrupt", None) is not None


def _non_finite_loss(logs: dict | None) -> bool:
    """Whether the epoch's logged loss is NaN or infinite."""
    value = (logs or {}).get("loss")
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
