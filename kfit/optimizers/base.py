"""`Optimizer`: the Keras-style optimizer description that `compile` builds into torch's.

It holds the torch class and hyper-parameters, and runs Keras's options that torch lacks:
`clipnorm`, `clipvalue`, `global_clipnorm`, decoupled `weight_decay` (applied before the
update, as Keras does for every optimizer), learning-rate schedules and
`gradient_accumulation_steps`, on the device before each `optimizer.step()` with no host
read. It also serves Keras's standalone `apply` / `apply_gradients`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from kfit import schedules
from kfit.optimizers.keras_attributes import KerasAttributes, with_keras_attributes
from kfit.optimizers.learning_rate import (
    SCHEDULED_RATE_NOT_SETTABLE,
    check_rate,
    scheduled_rate,
)


class Optimizer:
    """A Keras-style optimizer description that `compile` turns into a torch optimizer.

    Args:
        torch_class: the `torch.optim.Optimizer` subclass to build.
        learning_rate: the learning rate: a float >= 0, or a schedule such as
            `kfit.optimizers.schedules.ExponentialDecay(...)` (any function
            `step -> float`), evaluated before every update at the number of training steps
            taken so far, as Keras does.
        torch_kwargs: the other torch hyper-parameters, already in torch's names.
        weight_decay: decoupled weight decay `w -= w * weight_decay * lr` before each update.
        clipnorm: clip each gradient tensor to this L2 norm.
        clipvalue: clip each gradient entry to `[-clipvalue, clipvalue]`.
        global_clipnorm: clip all gradients together to this global L2 norm.
        gradient_accumulation_steps: update the weights every this many steps, with the
            average of the gradients since the last update (Keras); None or 1 updates at
            every step.
        name: a name for messages.
        keras_options: the subclass's own hyper-parameters in Keras's names, for
            `get_config`.
    """

    decoupled_decay_in_torch = False

    def __init__(
        self,
        torch_class: type[torch.optim.Optimizer],
        learning_rate: float,
        torch_kwargs: dict[str, Any] | None = None,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        keras_options: Mapping[str, Any] | None = None,
    ):
        self.schedule: Callable[[int], float] | None = None
        if callable(learning_rate) and not isinstance(learning_rate, bool):
            self.schedule = learning_rate
            learning_rate = scheduled_rate(learning_rate, 0)
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float):
            raise TypeError(
                f"`learning_rate` must be a float or a schedule (a function step -> float); "
                f"got {learning_rate!r}."
            )
        if not 0 <= learning_rate < math.inf:  # also refuses NaN
            raise ValueError(f"`learning_rate` must be a finite number >= 0; got {learning_rate}.")
        if gradient_accumulation_steps is not None and (
            isinstance(gradient_accumulation_steps, bool)
            or not isinstance(gradient_accumulation_steps, int)
            or gradient_accumulation_steps < 1
        ):
            raise ValueError(
                "`gradient_accumulation_steps` must be an integer >= 1 or None; got "
                f"{gradient_accumulation_steps!r}."
            )
        self.gradient_accumulation_steps = gradient_accumulation_steps or 1
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        given = [k for k, v in clips.items() if v is not None]
        if len(given) > 1:
            raise ValueError(
                f"Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be "
                f"set; got {given}."
            )
        for key, value in clips.items():
            if value is not None and not 0 < value < math.inf:  # also refuses NaN
                raise ValueError(f"`{key}` must be a finite number > 0; got {value}.")
        if weight_decay is not None and (
            isinstance(weight_decay, bool)
            or not isinstance(weight_decay, int | float)
            or not 0 <= weight_decay < math.inf
        ):
            raise ValueError(f"`weight_decay` must be a finite number >= 0; got {weight_decay!r}.")
        self.torch_class = torch_class
        self._learning_rate = float(learning_rate)
        self._built: KerasAttributes | None = None  # `apply` builds it on first use
        self.torch_kwargs = dict(torch_kwargs or {})
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.name = name or type(self).__name__.lower()
        self._gradient_accumulation_steps_given = gradient_accumulation_steps
        self.keras_options = dict(keras_options or {})

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments in Keras's names, as plain values.

        A `kfit.schedules` learning rate is written as its serialized dict, as Keras does.

        Raises:
            TypeError: for a learning-rate schedule that is a plain function (it has no
                config).
        """
        rate: Any = self._learning_rate
        if self.schedule is not None:
            if not isinstance(self.schedule, schedules.LearningRateSchedule):
                raise TypeError(
                    f"The learning rate {self.schedule!r} is a plain function, which has no "
                    "config; use a kfit.schedules.LearningRateSchedule to serialize it."
                )
            rate = schedules.serialize(self.schedule)
        return {
            "name": self.name,
            "learning_rate": rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "gradient_accumulation_steps": self._gradient_accumulation_steps_given,
            **self.keras_options,
        }

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None
    ) -> Optimizer:
        """Builds the optimizer from `get_config()`'s dict, or from Keras's own config.

        Keras options kfit does not implement are accepted at their default values
        (`use_ema=False`, `loss_scale_factor=None`, ...); other values raise.

        Args:
            config: the constructor's arguments by name.
            custom_objects: your own schedule classes by name, for a serialized schedule.

        Raises:
            ValueError: for a Keras option kfit does not implement, set to another value.
        """
        config = dict(config)
        for key, default in _KERAS_ONLY_DEFAULTS.items():
            if key in config:
                value = config.pop(key)
                if value != default:
                    raise ValueError(
                        f"The Keras optimizer option {key}={value!r} is not supported by kfit "
                        f"(only its default {default!r})."
                    )
        rate = config.get("learning_rate")
        if isinstance(rate, Mapping):
            config["learning_rate"] = schedules.deserialize(rate, custom_objects)
        return cls(**config)

    def build(self, params: Iterable[torch.nn.Parameter]) -> KerasAttributes:
        """Returns the torch optimizer over `params`, with Keras's attributes."""
        kwargs = dict(self.torch_kwargs)
        if self.weight_decay and self.decoupled_decay_in_torch:
            kwargs["weight_decay"] = self.weight_decay
        # A callable, not the class's own type: torch's base class takes `defaults`, the
        # optimizers themselves `lr` and their hyper-parameters.
        make: Callable[..., torch.optim.Optimizer] = self.torch_class
        optimizer = with_keras_attributes(make(list(params), lr=self._learning_rate, **kwargs))
        if self.schedule is not None:  # set_learning_rate refuses it, as Keras does
            optimizer.kfit_lr_schedule = self.schedule
        return optimizer

    # Keras's standalone use: `opt = kfit.optimizers.Adam(1e-4); opt.apply(grads, params)`.

    @property
    def learning_rate(self) -> float:
        """The learning rate (the built optimizer's, once `apply` has built it); settable."""
        if self._built is not None:
            return self._built.learning_rate
        if self.schedule is not None:
            return scheduled_rate(self.schedule, 0)
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float | Callable[[int], float]) -> None:
        if self._built is not None:
            self._built.learning_rate = value
        elif callable(value) and not isinstance(value, bool):
            self.schedule = value
        else:
            if self.schedule is not None:
                raise TypeError(SCHEDULED_RATE_NOT_SETTABLE)
            check_rate(value)
            self._learning_rate = float(value)

    lr = learning_rate

    @property
    def iterations(self) -> int:
        """The number of updates `apply` has made (0 before the first)."""
        return 0 if self._built is None else self._built.iterations

    def apply(
        self,
        grads: Sequence[torch.Tensor | None],
        trainable_variables: Iterable[torch.nn.Parameter] | None = None,
    ) -> None:
        """Updates `trainable_variables` with `grads`, as Keras's `optimizer.apply` does.

        The torch optimizer is built over `trainable_variables` on the first call; later
        calls update the same parameters (they may be omitted). Clipping, decoupled weight
        decay and a learning-rate schedule apply as in `compile`;
        `gradient_accumulation_steps` does not (it belongs to `fit`).

        Args:
            grads: one gradient per variable (None skips that variable).
            trainable_variables: the parameters, in the order of `grads`.

        Raises:
            ValueError: if the numbers of gradients and variables differ, or no variables
                were ever given.
        """
        grads = list(grads)
        if self._built is None:
            if trainable_variables is None:
                raise ValueError(
                    "The first `apply` needs `trainable_variables`: the parameters to update."
                )
            self._built = self.build(trainable_variables)
        params = (
            list(trainable_variables)
            if trainable_variables is not None
            else [p for g in self._built.param_groups for p in g["params"]]
        )
        if len(grads) != len(params):
            raise ValueError(
                f"`grads` must hold one gradient per variable ({len(params)}); got {len(grads)}."
            )
        with torch.no_grad():
            for param, grad in zip(params, grads, strict=True):
                if grad is not None and param.grad is not grad:
                    param.grad = grad.detach()
            self.before_step(self._built)
            self._built.step()

    def apply_gradients(
        self, grads_and_vars: Iterable[tuple[torch.Tensor | None, torch.nn.Parameter]]
    ) -> None:
        """`apply` for `zip(grads, variables)` (Keras's older spelling)."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears the gradients of the variables `apply` updates (nothing before it is built)."""
        if self._built is not None:
            self._built.zero_grad(set_to_none=set_to_none)

    @property
    def has_step_controls(self) -> bool:
        """Whether `step` does more than `zero_grad`, `backward`, `optimizer.step()`."""
        decay = self.weight_decay and not self.decoupled_decay_in_torch
        return bool(
            decay
            or self.clipnorm
            or self.clipvalue
            or self.global_clipnorm
            or self.schedule is not None
            or self.gradient_accumulation_steps > 1
        )

    def step(
        self,
        optimizer: torch.optim.Optimizer,
        loss: torch.Tensor,
        scaler: torch.amp.GradScaler | None = None,
    ) -> None:
        """Back-propagates `loss` and updates the weights with Keras's optimizer options.

        With `gradient_accumulation_steps=k`, gradients add up over `k` calls (each loss
        scaled by `1/k`, so the update uses their average) and only every `k`-th call
        updates. Before an update: the scheduled learning rate for this step, then clipping
        and decoupled weight decay. The step count lives in the optimizer's first parameter
        group (`'iterations'`), so it is saved and restored with the optimizer's state.
        With a `scaler` (`precision='16-mixed'`) the loss is scaled before `backward` and the
        gradients unscaled before clipping.
        """
        first_group = optimizer.param_groups[0]
        iteration = first_group.get("iterations", 0)
        accumulation = self.gradient_accumulation_steps
        if iteration % accumulation == 0:
            optimizer.zero_grad(set_to_none=True)
        scaled = loss if accumulation == 1 else loss / accumulation
        (scaled if scaler is None else scaler.scale(scaled)).backward()
        first_group["iterations"] = iteration + 1
        if (iteration + 1) % accumulation:
            return  # still accumulating
        schedule = getattr(optimizer, "kfit_lr_schedule", self.schedule)  # may be reassigned
        if schedule is not None:
            rate = scheduled_rate(schedule, iteration)
            for group in optimizer.param_groups:
                group["lr"] = rate
        if scaler is None:
            self.before_step(optimizer)
            optimizer.step()
            return
        scaler.unscale_(optimizer)  # clip the true gradients
        self.before_step(optimizer)
        scaler.step(optimizer)
        scaler.update()

    @torch.no_grad()
    def before_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Clips gradients and applies decoupled weight decay, in Keras's order, on the device."""
        for group in optimizer.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if self.clipvalue is not None:
                torch._foreach_clamp_min_(grads, -self.clipvalue)
                torch._foreach_clamp_max_(grads, self.clipvalue)
            elif self.clipnorm is not None:
                norms = torch._foreach_norm(grads)
                scales = [self.clipnorm / torch.clamp(n, min=self.clipnorm) for n in norms]
                torch._foreach_mul_(grads, scales)
            elif self.global_clipnorm is not None:
                total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
                torch._foreach_mul_(
                    grads, self.global_clipnorm / torch.clamp(total, min=self.global_clipnorm)
                )
            if self.weight_decay and not self.decoupled_decay_in_torch:
                torch._foreach_mul_(params, 1.0 - self.weight_decay * group["lr"])

    def __repr__(self) -> str:
        rate = self.schedule if self.schedule is not None else self._learning_rate
        return f"{type(self).__name__}(learning_rate={rate!r})"


#: Keras optimizer options kfit does not implement, accepted in configs at these defaults.
_KERAS_ONLY_DEFAULTS: dict[str, Any] = {
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "relative_step": True,  # Adafactor: torch's is the relative-step form
}


def common_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Checks the Keras options every optimizer constructor takes besides its own.

    Args:
        kwargs: the constructor's other keyword arguments.

    Returns:
        `kwargs`, to pass on to `Optimizer.__init__`.

    Raises:
        TypeError: for an argument that is not one of those options.
    """
    allowed = {
        "weight_decay",
        "clipnorm",
        "clipvalue",
        "global_clipnorm",
        "gradient_accumulation_steps",
        "name",
    }
    unknown = set(kwargs) - allowed
    if unknown:
        raise TypeError(
            f"Unexpected optimizer arguments {sorted(unknown)}; the Keras options "
            f"kfit supports are {sorted(allowed)}."
        )
    return kwargs
