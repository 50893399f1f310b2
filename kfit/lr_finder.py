"""The learning-rate range test: `Model.lr_find`.

The learning rate grows exponentially from `start_lr` to `end_lr` over `num_steps` training
steps (Smith, "Cyclical Learning Rates for Training Neural Networks", 2017). The loss of each
step is smoothed with an exponential moving average, bias-corrected as in Adam; the test stops
early once the smoothed loss exceeds `diverge_threshold` times its best. The suggestion is the
rate at the steepest descent of the smoothed loss against log10(lr), the convention of fastai's
"steep" suggestion and PyTorch Lightning's `suggestion()` (skipping the first 10 points and the
last one).

The model's weights and buffers, the optimizer's state and learning rates, every module's
train/eval mode and the random generators' states are restored afterwards, bit for bit.
"""

from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from kfit import data as data_module
from kfit import saving
from kfit.data import ArrayData
from kfit.progress import Progbar

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from kfit.model import Model


@dataclass
class LRFinderResult:
    """What `Model.lr_find` measured.

    Attributes:
        lrs: the learning rate of each step.
        losses: the smoothed loss after each step.
        raw_losses: each step's own loss.
        diverged: whether the test stopped early because the loss diverged (or turned NaN).
        suggested_lr: the rate at the steepest descent of `losses` against log10(lr), or None
            when the loss never fell (see `suggestion`).

    Example:
        >>> result = model.lr_find(x, y)
        >>> result.suggested_lr
        0.0031622776601683794
        >>> result.plot()  # doctest: +SKIP
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    diverged: bool
    suggested_lr: float | None = field(init=False)

    def __post_init__(self) -> None:
        self.suggested_lr = self.suggestion()

    def _steepest_index(self, skip_begin: int, skip_end: int) -> int | None:
        stop = len(self.losses) - skip_end
        index = [
            i
            for i in range(skip_begin, max(stop, skip_begin))
            if math.isfinite(self.losses[i]) and self.lrs[i] > 0
        ]
        if len(index) < 3:
            return None
        losses = np.array([self.losses[i] for i in index])
        log_lrs = np.log10([self.lrs[i] for i in index])
        slopes = np.gradient(losses, log_lrs)
        steepest = int(np.argmin(slopes))
        return index[steepest] if slopes[steepest] < 0 else None

    def suggestion(self, skip_begin: int = 10, skip_end: int = 1) -> float | None:
        """The rate where the smoothed loss falls fastest against log10(lr).

        Args:
            skip_begin: points left out at the start (the average is still settling there).
            skip_end: points left out at the end (where the loss diverges).

        Returns:
            The learning rate, or None with fewer than 3 usable points or when the loss never
            falls among them.
        """
        index = self._steepest_index(skip_begin, skip_end)
        return None if index is None else self.lrs[index]

    def plot(self, ax: Axes | None = None, suggest: bool = True) -> Axes:
        """Plots the smoothed loss against the learning rate (log scale).

        Args:
            ax: the Axes to draw on; a new figure when None.
            suggest: mark `suggested_lr` with a red dot.

        Returns:
            The Axes drawn on.

        Raises:
            ImportError: matplotlib is not installed.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as error:
            raise ImportError(
                "LRFinderResult.plot() needs matplotlib: `pip install kfit[plot]`."
            ) from error
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(self.lrs, self.losses, label="smoothed loss")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        if suggest and self.suggested_lr is not None:
            index = self.lrs.index(self.suggested_lr)
            ax.plot(
                self.lrs[index],
                self.losses[index],
                "o",
                color="red",
                label=f"suggested {self.suggested_lr:.2g}",
            )
        ax.legend()
        return ax


def _check_positive(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"`{name}` must be a positive number; got {value!r}.")
    return float(value)


def _check_arguments(
    start_lr: Any,
    end_lr: Any,
    num_steps: Any,
    batch_size: Any,
    smoothing: Any,
    diverge_threshold: Any,
    verbose: Any,
) -> None:
    start, end = _check_positive("start_lr", start_lr), _check_positive("end_lr", end_lr)
    if end <= start:
        raise ValueError(f"`end_lr` must be greater than `start_lr`; got {end_lr} <= {start_lr}.")
    for name, value, minimum in (("num_steps", num_steps, 2), ("batch_size", batch_size, 1)):
        if value is None and name == "batch_size":
            continue
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
            raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    if isinstance(smoothing, bool) or not isinstance(smoothing, numbers.Real):
        raise ValueError(f"`smoothing` must be a number in [0, 1); got {smoothing!r}.")
    if not 0 <= smoothing < 1:
        raise ValueError(f"`smoothing` must be in [0, 1); got {smoothing!r}.")
    if diverge_threshold is not None:
        threshold = _check_positive("diverge_threshold", diverge_threshold)
        if threshold <= 1:
            raise ValueError(
                f"`diverge_threshold` must be > 1 (or None); got {diverge_threshold!r}."
            )
    if verbose not in ("auto", 0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2; got {verbose!r}.")


class _SavedState:
    """Everything the test changes, copied so that `restore` puts it back bit for bit."""

    def __init__(
        self,
        model: Model,
        optimizer: torch.optim.Optimizer,
        rng: dict[str, Any],
        modes: list[tuple[torch.nn.Module, bool]],
    ):
        self.model, self.optimizer, self.rng, self.modes = model, optimizer, rng, modes
        self.weights = copy.deepcopy(model.state_dict())
        self.optimizer_state = copy.deepcopy(optimizer.state_dict())  # lr of each group included

    def restore(self) -> None:
        self.model.load_state_dict(self.weights)
        self.optimizer.load_state_dict(self.optimizer_state)
        for module, training in self.modes:
            module.training = training
        saving.set_rng_state(self.rng)
        self.model.reset_metrics()


def lr_find(
    model: Model,
    x: Any = None,
    y: Any = None,
    *,
    batch_size: int | None = None,
    sample_weight: Any = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    smoothing: float = 0.98,
    diverge_threshold: float | None = 4.0,
    plot: bool = True,
    verbose: int | str = "auto",
) -> LRFinderResult:
    """Runs the learning-rate range test on a compiled model, then restores it.

    Training steps go through `model.train_step`, so custom steps, gradient clipping and
    weight decay apply, with the compiled loss and optimizer. The data is cycled when it has
    fewer than `num_steps` batches (a generator is used up by the test, as by `fit`). Each
    step's loss is read back to the host: one sync per step, as this is a short diagnostic
    run whose divergence test needs each value at once.

    Args:
        model: a compiled `kfit.Model`.
        x: inputs, as in `fit` (arrays, a `Dataset`, a `DataLoader` or an iterable).
        y: targets when `x` holds arrays.
        batch_size: samples per step (default 32; for arrays and `Dataset`s).
        sample_weight: one weight per sample, as in `fit`.
        start_lr: the learning rate of the first step.
        end_lr: the learning rate of the last step.
        num_steps: the number of steps (and of learning rates tried).
        smoothing: the moving average's factor `beta` (0 keeps the raw losses).
        diverge_threshold: stop once the smoothed loss exceeds this many times its best (None
            never stops early); a NaN or infinite loss always stops the test.
        plot: draw the curve with `LRFinderResult.plot` when matplotlib is installed.
        verbose: `'auto'` or 1 (progress bar and the suggestion), 2 (the suggestion only), 0.

    Returns:
        An `LRFinderResult` with the curve and `suggested_lr`.

    Raises:
        ValueError: for invalid arguments or data, or an uncompiled model, before any weight
            changes.

    Example:
        >>> model.compile(optimizer="adam", loss="mse")
        >>> result = model.lr_find(x, y)
        >>> model.compile(optimizer=kfit.optimizers.Adam(result.suggested_lr), loss="mse")
    """
    model._check_compiled("lr_find")
    _check_arguments(start_lr, end_lr, num_steps, batch_size, smoothing, diverge_threshold, verbose)
    verbose = 1 if verbose == "auto" else int(verbose)
    batch_size = batch_size or 32
    data = data_module.make_data(
        x, y, sample_weight, model.float_dtype, batch_size=batch_size, shuffle=True
    )
    # Taken before the first-batch check, which draws random numbers for lazy modules and
    # sets every submodule's mode.
    rng = saving.rng_state()
    modes = [(module, module.training) for module in model.modules()]
    if isinstance(data, ArrayData):
        data = data.to(model.device)
        model._check_first_batch(data, batch_size)
    optimizer = model._optimizer_for_step()
    saved = _SavedState(model, optimizer, rng, modes)
    first_lr = float(optimizer.param_groups[0]["lr"])
    # Other parameter groups keep their ratio to the first one.
    ratios = [float(g["lr"]) / first_lr if first_lr else 1.0 for g in optimizer.param_groups]
    growth = (end_lr / start_lr) ** (1.0 / (num_steps - 1))
    lrs: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    diverged = False
    bar = Progbar(num_steps, verbose=verbose) if verbose == 1 else None
    try:
        model.train()
        average, best = 0.0, math.inf
        batches = next(model._batch_stream(data, batch_size, True, num_steps))
        for step, batch in enumerate(batches):
            lr = start_lr * growth**step
            for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
                group["lr"] = lr * ratio
            model.reset_metrics()
            model.train_step(data_module.as_yielded(batch))
            loss = float(model._loss_tracker.compute())  # sync point: once per step
            lrs.append(lr)
            raw.append(loss)
            if not math.isfinite(loss):
                smoothed.append(loss)
                diverged = True
                break
            average = smoothing * average + (1 - smoothing) * loss
            value = average / (1 - smoothing ** (step + 1))
            smoothed.append(value)
            best = min(best, value)
            if bar is not None:
                bar.update(step + 1, {"lr": lr, "loss": value})
            if diverge_threshold is not None and step > 0 and value > diverge_threshold * best:
                diverged = True
                break
    finally:
        saved.restore()
    if not lrs:
        raise ValueError("`lr_find` got no batches from `x`.")
    if bar is not None:
        bar.finish(len(lrs), {"lr": lrs[-1], "loss": smoothed[-1]})
    result = LRFinderResult(lrs, smoothed, raw, diverged)
    if verbose:
        stopped = f"; stopped at lr {lrs[-1]:.3g}, the loss diverging" if diverged else ""
        suggestion = (
            f"suggested learning rate: {result.suggested_lr:.3g}"
            if result.suggested_lr is not None
            else "no suggestion: the loss never fell (try a lower start_lr or more num_steps)"
        )
        print(f"lr_find: {len(lrs)} steps{stopped}; {suggestion}.", flush=True)
    if plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return result
        result.plot()
    return result
