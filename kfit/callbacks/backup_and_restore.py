"""`BackupAndRestore`: backs up the training state so that an interrupted `fit` resumes."""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch.nn.parameter import is_lazy

from kfit import distributed
from kfit.callbacks.callback import Callback
from kfit.callbacks.history import History
from kfit.callbacks.monitor import BatchCountdown, check_save_freq

# What an unreadable backup raises: a truncated or corrupt file (OSError, EOFError,
# RuntimeError from torch's zip reader) or a file that is not a kfit training state.
_UNREADABLE = (OSError, EOFError, RuntimeError, ValueError)


class BackupAndRestore(Callback):
    """Saves the full training state after every epoch and resumes from it in the next `fit`.

    At the start of `fit`, if `backup_dir` holds a backup, the model's weights, optimizer
    state, epoch count, History, random-generator states and the other callbacks' memory
    (`Callback.state_dict()`: ModelCheckpoint's best value, EarlyStopping's wait and best,
    ReduceLROnPlateau's, a scheduler's) are restored (`model.load`) and training continues
    with the next epoch: a run killed after epoch k, started again, trains exactly as if it had
    never stopped, and returns a History of every epoch. When there is no backup yet, the
    starting state is backed up first, so an interruption in the first epoch also resumes
    exactly (Keras writes its first backup after epoch 1). At the end of a `fit` that finished
    (all epochs, or stopped by a callback), the backup is deleted; after Ctrl-C, an exception,
    a killed process or a NaN loss (`TerminateOnNaN`) it stays, and a NaN epoch never replaces
    the last finite backup.

    Its hooks run after every other callback's (`runs_last`), so each backup holds the other
    callbacks' state after the epoch's end and the epoch's History entry; an error in another
    callback's `on_epoch_end` leaves that epoch out of the backup, to be run again.

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
        >>> history = model.fit(x, y, epochs=10, callbacks=[backup])  # runs epochs 5 to 10
        >>> history.epoch  # and holds all ten
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """

    runs_last = True
    may_stop_training = False  # it saves and restores, never stops

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
        self._others: list[Callback] = []
        if save_freq != "epoch":
            # A batch hook on the instance only: epoch-frequency backups cost nothing per step.
            self.on_train_batch_end = self._save_every_n_batches  # type: ignore[method-assign]  # on purpose (above)

    def set_callbacks(self, callbacks: list[Callback]) -> None:
        self._others = [c for c in callbacks if c is not self]

    def on_train_begin(self, logs=None):
        self._diverged = False
        if self.save_freq != "epoch":
            self._countdown = BatchCountdown(self.save_freq)
        restored = self._restore(self._latest) or (
            self.double_checkpoint and self._restore(self._previous)
        )
        if not restored and not any(is_lazy(p) for p in self.model.parameters()):
            self._save()  # the starting state: a first-epoch interruption resumes from it

    def _restore(self, path: Path) -> bool:
        """Restores the backup at `path`; False when there is none or (falling back) it failed."""
        if not path.exists():
            return False
        fallback = self.double_checkpoint and path == self._latest and self._previous.exists()
        history = self.model.history  # the History this `fit` returns
        try:
            self.model.load(path, callbacks=self._others)
        except _UNREADABLE as err:
            if not fallback:
                raise
            warnings.warn(
                f"BackupAndRestore could not read {str(path)!r} ({err}); restoring the "
                f"previous backup {str(self._previous)!r}.",
                stacklevel=2,
            )
            return False
        # `fit` starts from the epoch after the backup.
        self.model.resume_at_epoch(self.model.epochs_completed)
        restored = self.model.history
        if (
            isinstance(history, History)
            and isinstance(restored, History)
            and restored is not history
        ):
            history.continue_from(restored)  # the returned History holds the earlier epochs too
            self.model.history = history
        return True

    def _save_every_n_batches(self, batch, logs=None):
        # A NaN running loss (TerminateOnNaN stops at it) must not replace a finite backup.
        if self._countdown is not None and self._countdown.tick() and not _non_finite_loss(logs):
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
        if not _finite_parameters(self.model):
            # A step can turn the weights NaN while its loss was finite: never back that up.
            self._diverged = True
            return
        if self.double_checkpoint and self._latest.exists() and distributed.is_rank_zero():
            # A kill between these two lines leaves only previous.pt, which on_train_begin reads.
            os.replace(self._latest, self._previous)
        self.model.save(self._latest, callbacks=self._others)

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

        `fit` calls on_train_end after Ctrl-C or an error too (then re-raises).
        """
        return bool(getattr(self.model, "ending_with_error", False))


def _finite_parameters(model: torch.nn.Module) -> bool:
    """Whether every parameter is finite. Sync point: one host read, only when backing up."""
    checks = [p.detach().isfinite().all() for p in model.parameters() if p.numel()]
    if not checks:
        return True
    return bool(torch.stack([c.to(checks[0].device) for c in checks]).all())


def _non_finite_loss(logs: dict | None) -> bool:
    """Whether the epoch's logged loss is NaN or infinite."""
    value = (logs or {}).get("loss")
    try:
        return not math.isfinite(float(value))  # type: ignore[arg-type]  # None: TypeError
    except (TypeError, ValueError):
        return False
