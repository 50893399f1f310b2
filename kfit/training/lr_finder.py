"""The learning-rate range test: `Model.lr_find`.

The learning rate grows exponentially from `start_lr` to `end_lr` over `num_steps` training
steps (Smith, "Cyclical Learning Rates for Training Neural Networks", 2017); the test stops
early once a running, bias-corrected moving average of the loss exceeds `diverge_threshold`
times its best.

Single mini-batch losses are noisy, so the suggestion is read from a smoothed curve without
lag: a running median over about a decade of rates, then an exponential moving
average run forwards and backwards (bias-corrected both ways), on the log of the loss. The
rule is valley-style (after fastai's "valley"): the valley is the final descent of the smoothed
loss to its minimum, and the suggestion is the rate where the loss has made half of that
descent (in log scale), so it lies inside the valley, never before the loss starts to fall.
When the curve is too flat or too noisy for that to mean anything, there is no suggestion and
`reason` says why. The steps are seeded (`seed`), so the same script gives the same answer.

The model's weights and buffers, the optimizer's state and learning rates, every module's
train/eval mode and the random generators' states are restored afterwards, bit for bit.
"""

from __future__ import annotations

import copy
import math
import numbers
import random
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from kfit import data as data_module
from kfit import saving
from kfit.progress import Progbar
from kfit.training.arguments import check_int, check_verbose

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from kfit.model import Model

# The smallest fall of the smoothed loss (as a fraction of its level) that makes a suggestion.
_MIN_FALL = 0.03
# The smallest fall, in units of the single steps' noise: a curve of pure noise, smoothed as
# here, falls by under 2 of them (the largest of 1,000 simulated flat runs of 100 steps).
_MIN_FALL_OVER_NOISE = 3.0
_MIN_POINTS = 5
# The suggestion: where the smoothed (log) loss has made this fraction of its final descent.
_VALLEY_FRACTION = 0.5


def _moving_average(values: np.ndarray, beta: float) -> np.ndarray:
    """The bias-corrected exponential moving average of `values`, as Adam corrects it."""
    average, out = 0.0, np.empty_like(values)
    for i, value in enumerate(values):
        average = beta * average + (1 - beta) * value
        out[i] = average / (1 - beta ** (i + 1))
    return out


def smooth_losses(raw_losses: list[float], smoothing: float, window: int) -> list[float]:
    """The step losses smoothed without lag, as `LRFinderResult.losses` holds them.

    A running median over `2 * window + 1` steps removes single-batch outliers; a moving
    average with factor `smoothing`, run forwards then backwards, smooths what is left without
    shifting the curve to larger rates (a one-way average lags by about `1 / (1 - smoothing)`
    steps). Positive losses are smoothed in log scale. Non-finite losses (the last step of a
    diverged test) are kept as they are.

    Args:
        raw_losses: each step's own loss.
        smoothing: the moving average's factor in [0, 1); 0 returns the raw losses.
        window: the running median's half-width in steps (0: no median).

    Returns:
        The smoothed losses, one per step.
    """
    raw = np.asarray(raw_losses, dtype=np.float64)
    finite = np.isfinite(raw)
    if smoothing == 0 or finite.sum() < 2:
        return [float(v) for v in raw]
    values = raw[finite]
    in_log = bool((values > 0).all())
    if in_log:
        values = np.log(values)
    if window > 0:
        values = np.array(
            [np.median(values[max(0, i - window) : i + window + 1]) for i in range(len(values))]
        )
    values = _moving_average(_moving_average(values, smoothing)[::-1], smoothing)[::-1]
    out = raw.copy()
    out[finite] = np.exp(values) if in_log else values
    return [float(v) for v in out]


@dataclass
class LRFinderResult:
    """What `Model.lr_find` measured.

    Attributes:
        lrs: the learning rate of each step.
        losses: the smoothed loss after each step (see `smooth_losses`).
        raw_losses: each step's own loss.
        diverged: whether the test stopped early because the loss diverged (or turned NaN).
        suggested_lr: the rate inside the valley of `losses` (see `suggestion`), or None.
        reason: why there is no suggestion (the curve too flat or too noisy, too few
            steps), or None when there is one.

    Example:
        >>> result = model.lr_find(x, y)
        >>> result.suggested_lr
        0.0143
        >>> result.plot()  # doctest: +SKIP
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    diverged: bool
    suggested_lr: float | None = field(init=False)
    reason: str | None = field(init=False)

    def __post_init__(self) -> None:
        self.suggested_lr, self.reason = self._suggest(0, 0)

    def suggestion(self, skip_begin: int = 0, skip_end: int = 0) -> float | None:
        """The rate where the smoothed loss has made half of its final descent.

        The valley is the stretch from the last point before the minimum of `losses` where
        the loss was still at its earlier high level down to that minimum; the suggestion is
        where the (log) loss crosses the middle level, interpolated in log10(lr).

        Args:
            skip_begin: points left out at the start.
            skip_end: points left out at the end.

        Returns:
            The learning rate, or None when the curve is too flat, too noisy or too short
            (`reason` says which for the default arguments).
        """
        return self._suggest(skip_begin, skip_end)[0]

    def _suggest(self, skip_begin: int, skip_end: int) -> tuple[float | None, str | None]:
        index = [
            i
            for i in range(skip_begin, max(len(self.losses) - skip_end, skip_begin))
            if math.isfinite(self.losses[i]) and self.lrs[i] > 0
        ]
        if self.raw_losses and not math.isfinite(self.raw_losses[0]):
            return None, (
                f"the loss of the first step (lr {self.lrs[0]:.3g}) is "
                f"{self.raw_losses[0]}: check the data and the model for NaN or inf"
            )
        if len(index) < _MIN_POINTS:
            return None, f"too few steps to read a curve from ({len(index)} usable)"
        losses = np.array([self.losses[i] for i in index])
        raw = np.array([self.raw_losses[i] for i in index])
        log_lrs = np.log10([self.lrs[i] for i in index])
        in_log = bool((losses > 0).all() and (raw[np.isfinite(raw)] > 0).all())
        if in_log:
            losses, raw = np.log(losses), np.log(raw)
        lowest = int(np.argmin(losses))
        fall = float(losses[: lowest + 1].max() - losses[lowest])
        relative = -math.expm1(-fall) if in_log else fall / max(abs(losses[0]), 1e-12)
        if relative < _MIN_FALL:
            return None, (
                f"the curve is too flat: the smoothed loss fell by {relative:.1%} at most "
                "(a model that is already trained, a range of rates too narrow, or a model "
                "that does not learn)"
            )
        steps = np.diff(raw[np.isfinite(raw)])
        noise = float(np.median(np.abs(steps))) / 0.6745 / math.sqrt(2) if steps.size else 0.0
        if fall < _MIN_FALL_OVER_NOISE * noise:
            return None, (
                "the curve is too noisy: the smoothed loss fell by "
                f"{fall / noise:.1f} times the noise of single steps (try a larger batch_size "
                "or more num_steps)"
            )
        level = losses[lowest] + _VALLEY_FRACTION * fall
        above = max(i for i in range(lowest + 1) if losses[i] >= level)
        if above == lowest:  # the level is the minimum itself (a fall of zero was ruled out)
            return float(10 ** log_lrs[above]), None
        share = (losses[above] - level) / (losses[above] - losses[above + 1])
        log_lr = log_lrs[above] + share * (log_lrs[above + 1] - log_lrs[above])
        return float(10**log_lr), None

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
            finite = [
                (lr, v) for lr, v in zip(self.lrs, self.losses, strict=True) if math.isfinite(v)
            ]
            loss = np.interp(
                math.log10(self.suggested_lr),
                np.log10([lr for lr, _ in finite]),
                [v for _, v in finite],
            )
            ax.plot(
                self.suggested_lr,
                loss,
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
    seed: Any,
) -> None:
    start, end = _check_positive("start_lr", start_lr), _check_positive("end_lr", end_lr)
    if end <= start:
        raise ValueError(f"`end_lr` must be greater than `start_lr`; got {end_lr} <= {start_lr}.")
    check_int("num_steps", num_steps, 2)
    check_int("batch_size", batch_size, 1, allow_none=True)
    if isinstance(smoothing, bool) or not isinstance(smoothing, numbers.Real):
        raise ValueError(f"`smoothing` must be a number in [0, 1); got {smoothing!r}.")
    if not 0 <= float(smoothing) < 1:
        raise ValueError(f"`smoothing` must be in [0, 1); got {smoothing!r}.")
    if diverge_threshold is not None:
        threshold = _check_positive("diverge_threshold", diverge_threshold)
        if threshold <= 1:
            raise ValueError(
                f"`diverge_threshold` must be > 1 (or None); got {diverge_threshold!r}."
            )
    check_verbose(verbose)
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0
    ):
        raise ValueError(f"`seed` must be a non-negative integer or None; got {seed!r}.")


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
        # A learning-rate schedule would overwrite the swept rate at every step: it is set
        # aside for the test (None is "no schedule" to the update) and put back afterwards.
        self.had_schedule = hasattr(optimizer, "kfit_lr_schedule")
        self.schedule = getattr(optimizer, "kfit_lr_schedule", None)
        optimizer.kfit_lr_schedule = None  # type: ignore[attr-defined]

    def restore(self) -> None:
        self.model.load_state_dict(self.weights)
        self.optimizer.load_state_dict(self.optimizer_state)
        if self.had_schedule:
            self.optimizer.kfit_lr_schedule = self.schedule  # type: ignore[attr-defined]
        else:
            del self.optimizer.kfit_lr_schedule  # type: ignore[attr-defined]
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
    smoothing: float = 0.8,
    diverge_threshold: float | None = 4.0,
    plot: bool = True,
    verbose: int | str = "auto",
    seed: int | None = 0,
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
        smoothing: the moving averages' factor `beta`: the running one that detects
            divergence, and the one run both ways for `losses` (0 keeps the raw losses).
        diverge_threshold: stop once the running average of the loss exceeds this many times
            its best (None never stops early); a NaN or infinite loss always stops the test.
        plot: draw the curve with `LRFinderResult.plot` when matplotlib is installed.
        verbose: `'auto'` or 1 (progress bar and the suggestion), 2 (the suggestion only), 0.
        seed: seeds the random generators for the test (shuffling, dropout), so that the same
            model and data give the same curve; None uses them as they are. Their states are
            restored afterwards either way.

    Returns:
        An `LRFinderResult` with the curve and `suggested_lr` (None, with `reason`, when the
        curve is too flat or too noisy; a warning says so).

    Raises:
        ValueError: for invalid arguments or data, or an uncompiled model, before any weight
            changes.

    Example:
        >>> model.compile(optimizer="adam", loss="mse")
        >>> result = model.lr_find(x, y)
        >>> model.compile(optimizer=kfit.optimizers.Adam(result.suggested_lr), loss="mse")
    """
    state = model._compiled("lr_find")
    _check_arguments(
        start_lr, end_lr, num_steps, batch_size, smoothing, diverge_threshold, verbose, seed
    )
    verbose = 1 if verbose == "auto" else int(verbose)
    batch_size = batch_size or 32
    data = data_module.make_data(
        x, y, sample_weight, model.float_dtype, batch_size=batch_size, shuffle=True
    )
    # Taken before the first-batch check, which draws random numbers for lazy modules and
    # sets every submodule's mode.
    rng = saving.rng_state()
    modes = [(module, module.training) for module in model.modules()]
    data = data.to(model.device)
    if data.in_memory:
        model._check_first_batch(data, batch_size)
    optimizer = model._optimizer_for_step()
    saved = _SavedState(model, optimizer, rng, modes)
    first_lr = float(optimizer.param_groups[0]["lr"])
    # Other parameter groups keep their ratio to the first one.
    ratios = [float(g["lr"]) / first_lr if first_lr else 1.0 for g in optimizer.param_groups]
    growth = (end_lr / start_lr) ** (1.0 / (num_steps - 1))
    lrs: list[float] = []
    raw: list[float] = []
    running: list[float] = []
    diverged = False
    bar = Progbar(num_steps, verbose=verbose) if verbose == 1 else None
    try:
        if seed is not None:
            torch.manual_seed(seed)
            np.random.seed(seed)
            random.seed(seed)
        model.train()
        average, best = 0.0, math.inf
        batches = next(model._batch_stream(data, batch_size, True, num_steps))
        for step, batch in enumerate(batches):
            lr = start_lr * growth**step
            for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
                group["lr"] = lr * ratio
            model.reset_metrics()
            model.train_step(data_module.as_yielded(batch))
            loss = float(state.loss_tracker.compute())  # sync point: once per step
            lrs.append(lr)
            raw.append(loss)
            if not math.isfinite(loss):
                running.append(loss)
                diverged = True
                break
            average = smoothing * average + (1 - smoothing) * loss
            value = average / (1 - smoothing ** (step + 1))
            running.append(value)
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
        bar.finish(len(lrs), {"lr": lrs[-1], "loss": running[-1]})
    # The running median spans about a decade of rates (half of one either side).
    window = round((num_steps - 1) / math.log10(end_lr / start_lr) / 2)
    result = LRFinderResult(lrs, smooth_losses(raw, smoothing, window), raw, diverged)
    if result.reason is not None:
        warnings.warn(f"lr_find: no suggestion: {result.reason}.", stacklevel=3)
    if verbose:
        stopped = f"; stopped at lr {lrs[-1]:.3g}, the loss diverging" if diverged else ""
        suggestion = (
            f"suggested learning rate: {result.suggested_lr:.3g}"
            if result.suggested_lr is not None
            else f"no suggestion: {result.reason}"
        )
        print(f"lr_find: {len(lrs)} steps{stopped}; {suggestion}.", flush=True)
    if plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return result
        result.plot()
    return result
