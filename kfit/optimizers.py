"""Keras optimizer ids and constructors, built as torch.optim optimizers.

`compile(optimizer="rmsprop")` gives `torch.optim.RMSprop(lr=0.001, alpha=0.9, eps=1e-7)`:
Keras's hyper-parameters on PyTorch's implementation. Two update rules differ slightly from
Keras's and are kept as PyTorch has them: RMSprop and Adagrad add epsilon outside the square
root, and Adam/AdamW/Adamax/Nadam add it to the bias-corrected root (Keras's "epsilon hat").
With Keras's tiny default epsilon the difference is far below the noise of training.

Keras-style constructors (`kfit.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0)`) return an
`Optimizer` spec; `compile` builds the torch optimizer from it once the parameters are known.
The Keras options `clipnorm`, `clipvalue`, `global_clipnorm` and `weight_decay` (decoupled,
applied before the update, as Keras does for every optimizer) run on the device before each
`optimizer.step()`, with no host read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from kfit import schedules
from kfit.registry import unknown_id_error

__all__ = [
    "SGD",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Ftrl",
    "KerasAttributes",
    "Lion",
    "Nadam",
    "Optimizer",
    "RMSprop",
    "deserialize",
    "get",
    "get_learning_rate",
    "schedules",
    "serialize",
    "set_learning_rate",
    "with_keras_attributes",
]


class _Lion(torch.optim.Optimizer):
    """Lion (Chen et al., 2023), with Keras's update rule; torch.optim has none."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.99)):
        super().__init__(params, {"lr": lr, "betas": betas})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else torch.enable_grad()(closure)()
        for group in self.param_groups:
            beta_1, beta_2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["momentum"] = torch.zeros_like(param)
                momentum = state["momentum"]
                direction = torch.sign(momentum * beta_1 + param.grad * (1.0 - beta_1))
                param.add_(direction, alpha=-group["lr"])
                momentum.mul_(beta_2).add_(param.grad, alpha=1.0 - beta_2)
        return loss


class _Ftrl(torch.optim.Optimizer):
    """FTRL-Proximal (McMahan et al., 2013), with Keras's update rule; torch.optim has none."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        lr_power: float = -0.5,
        initial_accumulator_value: float = 0.1,
        l1: float = 0.0,
        l2: float = 0.0,
        l2_shrinkage: float = 0.0,
        beta: float = 0.0,
    ):
        if lr_power > 0:
            raise ValueError(f"`learning_rate_power` must be <= 0; got {lr_power}.")
        defaults = {
            "lr": lr,
            "lr_power": lr_power,
            "init": initial_accumulator_value,
            "l1": l1,
            "l2": l2,
            "l2_shrinkage": l2_shrinkage,
            "beta": beta,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else torch.enable_grad()(closure)()
        for group in self.param_groups:
            lr, power = group["lr"], -group["lr_power"]
            l2 = group["l2"] + group["beta"] / (2.0 * lr)
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["accumulator"] = torch.full_like(param, group["init"])
                    state["linear"] = torch.zeros_like(param)
                accum, linear = state["accumulator"], state["linear"]
                grad = param.grad + 2.0 * group["l2_shrinkage"] * param
                new_accum = accum + torch.square(param.grad)
                linear.add_(grad - (new_accum.pow(power) - accum.pow(power)) / lr * param)
                quadratic = new_accum.pow(power) / lr + 2.0 * l2
                clipped = torch.clamp(linear, -group["l1"], group["l1"])
                param.copy_((clipped - linear) / quadratic)
                accum.copy_(new_accum)
        return loss


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
            learning_rate = _scheduled_rate(learning_rate, 0)
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
        self._built: torch.optim.Optimizer | None = None  # `apply` builds it on first use
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

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """Returns the torch optimizer over `params`."""
        kwargs = dict(self.torch_kwargs)
        if self.weight_decay and self.decoupled_decay_in_torch:
            kwargs["weight_decay"] = self.weight_decay
        optimizer = self.torch_class(list(params), lr=self._learning_rate, **kwargs)
        if self.schedule is not None:  # set_learning_rate refuses it, as Keras does
            optimizer.kfit_lr_schedule = self.schedule  # type: ignore[attr-defined]
        return with_keras_attributes(optimizer)

    # Keras's standalone use: `opt = kfit.optimizers.Adam(1e-4); opt.apply(grads, params)`.

    @property
    def learning_rate(self) -> float:
        """The learning rate (the built optimizer's, once `apply` has built it); settable."""
        if self._built is not None:
            return self._built.learning_rate  # type: ignore[attr-defined]
        if self.schedule is not None:
            return _scheduled_rate(self.schedule, 0)
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float | Callable[[int], float]) -> None:
        if self._built is not None:
            self._built.learning_rate = value  # type: ignore[attr-defined]
        elif callable(value) and not isinstance(value, bool):
            self.schedule = value
        else:
            if self.schedule is not None:
                raise TypeError(_SCHEDULED_RATE_NOT_SETTABLE)
            _check_rate(value)
            self._learning_rate = float(value)

    lr = learning_rate

    @property
    def iterations(self) -> int:
        """The number of updates `apply` has made (0 before the first)."""
        return 0 if self._built is None else self._built.iterations  # type: ignore[attr-defined]

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
            rate = _scheduled_rate(schedule, iteration)
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

_SCHEDULED_RATE_NOT_SETTABLE = (
    "This optimizer was created with a learning-rate schedule, so its learning rate is not "
    "settable to a number (as in Keras); assign another schedule, or give the optimizer a "
    "float `learning_rate` to set it from a callback."
)


def _check_rate(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ValueError(f"The learning rate must be a finite number >= 0; got {value!r}.")


class KerasAttributes:
    """Keras's optimizer attributes on the torch optimizers kfit builds.

    `learning_rate` (alias `lr`) reads the current rate and takes a float (all parameter
    groups keep their ratios) or a schedule `step -> float`, honoured from the next step;
    `iterations` counts the updates made. The count lives in the first parameter group
    (`'iterations'`), so it is saved and restored with the optimizer's `state_dict`.
    """

    @property
    def iterations(self) -> int:
        """The number of updates made so far."""
        return int(self.param_groups[0].get("iterations", 0))

    @property
    def learning_rate(self) -> float:
        """The rate the next update uses (a schedule's value at `iterations`)."""
        schedule = getattr(self, "kfit_lr_schedule", None)
        if schedule is not None:
            return _scheduled_rate(schedule, self.iterations)
        return get_learning_rate(self)

    @learning_rate.setter
    def learning_rate(self, value: float | Callable[[int], float]) -> None:
        if callable(value) and not isinstance(value, bool):
            rate = _scheduled_rate(value, self.iterations)
            self.kfit_lr_schedule = value
            for group in self.param_groups:
                group["lr"] = rate
            return
        set_learning_rate(self, value)

    lr = learning_rate

    def step(self, closure: Any = None) -> Any:
        """Torch's `step`, after setting a schedule's rate and counting the update."""
        if not getattr(self, "kfit_counted_outside", False):  # Optimizer.step counts itself
            group = self.param_groups[0]
            iteration = group.get("iterations", 0)
            schedule = getattr(self, "kfit_lr_schedule", None)
            if schedule is not None:
                rate = _scheduled_rate(schedule, iteration)
                for each in self.param_groups:
                    each["lr"] = rate
            group["iterations"] = iteration + 1
        return super().step(closure)  # type: ignore[misc]


_KERAS_CLASSES: dict[type, type] = {}
_KERAS_CLASS_PREFIX = "_KERAS_CLASSES_"


def __getattr__(name: str) -> Any:
    # Unpickling in a new process: the Keras-attribute class of a torch optimizer class.
    if name.startswith(_KERAS_CLASS_PREFIX):
        base_name = name.removeprefix(_KERAS_CLASS_PREFIX)
        base = {"_Lion": _Lion, "_Ftrl": _Ftrl}.get(base_name) or getattr(
            torch.optim, base_name, None
        )
        if isinstance(base, type) and issubclass(base, torch.optim.Optimizer):
            return _keras_class(base)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _keras_class(cls: type) -> type:
    keras_cls = _KERAS_CLASSES.get(cls)
    if keras_cls is None:
        keras_cls = type(cls.__name__, (KerasAttributes, cls), {"__module__": __name__})
        keras_cls.__qualname__ = f"{_KERAS_CLASS_PREFIX}{cls.__name__}"
        globals()[keras_cls.__qualname__] = keras_cls  # picklable by name
        _KERAS_CLASSES[cls] = keras_cls
    return keras_cls


def with_keras_attributes(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Gives a torch optimizer Keras's `learning_rate`, `lr` and `iterations` (in place).

    Its class becomes a subclass of its own class with `KerasAttributes`, so it is still an
    instance of its torch class and behaves as before.

    Returns:
        The same optimizer.
    """
    if not isinstance(optimizer, KerasAttributes):
        optimizer.__class__ = _keras_class(type(optimizer))
    return optimizer


def _scheduled_rate(schedule: Callable[[int], float], step: int) -> float:
    """The schedule's rate at `step`, checked to be a number >= 0 (host arithmetic only)."""
    rate = schedule(step)
    if isinstance(rate, np.generic) or (isinstance(rate, torch.Tensor) and rate.numel() == 1):
        rate = rate.item()  # a tensor-valued schedule costs a host read at every update
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < math.inf:
        raise ValueError(
            f"The learning-rate schedule {schedule!r} must return a finite number >= 0; at step "
            f"{step} it returned {rate!r}."
        )
    return float(rate)


def _common(kwargs: dict[str, Any]) -> dict[str, Any]:
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


class SGD(Optimizer):
    """Keras SGD: `learning_rate=0.01`, `momentum=0.0`, `nesterov=False`."""

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            torch.optim.SGD,
            learning_rate,
            {"momentum": momentum, "nesterov": nesterov},
            keras_options={"momentum": momentum, "nesterov": nesterov},
            **_common(kwargs),
        )


class RMSprop(Optimizer):
    """Keras RMSprop: `learning_rate=0.001`, `rho=0.9`, `momentum=0.0`, `epsilon=1e-7`."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            torch.optim.RMSprop,
            learning_rate,
            {"alpha": rho, "momentum": momentum, "eps": epsilon, "centered": centered},
            keras_options={
                "rho": rho,
                "momentum": momentum,
                "epsilon": epsilon,
                "centered": centered,
            },
            **_common(kwargs),
        )


class Adam(Optimizer):
    """Keras Adam: `learning_rate=0.001`, `beta_1=0.9`, `beta_2=0.999`, `epsilon=1e-7`."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            torch.optim.Adam,
            learning_rate,
            {"betas": (beta_1, beta_2), "eps": epsilon, "amsgrad": amsgrad},
            keras_options={
                "beta_1": beta_1,
                "beta_2": beta_2,
                "epsilon": epsilon,
                "amsgrad": amsgrad,
            },
            **_common(kwargs),
        )


class AdamW(Optimizer):
    """Keras AdamW: Adam with decoupled `weight_decay=0.004`."""

    decoupled_decay_in_torch = True

    def __init__(
        self,
        learning_rate: float = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            torch.optim.AdamW,
            learning_rate,
            {"betas": (beta_1, beta_2), "eps": epsilon, "amsgrad": amsgrad},
            weight_decay=weight_decay,
            keras_options={
                "beta_1": beta_1,
                "beta_2": beta_2,
                "epsilon": epsilon,
                "amsgrad": amsgrad,
            },
            **_common(kwargs),
        )


class Adagrad(Optimizer):
    """Keras Adagrad: `learning_rate=0.001`, `initial_accumulator_value=0.1`, `epsilon=1e-7`."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        **kwargs: Any,
    ):
        super().__init__(
            torch.optim.Adagrad,
            learning_rate,
            {"initial_accumulator_value": initial_accumulator_value, "eps": epsilon},
            keras_options={
                "initial_accumulator_value": initial_accumulator_value,
                "epsilon": epsilon,
            },
            **_common(kwargs),
        )


class Adadelta(Optimizer):
    """Keras Adadelta: `learning_rate=0.001`, `rho=0.95`, `epsilon=1e-7`."""

    def __init__(
        self, learning_rate: float = 0.001, rho: float = 0.95, epsilon: float = 1e-7, **kwargs: Any
    ):
        super().__init__(
            torch.optim.Adadelta,
            learning_rate,
            {"rho": rho, "eps": epsilon},
            keras_options={"rho": rho, "epsilon": epsilon},
            **_common(kwargs),
        )


class Adamax(Optimizer):
    """Keras Adamax: `learning_rate=0.001`, `beta_1=0.9`, `beta_2=0.999`, `epsilon=1e-7`."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **kwargs: Any,
    ):
        super().__init__(
            torch.optim.Adamax,
            learning_rate,
            {"betas": (beta_1, beta_2), "eps": epsilon},
            keras_options={"beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon},
            **_common(kwargs),
        )


class Nadam(Optimizer):
    """Keras Nadam: `learning_rate=0.001`, `beta_1=0.9`, `beta_2=0.999`, `epsilon=1e-7`.

    Keras's momentum schedule `beta_1 * (1 - 0.5 * 0.96**(0.004 t))` is torch's
    `momentum_decay=0.004`.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **kwargs: Any,
    ):
        super().__init__(
            torch.optim.NAdam,
            learning_rate,
            {"betas": (beta_1, beta_2), "eps": epsilon, "momentum_decay": 0.004},
            keras_options={"beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon},
            **_common(kwargs),
        )


class Adafactor(Optimizer):
    """Keras Adafactor on torch's relative-step Adafactor.

    Keras defaults: `learning_rate=0.001`, `beta_2_decay=-0.8`, `epsilon_1=1e-30`,
    `epsilon_2=1e-3`, `clip_threshold=1.0`.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_2_decay: float = -0.8,
        epsilon_1: float = 1e-30,
        epsilon_2: float = 1e-3,
        clip_threshold: float = 1.0,
        **kwargs: Any,
    ):
        super().__init__(
            torch.optim.Adafactor,
            learning_rate,
            {"beta2_decay": beta_2_decay, "eps": (epsilon_1, epsilon_2), "d": clip_threshold},
            keras_options={
                "beta_2_decay": beta_2_decay,
                "epsilon_1": epsilon_1,
                "epsilon_2": epsilon_2,
                "clip_threshold": clip_threshold,
            },
            **_common(kwargs),
        )


class Lion(Optimizer):
    """Keras Lion: `learning_rate=0.001`, `beta_1=0.9`, `beta_2=0.99`."""

    def __init__(
        self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.99, **kwargs: Any
    ):
        super().__init__(
            _Lion,
            learning_rate,
            {"betas": (beta_1, beta_2)},
            keras_options={"beta_1": beta_1, "beta_2": beta_2},
            **_common(kwargs),
        )


class Ftrl(Optimizer):
    """Keras FTRL-Proximal.

    Keras defaults: `learning_rate=0.001`, `learning_rate_power=-0.5`,
    `initial_accumulator_value=0.1`, l1/l2/l2-shrinkage strengths 0, `beta=0`.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        learning_rate_power: float = -0.5,
        initial_accumulator_value: float = 0.1,
        l1_regularization_strength: float = 0.0,
        l2_regularization_strength: float = 0.0,
        l2_shrinkage_regularization_strength: float = 0.0,
        beta: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(
            _Ftrl,
            learning_rate,
            {
                "lr_power": learning_rate_power,
                "initial_accumulator_value": initial_accumulator_value,
                "l1": l1_regularization_strength,
                "l2": l2_regularization_strength,
                "l2_shrinkage": l2_shrinkage_regularization_strength,
                "beta": beta,
            },
            keras_options={
                "learning_rate_power": learning_rate_power,
                "initial_accumulator_value": initial_accumulator_value,
                "l1_regularization_strength": l1_regularization_strength,
                "l2_regularization_strength": l2_regularization_strength,
                "l2_shrinkage_regularization_strength": l2_shrinkage_regularization_strength,
                "beta": beta,
            },
            **_common(kwargs),
        )


#: Keras's optimizer string ids (matched ignoring case) and the constructors they call.
ALL_OBJECTS_DICT: dict[str, type[Optimizer]] = {
    cls.__name__.lower(): cls
    for cls in (SGD, RMSprop, Adam, AdamW, Adagrad, Adadelta, Adamax, Nadam, Adafactor, Lion, Ftrl)
}

#: Keras ids kfit knows but does not build, with the reason.
UNSUPPORTED = {
    "muon": "Keras's Muon mixes Muon and AdamW per variable; pass torch.optim.Muon yourself",
    "schedulefreeadamw": "not implemented in kfit",
    "lossscaleoptimizer": "use compile(precision='16-mixed') instead",
    "multioptimizer": "build a torch optimizer with parameter groups instead",
    "optimizermap": "build a torch optimizer with parameter groups instead",
    "optimizer": "name a concrete optimizer such as 'adam'",
}


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """Returns an optimizer spec as a plain dict, in the form Keras 3 writes.

    Args:
        optimizer: a `kfit.optimizers` object such as `Adam(learning_rate=1e-3)`.

    Returns:
        `{"module", "class_name", "config", "registered_name"}`; a schedule learning rate is
        itself serialized inside `config`.

    Raises:
        TypeError: for a torch optimizer (it has no Keras config) or anything else.
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"`optimizer` must be a kfit.optimizers.Optimizer to serialize; got {optimizer!r} "
            f"of type {type(optimizer).__name__}. A torch optimizer has no config."
        )
    cls = type(optimizer)
    builtin = ALL_OBJECTS_DICT.get(cls.__name__.lower()) is cls
    return {
        "module": "keras.optimizers" if builtin else cls.__module__,
        "class_name": cls.__name__,
        "config": optimizer.get_config(),
        "registered_name": None if builtin else cls.__name__,
    }


def deserialize(
    config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None
) -> Optimizer:
    """Builds an optimizer spec from `serialize`'s dict (or Keras's).

    Args:
        config: a dict with `"class_name"` and `"config"`.
        custom_objects: your own `Optimizer` subclasses and schedules by class name.

    Returns:
        The optimizer spec.

    Raises:
        TypeError: if `config` is not a dict of that form.
        ValueError: for an unknown class name (naming the closest one) or bad arguments.
    """
    if not isinstance(config, Mapping) or not isinstance(config.get("class_name"), str):
        raise TypeError(
            "A serialized optimizer must be a dict {'class_name': str, 'config': dict}; "
            f"got {config!r}."
        )
    custom = dict(custom_objects or {})
    class_name = config["class_name"]
    cls = custom.get(class_name) or ALL_OBJECTS_DICT.get(class_name.lower())
    if cls is None:
        if class_name.lower() in UNSUPPORTED:
            raise ValueError(
                f"Optimizer {class_name!r} is not supported: {UNSUPPORTED[class_name.lower()]}."
            )
        raise unknown_id_error(
            "optimizer", class_name, list(ALL_OBJECTS_DICT), "kfit.optimizers.ALL_OBJECTS_DICT"
        )
    return cls.from_config(dict(config.get("config") or {}), custom_objects=custom)


def get(identifier: Any) -> Optimizer | torch.optim.Optimizer | type[torch.optim.Optimizer]:
    """Resolves an optimizer identifier.

    Args:
        identifier: a Keras string id (any case), a config dict (what `serialize` or
            Keras's `keras.optimizers.serialize` returns), a kfit `Optimizer`, a torch
            optimizer class, or a torch optimizer instance.

    Returns:
        A kfit `Optimizer` spec for string ids; the identifier otherwise.

    Raises:
        ValueError: for an unknown string id (naming the closest valid one).
        TypeError: for anything else.
    """
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in UNSUPPORTED:
            raise ValueError(f"Optimizer {identifier!r} is not supported: {UNSUPPORTED[key]}.")
        if key not in ALL_OBJECTS_DICT:
            raise unknown_id_error(
                "optimizer", identifier, list(ALL_OBJECTS_DICT), "kfit.optimizers.ALL_OBJECTS_DICT"
            )
        return ALL_OBJECTS_DICT[key]()
    if isinstance(identifier, Mapping):
        return deserialize(identifier)
    if isinstance(identifier, Optimizer | torch.optim.Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, torch.optim.Optimizer):
        return identifier
    raise TypeError(
        f"`optimizer` must be a string id, a kfit.optimizers.Optimizer, or a torch optimizer "
        f"class or instance; got {identifier!r} of type {type(identifier).__name__}."
    )


def get_learning_rate(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of the optimizer's first parameter group."""
    return float(optimizer.param_groups[0]["lr"])


def set_learning_rate(optimizer: torch.optim.Optimizer, value: float) -> None:
    """Sets the learning rate, keeping the ratios between parameter groups.

    The first group gets `value`; every other group is scaled by the same factor, so groups
    that were given different rates keep their proportions (a single group just gets `value`).

    Raises:
        ValueError: if `value` is negative or not a number.
    """
    _check_rate(value)
    if getattr(optimizer, "kfit_lr_schedule", None) is not None:
        raise TypeError(_SCHEDULED_RATE_NOT_SETTABLE)
    first = float(optimizer.param_groups[0]["lr"])
    for group in optimizer.param_groups:
        group["lr"] = float(value) if first == 0 else float(group["lr"]) * float(value) / first
