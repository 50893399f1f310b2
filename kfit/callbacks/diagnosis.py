"""Training diagnosis: short notes under the epoch line when training goes wrong in a known way.

`fit` adds a `TrainingDiagnosis` at `verbose >= 1` (`fit(diagnose=False)` leaves it out). It
works from the epoch values `fit` has already read and from host-side attributes (learning
rates, `requires_grad`, whether `.grad` is set), so it adds no host read to any step. It prints
each kind of note at most once per `fit` call and keeps them in `History.diagnostics`.

The rules, with `L` the training loss of each epoch of this `fit` call, `best` its lowest value
so far and `L_first` the first epoch's:

- **learning rate too high**: with the learning rate unchanged over the epochs concerned,
  either `L` rose in each of the last `RISING_EPOCHS` (3) epochs by `RISE_FRACTION` (10%) of
  its value in total, or `L - best >= |best|` (twice the best, for a positive loss). Either way
  the loss must also have given back at least `GIVEN_BACK` (5%) of the ground gained since
  the first epoch (`L - best >= 0.05 * (L_first - best)`), so the relative jitter of a loss
  that is already near 0 does not count.
- **NaN/Inf loss**: the epoch's loss (or `val_loss`) is not finite.
- **over-fitting**: the moving average of `val_loss` over `OVERFIT_AVERAGE` (3) validations
  (so that one lucky value of a small validation set is no "best") has not improved on its
  best for `OVERFIT_PATIENCE` (5) validations and lies `OVERFIT_FRACTION` (5%) above it, while
  the training loss is lower than at that best.
- **flat loss**: with the learning rate unchanged, either the first `RISING_EPOCHS` epochs'
  losses of a model not trained before all lie within `FLAT_TOLERANCE` (1%) of the first, or
  the last `RISING_EPOCHS` lie within `STUCK_TOLERANCE` (0.01%) of each other, at least 1%
  above the best (stuck after getting worse: saturated or dead units). The note says what it
  finds (one host read): frozen parameters in the optimizer, parameters no gradient reached,
  zero gradients, predictions stuck at 0 or 1 under a loss taking probabilities. A flat start
  with none of these points to a learning rate too low; a stuck loss to one too high.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from kfit import distributed
from kfit import losses as losses_module
from kfit.callbacks.callback import Callback
from kfit.callbacks.early_stopping import EarlyStopping
from kfit.callbacks.terminate_on_nan import TerminateOnNaN
from kfit.compiled.loss import PROBABILISTIC_LOSSES

RISING_EPOCHS = 3
RISE_FRACTION = 0.10
GIVEN_BACK = 0.05
OVERFIT_PATIENCE = 5
OVERFIT_AVERAGE = 3
OVERFIT_FRACTION = 0.05
FLAT_TOLERANCE = 0.01
STUCK_TOLERANCE = 1e-4
# Probabilities this close to 0 or 1 are where Keras's losses clip them (keras.config.epsilon).
_SATURATED = losses_module.EPSILON

Kind = Literal[
    "learning_rate_too_high",
    "non_finite_loss",
    "non_finite_val_loss",
    "overfitting",
    "flat_loss",
]


@dataclass(frozen=True)
class Diagnostic:
    """One note of the training diagnosis.

    Attributes:
        kind: which rule fired: `'learning_rate_too_high'`, `'non_finite_loss'`,
            `'non_finite_val_loss'`, `'overfitting'` or `'flat_loss'`.
        epoch: the 0-based epoch at whose end it fired (as in `History.epoch`).
        message: the note as printed.
    """

    kind: Kind
    epoch: int
    message: str

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for `Model.save`."""
        return asdict(self)


def _format_lr(lr: float) -> str:
    return f"{lr:.3g}"


def _names(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _range_text(value_range: tuple[float, float]) -> str:
    low, high = value_range
    return f"all {low:.3g}" if low == high else f"from {low:.3g} to {high:.3g}"


def _compiled_loss(model: Any) -> Any:
    """The model's compiled loss (`compile_state.loss`), or None."""
    state = getattr(model, "compile_state", None)
    return state.loss if state is not None else None


def _logits_hint(compiled_loss: Any) -> str | None:
    """The logits form of the first compiled (per-output) loss that takes probabilities."""
    for _, output_loss, _ in getattr(compiled_loss, "terms", []):
        fn = output_loss.fn
        if isinstance(fn, losses_module.LossFunctionWrapper):
            _, class_name = PROBABILISTIC_LOSSES.get(fn.fn, (None, None))
            if class_name is not None and not fn.from_logits:
                return f"kfit.losses.{class_name}(from_logits=True)"
        if isinstance(fn, nn.BCELoss):
            return "nn.BCEWithLogitsLoss()"
    return None


class TrainingDiagnosis(Callback):
    """Prints a short note under the epoch line when training shows a known problem.

    Added by `fit` after the progress logger when `verbose >= 1` and `diagnose=True`; see the
    module docstring for the rules and thresholds. Each kind of note is printed once per `fit`
    call and appended to `History.diagnostics`.

    What it reads, and when: the epoch's logged values (already on the host), the optimizer's
    learning rate at the start and end of every epoch, and host-side attributes of the
    parameters. With a loss that takes probabilities it also keeps the range of the first
    batch's predictions of every epoch, computed on the device and read only if a note needs
    it. Only when it prints a note about a NaN or a flat loss does it read device values
    (the prediction range, the gradient norms), once.

    Args:
        callbacks: the other callbacks of the run; an `EarlyStopping` or `TerminateOnNaN`
            among them changes the advice.
    """

    def __init__(self, callbacks: Sequence[Callback] = ()):
        super().__init__()
        self._early_stopping = any(isinstance(c, EarlyStopping) for c in callbacks)
        self._terminate_on_nan = any(isinstance(c, TerminateOnNaN) for c in callbacks)
        self.diagnostics: list[Diagnostic] = []
        self._reset()

    def _reset(self) -> None:
        self._losses: list[float] = []
        self._val: list[tuple[int, float, float]] = []  # (epoch, val_loss, loss) when validated
        self._lrs: list[tuple[float | None, float | None]] = []  # (start, end) per epoch
        self._fresh = False
        self._ranges: list[torch.Tensor] = []  # [min, max] of the first predictions, per epoch
        self._probe: Any = None
        self._epoch_lr: float | None = None
        self._epoch = 0

    # ------------------------------------------------------------------ hooks

    def on_train_begin(self, logs=None):
        self.diagnostics = []
        self._reset()
        # "Flat from the start" only means something for a model not trained before.
        self._fresh = getattr(self.model, "epochs_completed", 0) == 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_lr = self._learning_rate()
        if not self._lrs and epoch != 0:
            self._fresh = False  # resumed (initial_epoch or BackupAndRestore)
        state = getattr(self.model, "compile_state", None)
        hint = _logits_hint(state.loss if state is not None else None)
        if hint is not None and state is not None and state.jit is None:
            # One forward hook per epoch, removed by its first call: no cost on later steps.
            self._probe = self.model.register_forward_hook(self._record_range)

    def on_epoch_end(self, epoch, logs=None):
        self._remove_probe()
        logs = logs or {}
        loss = logs.get("loss")
        if not isinstance(loss, int | float):
            return
        self._epoch = epoch
        end_lr = self._learning_rate()
        # A lazy model builds its optimizer at the first step: no rate before it.
        self._lrs.append((end_lr if self._epoch_lr is None else self._epoch_lr, end_lr))
        self._losses.append(float(loss))
        val_loss = logs.get("val_loss")
        if isinstance(val_loss, int | float):
            self._val.append((epoch, float(val_loss), float(loss)))
        emitted = {d.kind for d in self.diagnostics}
        for kind, check in (
            ("non_finite_loss", self._check_non_finite),
            ("non_finite_val_loss", self._check_non_finite_val),
            ("learning_rate_too_high", self._check_rising),
            ("overfitting", self._check_overfitting),
            ("flat_loss", self._check_flat),
        ):
            if kind in emitted:
                continue  # once per run; and a rule that reads values reads them once
            message = check()
            if message is not None:
                self._emit(kind, epoch, message)

    def on_train_end(self, logs=None):
        self._remove_probe()

    # ------------------------------------------------------------------ helpers

    def _learning_rate(self) -> float | None:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not optimizer.param_groups:
            return None
        return float(optimizer.param_groups[0]["lr"])  # a host value (a number, or a CPU tensor)

    def _lr_unchanged(self, epochs: int) -> float | None:
        """The learning rate if it was the same throughout the last `epochs` epochs."""
        values = {lr for pair in self._lrs[-epochs:] for lr in pair}
        if len(values) != 1:
            return None
        return next(iter(values))

    def _record_range(self, module: nn.Module, args: Any, output: Any) -> None:
        self._remove_probe()
        if isinstance(output, torch.Tensor) and output.is_floating_point() and output.numel():
            with torch.no_grad():  # on the device; read only if a note needs it
                self._ranges.append(torch.stack([output.detach().amin(), output.detach().amax()]))
                del self._ranges[:-2]

    def _remove_probe(self) -> None:
        if self._probe is not None:
            self._probe.remove()
            self._probe = None

    def _saturated_range(self) -> tuple[float, float] | None:
        """The last finite prediction range if it reaches 0 or 1. Sync point (once per note)."""
        for low, high in reversed(torch.stack(self._ranges).tolist() if self._ranges else []):
            if math.isfinite(low) and math.isfinite(high):
                if low <= _SATURATED or high >= 1.0 - _SATURATED:
                    return low, high
                return None
        return None

    def _emit(self, kind: Kind, epoch: int, message: str) -> None:
        note = Diagnostic(kind, epoch, message)
        self.diagnostics.append(note)
        history = getattr(self.model, "history", None)
        if isinstance(getattr(history, "diagnostics", None), list):
            history.diagnostics.append(note)
        if distributed.is_rank_zero():  # every process decides alike; one prints
            print(f"Diagnosis: {message}", file=sys.stdout, flush=True)

    def _lower_lr_advice(self, lr: float) -> str:
        return (
            f"learning rate may be too high (now {_format_lr(lr)}); try {_format_lr(lr / 10)} "
            "or `model.lr_find(...)`"
        )

    # ------------------------------------------------------------------ rules

    def _check_non_finite(self) -> str | None:
        loss = self._losses[-1]
        if math.isfinite(loss):
            return None
        epoch_in_run = len(self._losses)
        where = (
            "TerminateOnNaN named the batch above"
            if self._terminate_on_nan
            else "the batch is not known without a host read per step; "
            "kfit.callbacks.TerminateOnNaN() stops at it"
        )
        causes = []
        lr = self._lrs[-1][0]
        if lr is not None:
            causes.append(
                f"a learning rate too high (now {_format_lr(lr)}; try {_format_lr(lr / 10)})"
            )
        hint = _logits_hint(_compiled_loss(self.model))
        saturated = self._saturated_range() if hint is not None else None
        if saturated is not None:
            causes.append(
                f"log(0): predictions reached 0 or 1 ({_range_text(saturated)}); give the "
                f"loss logits instead, {hint}, without the final sigmoid/softmax"
            )
        else:
            causes.append("a log of 0 or a division by 0 in the loss or the model")
        if epoch_in_run == 1:
            causes.append("NaN or Inf values in the inputs or targets")
        return (
            f"the loss became {loss} at epoch {self._epoch + 1} ({where}). Usual causes: "
            + "; ".join(causes)
            + "."
        )

    def _check_non_finite_val(self) -> str | None:
        if not self._val or not math.isfinite(self._val[-1][2]) or math.isfinite(self._val[-1][1]):
            return None
        return (
            f"val_loss is {self._val[-1][1]} while the training loss is finite: the validation "
            "data may hold NaN or Inf values, or predictions on it reach 0 or 1 under a loss "
            "that takes probabilities (use from_logits=True)."
        )

    def _check_rising(self) -> str | None:
        losses = self._losses
        if len(losses) < 2 or not all(math.isfinite(v) for v in losses):
            return None
        now, first = losses[-1], losses[0]
        best_at = min(range(len(losses)), key=losses.__getitem__)
        best = losses[best_at]
        if now - best < GIVEN_BACK * (first - best):
            return None
        window = losses[-(RISING_EPOCHS + 1) :]
        rising = (
            len(window) == RISING_EPOCHS + 1
            and all(b > a for a, b in zip(window, window[1:], strict=False))
            and now - window[0] >= RISE_FRACTION * abs(window[0])
        )
        far_above = best_at < len(losses) - 1 and now - best >= abs(best) and now > best
        if rising:
            lr = self._lr_unchanged(RISING_EPOCHS + 1)
            what = (
                f"the loss rose for {RISING_EPOCHS} epochs in a row ({window[0]:.4g} -> {now:.4g})"
            )
        elif far_above:
            lr = self._lr_unchanged(len(losses) - best_at)
            what = f"the loss ({now:.4g}) is far above its best ({best:.4g})"
        else:
            return None
        if lr is None or lr <= 0:
            return None  # a schedule changed the rate: its doing, not a setting to fix
        return f"{what} with the learning rate unchanged: {self._lower_lr_advice(lr)}."

    def _check_overfitting(self) -> str | None:
        if len(self._val) < OVERFIT_AVERAGE or not all(math.isfinite(v) for _, v, _ in self._val):
            return None
        # A moving average, so that one lucky low value of a small validation set is no "best".
        values = [v for _, v, _ in self._val]
        averages = [
            sum(values[i + 1 - OVERFIT_AVERAGE : i + 1]) / OVERFIT_AVERAGE
            for i in range(OVERFIT_AVERAGE - 1, len(values))
        ]
        best_at = min(range(len(averages)), key=averages.__getitem__)
        best, now = averages[best_at], averages[-1]
        best_epoch, _, loss_at_best = self._val[best_at + OVERFIT_AVERAGE - 1]
        loss_now = self._val[-1][2]
        if not (
            len(averages) - 1 - best_at >= OVERFIT_PATIENCE
            and now - best >= OVERFIT_FRACTION * abs(best)
            and loss_now < loss_at_best
        ):
            return None
        advice = (
            "EarlyStopping is set and will stop it; restore_best_weights=True keeps the best "
            "weights"
            if self._early_stopping
            else "add kfit.callbacks.EarlyStopping(monitor='val_loss', patience=3, "
            "restore_best_weights=True), more data or regularisation"
        )
        return (
            f"val_loss (averaged over {OVERFIT_AVERAGE} validations) has risen from its best "
            f"{best:.4g} at epoch {best_epoch + 1} to {now:.4g} while the training loss fell "
            f"({loss_at_best:.4g} -> {loss_now:.4g}): "
            f"the model is over-fitting; {advice}."
        )

    def _check_flat(self) -> str | None:
        losses = self._losses
        if len(losses) < RISING_EPOCHS or not all(math.isfinite(v) for v in losses):
            return None
        window = losses[-RISING_EPOCHS:]
        lr = self._lr_unchanged(RISING_EPOCHS)
        if lr is None or window[0] == 0:
            return None  # a warm-up or schedule may hold the loss on purpose; 0 is converged
        spread = max(abs(v - window[0]) for v in window) / abs(window[0])
        best = min(losses)
        if self._fresh and len(losses) == RISING_EPOCHS and spread <= FLAT_TOLERANCE:
            findings = self._frozen_findings()
            if findings:
                cause = "; ".join(findings)
            elif lr == 0:
                cause = "the learning rate is 0"
            else:
                cause = (
                    f"learning rate may be too low (now {_format_lr(lr)}); try "
                    f"{_format_lr(lr * 10)} or `model.lr_find(...)` (if the model had already "
                    "converged within the first epoch, ignore this)"
                )
            return (
                f"the loss stayed within {FLAT_TOLERANCE:.0%} of {window[0]:.4g} for the first "
                f"{RISING_EPOCHS} epochs: {cause}."
            )
        if spread <= STUCK_TOLERANCE and min(window) - best >= FLAT_TOLERANCE * abs(best):
            findings = self._frozen_findings()
            found = f". Found: {'; '.join(findings)}" if findings else ""
            return (
                f"the loss is stuck at {window[-1]:.4g}, above its best {best:.4g}, for "
                f"{RISING_EPOCHS} epochs: too large steps may have saturated the model; "
                f"{self._lower_lr_advice(lr)}{found}."
            )
        return None

    def _frozen_findings(self) -> list[str]:
        """Why no parameter moves, as far as the parameters show. Sync point (once per run)."""
        model, optimizer = self.model, self.model.optimizer
        named = list(model.named_parameters())
        trainable = [(n, p) for n, p in named if p.requires_grad]
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        frozen_held = [n for n, p in named if id(p) in held and not p.requires_grad]
        if not trainable or len(frozen_held) == len(held):
            return ["the model is frozen: no parameter the optimizer holds has requires_grad=True"]
        findings = []
        if frozen_held:
            findings.append(
                f"{len(frozen_held)} parameter(s) the optimizer holds are frozen "
                f"(requires_grad=False: {_names(frozen_held)})"
            )
        unreached = [n for n, p in trainable if id(p) in held and p.grad is None]
        if unreached:
            findings.append(
                f"no gradient reached {len(unreached)} of {len(trainable)} trainable "
                f"parameters ({_names(unreached)}): unused, or cut off by .detach()/no_grad"
            )
        with_grad = [(n, p.grad) for n, p in trainable if p.grad is not None]
        if with_grad:
            device = with_grad[0][1].device
            norms = torch.stack(
                [norm.to(device) for norm in torch._foreach_norm([g for _, g in with_grad])]
            ).tolist()  # the one host read
            zero = [n for (n, _), norm in zip(with_grad, norms, strict=True) if norm == 0.0]
            if zero and len(zero) == len(trainable):
                findings.append("every gradient is exactly 0")
            elif zero:
                findings.append(f"the gradients of {_names(zero)} are exactly 0")
        hint = _logits_hint(_compiled_loss(model))
        saturated = self._saturated_range() if hint is not None else None
        if saturated is not None:
            findings.append(
                f"predictions are stuck at 0 or 1 ({_range_text(saturated)}), where "
                f"the clipped probabilities pass no gradient: use {hint} on logits"
            )
        return findings
