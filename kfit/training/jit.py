"""`compile(jit_compile=True)`: the training step through `torch.compile`.

**The whole step** (`WholeStep`, used by kfit's own `train_step`): one compiled function runs
the forward pass, the loss (with its `add_loss` terms), `torch.autograd.grad` of the loss, the
gradient accumulation, Keras's clipping and decay, and the optimizer's update, so TorchDynamo
captures all of it as one graph (`fullgraph=True`) that Inductor fuses. The update is torch's
own functional form of the optimizer (`torch.optim.adam.adam`, ...; SGD, Adam, AdamW and
RMSprop), with the learning rate as a tensor so that a schedule or a callback changing it does
not recompile. Only the host bookkeeping stays eager: the step count, the scheduled rate, and
the metric updates (the accumulators count samples in host integers, which a graph would guard
on and recompile for at every step; the per-output losses and `add_loss` terms the graph
computes are handed to their trackers after it).

The first training step runs eagerly (it builds the loss, the metrics and the optimizer's state,
and raises shape errors as the eager step does), and so does a batch of another size than the
compiled one (the last partial batch): no recompilation for it. With gradient accumulation
(`k` steps) there are up to three graphs: the cycle's first step, the middle ones and the
updating one. `model.jit_compile_seconds` holds the time the compiling calls took.

`jit_compile="reduce-overhead"` on CUDA compiles the same step in CUDA graphs (Inductor's
`mode="reduce-overhead"`): the weights, the optimizer's state and the rate tensors are static
addresses, each batch from the data path is copied into the graph's static input buffers, and
nothing reads back to the host during a step.

Where the whole step cannot be captured (an optimizer without a functional form, a custom
`compute_loss`, `precision="16-mixed"`'s gradient scaler, torchrun's DDP, an operation dynamo
cannot trace, e.g. `nn.LSTM`), kfit warns once and falls back to **the forward pass and loss**
alone: one compiled function computes the predictions and the loss of a batch (AOTAutograd
compiles its backward pass as well) and the optimizer and metric updates stay eager. A custom
`train_step` takes that path too (its `compute_loss`/`call_forward` calls are compiled). There,
a model with several logged output losses, with `add_loss` terms or with its own
`compute_loss` (which may update trackers) compiles its forward pass alone and computes the
loss eagerly.

The compiled functions are module-level and shared by every model (dynamo keys its cache on
the code and guards on the model's type and structure); they take the model as an argument
and keep no reference to it, so deleting a model frees it. Dynamo's recompile limit (8 per
function) is therefore shared by the models of a process too: past it, dynamo warns and the
functions run eagerly (the calls inside then take the eager path, see `Jit.active`).

Where compilation fails (no C++ compiler for the CPU backend, an unsupported Python, an
operation dynamo cannot trace), the step is rerun eagerly: when that succeeds kfit warns once
and runs the model eagerly from then on; when it fails too, the eager error is raised, since
it is the model's own.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import torch

from kfit import data as data_module
from kfit.compiled import loss_terms
from kfit.optimizers import KerasAttributes
from kfit.training.step import Step


def _forward_and_loss(model: Any, x: Any, y: Any, sample_weight: Any) -> tuple[Any, Any]:
    return model._forward_and_loss(x, y, sample_weight)


def _forward(model: Any, x: Any) -> Any:
    return model.call_forward(x)


_compiled: dict[Callable[..., Any], Callable[..., Any]] = {}


def _compiled_version(fn: Callable[..., Any]) -> Callable[..., Any]:
    if fn not in _compiled:
        _compiled[fn] = torch.compile(fn)
    return _compiled[fn]


def check_available() -> None:
    """Raises what `torch.compile` raises where it cannot run at all (e.g. its Python)."""
    _compiled_version(_forward)
    _compiled_version(_forward_and_loss)


class Jit:
    """One model's compiled training step (whole, or its forward pass and loss).

    Args:
        mode: None (Inductor's default) or `"reduce-overhead"` (CUDA graphs) for the whole
            step.
    """

    def __init__(self, mode: str | None = None) -> None:
        self.enabled = True  # False after a compilation failure: eager from then on
        self.mode = mode  # None, or "reduce-overhead" (CUDA graphs)
        self.whole_step = True  # False once the whole step proved impossible: see above
        self.compile_seconds = 0.0  # the compiling calls' time (`model.jit_compile_seconds`)
        self._paused = False
        self._state: _StepState | None = None
        self._warned_custom_step = False

    def active(self) -> bool:
        """Whether a call now should go through `torch.compile` (not from inside one).

        A flag rather than `torch.compiler.is_compiling()`: dynamo may run the compiled
        function's frame untraced (past its recompile limit, or disabled), and the call inside
        must then still take the eager path instead of coming back here.
        """
        return self.enabled and not self._paused

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Runs eagerly inside (kfit's first-batch check: no graph compiled just for it)."""
        was_paused, self._paused = self._paused, True
        try:
            yield
        finally:
            self._paused = was_paused

    def train_step(self, model: Any, x: Any, y: Any, sample_weight: Any) -> bool:
        """Runs kfit's training step on a batch; False when the caller should run it instead.

        The caller's step (with the forward pass and loss compiled) runs when the whole step
        cannot be compiled. Else: eagerly while the optimizer has not updated yet and for a
        batch of another size than the compiled one; compiled otherwise.
        """
        if not (self.whole_step and self.active()):
            return False
        optimizer = model.optimizer
        batch_size = data_module.batch_size_of(x)
        state = self._state
        if state is None or not state.holds(optimizer):
            if optimizer is not None:
                blocker = whole_step_blocker(model)
                if blocker is not None:
                    self._give_up(blocker)
                    return False
            first_group = optimizer.param_groups[0] if optimizer is not None else {}
            if first_group.get("iterations", 0) < self._accumulation(model):
                self._eager_step(model, x, y, sample_weight)  # builds the optimizer's state
                return True
            state = self._state = _StepState(model, optimizer, batch_size)
            self._prepare(model, state)
        if batch_size != state.batch_size:  # the last partial batch: no recompilation
            self._eager_step(model, x, y, sample_weight)
            return True
        self._compiled_step(model, state, x, y, sample_weight)
        return True

    @staticmethod
    def _accumulation(model: Any) -> int:
        controls = model.compile_state.step_controls
        return controls.gradient_accumulation_steps if controls is not None else 1

    def _prepare(self, model: Any, state: _StepState) -> None:
        """Once per optimizer: `.grad` as the graph expects it; static addresses on CUDA."""
        if state.accumulation == 1:
            state.optimizer.zero_grad(set_to_none=True)  # the graph keeps its gradients
        if state.params[0].device.type != "cuda":
            return
        for group in state.groups:  # step counts on the device: no host read in a step
            if "capturable" in group:
                group["capturable"] = True
        for param_state in state.states:
            if isinstance(param_state.get("step"), torch.Tensor):
                param_state["step"] = param_state["step"].to(state.params[0].device)
        if self.mode == "reduce-overhead":
            for tensor in [*state.rate_tensors, *_tensors_of(state.states)]:
                torch._dynamo.mark_static_address(tensor)

    def _eager_step(self, model: Any, x: Any, y: Any, sample_weight: Any) -> None:
        """The eager training step (as `Step.train_step`), nothing compiled."""
        with self.paused():
            with model.compile_state.precision.autocast():
                y_pred, loss = model._forward_and_loss(x, y, sample_weight)
            model.apply_gradients(loss)
            model.update_metrics(loss, y, y_pred, sample_weight, data_module.batch_size_of(x))

    def _compiled_step(
        self, model: Any, state: _StepState, x: Any, y: Any, sample_weight: Any
    ) -> None:
        optimizer = state.optimizer
        first_group = optimizer.param_groups[0]
        iteration = first_group.get("iterations", 0)
        accumulation = state.accumulation
        if accumulation == 1:
            phase = _ONLY
        else:
            position = iteration % accumulation
            phase = _START if position == 0 else _FINISH if position == accumulation - 1 else _ADD
            for param in state.params:  # the accumulation buffers
                if param.grad is None:
                    param.grad = torch.zeros_like(param)
        rates = [group["lr"] for group in state.groups]
        if phase in (_ONLY, _FINISH) and getattr(optimizer, "kfit_lr_schedule", None):
            # The schedule's rate at `iteration` (host only).
            rate = cast(KerasAttributes, optimizer).learning_rate
            for group in state.groups:
                group["lr"] = rate
        state.set_rates()
        first_group["iterations"] = iteration + 1
        stack = loss_terms.running_stack()  # `kfit.add_loss` from submodules adds here
        stack.append(model._loss_terms)
        state.swap_trackers(model, recording=True)
        compiling = phase not in state.phases_run  # its first call compiles its graph
        start = time.perf_counter()
        try:
            with self.paused(), torch._dynamo.config.patch(trace_autograd_ops=True):
                if self.mode == "reduce-overhead":
                    torch.compiler.cudagraph_mark_step_begin()
                # With dynamo disabled, `fullgraph=True` would raise: the step runs as Python.
                step = _whole_step if torch._dynamo.config.disable else _compiled_step(self.mode)
                loss, y_pred = step(model, state, x, y, sample_weight, phase)
        except Exception as compile_error:  # noqa: BLE001 - told apart by the eager rerun
            for recorder in [*state.loss_recorders.values(), *state.term_recorders.values()]:
                recorder.updates.clear()
            state.swap_trackers(model, recording=False)
            stack.pop()
            first_group["iterations"] = iteration
            for group, rate in zip(state.groups, rates, strict=True):
                group["lr"] = rate
            self._eager_step(model, x, y, sample_weight)
            self._give_up(
                f"{type(compile_error).__name__}: "
                f"{str(compile_error).strip().splitlines()[0][:300]}"
            )
            return
        state.swap_trackers(model, recording=False)
        stack.pop()
        if compiling:
            state.phases_run.add(phase)
            self.compile_seconds += time.perf_counter() - start
        state.replay()
        model.update_metrics(loss, y, y_pred, sample_weight, state.batch_size)

    def _give_up(self, reason: str) -> None:
        """Warns once, then compiles the forward pass and loss only."""
        self.whole_step = False
        self._state = None
        warnings.warn(
            f"jit_compile: the whole training step cannot be compiled ({reason}); only the "
            "forward pass and the loss are compiled.",
            stacklevel=5,
        )

    def forward_and_loss(self, model: Any, x: Any, y: Any, sample_weight: Any) -> Any:
        if (
            not self._warned_custom_step
            and torch.is_grad_enabled()
            and type(model).train_step is not Step.train_step
        ):
            self._warned_custom_step = True
            self.whole_step = False
            warnings.warn(
                "jit_compile: a custom train_step is not compiled whole; its forward pass and "
                "loss are.",
                stacklevel=4,
            )
        if not _loss_is_pure(model):  # output-loss trackers or add_loss terms: see above
            y_pred = self.forward(model, x)
            return y_pred, model.compute_loss(x, y, y_pred, sample_weight)
        return self._run(_forward_and_loss, model, x, y, sample_weight)

    def forward(self, model: Any, x: Any) -> Any:
        return self._run(_forward, model, x)

    def _run(self, fn: Callable[..., Any], model: Any, *args: Any) -> Any:
        try:
            with self.paused():  # the model's calls inside take the eager path
                return _compiled_version(fn)(model, *args)
        except Exception as compile_error:  # noqa: BLE001 - told apart by the eager rerun
            with self.paused():
                result = fn(model, *args)  # raises the model's own error, if it has one
            self.enabled = False
            warnings.warn(
                f"torch.compile failed ({type(compile_error).__name__}: "
                f"{str(compile_error).strip().splitlines()[0][:300]}); this model runs "
                "eagerly from now on.",
                stacklevel=4,
            )
            return result

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_state"] = None  # rebuilt at the next step, over the copy's own optimizer
        return state

    def __repr__(self) -> str:
        return f"Jit(enabled={self.enabled}, whole_step={self.whole_step}, mode={self.mode!r})"


def _loss_is_pure(model: Any) -> bool:
    """Whether computing the loss updates no tracker.

    That is: kfit's own `compute_loss` (a subclass's may update Keras-style trackers), a
    single logged loss and no `add_loss` terms.
    """
    compiled_loss = model.compile_state.loss
    terms = model._loss_terms
    return (
        type(model).compute_loss is Step.compute_loss
        and (compiled_loss is None or not compiled_loss.trackers)
        and not terms.functions
        and not terms.trackers
    )


# ---------------------------------------------------------------------------- the whole step

# Where the step is in a gradient-accumulation cycle (static: one graph each).
_ONLY, _START, _ADD, _FINISH = "only", "start", "add", "finish"


def _sgd_update(params, grads, states, group, lr) -> None:
    from torch.optim.sgd import sgd  # dynamo does not follow torch.optim's lazy submodules

    sgd(
        params,
        grads,
        [state.get("momentum_buffer") for state in states],
        foreach=True,
        weight_decay=group["weight_decay"],
        momentum=group["momentum"],
        lr=lr,
        dampening=group["dampening"],
        nesterov=group["nesterov"],
        maximize=group["maximize"],
    )


def _adam_update(params, grads, states, group, lr) -> None:  # Adam and AdamW
    from torch.optim.adam import adam

    amsgrad = group["amsgrad"]
    adam(
        params,
        grads,
        [state["exp_avg"] for state in states],
        [state["exp_avg_sq"] for state in states],
        [state["max_exp_avg_sq"] for state in states] if amsgrad else [],
        [state["step"] for state in states],
        foreach=True,
        capturable=torch.is_tensor(lr),  # a tensor rate (compiled): no host read
        decoupled_weight_decay=group.get("decoupled_weight_decay", False),
        amsgrad=amsgrad,
        beta1=group["betas"][0],
        beta2=group["betas"][1],
        lr=lr,
        weight_decay=group["weight_decay"],
        eps=group["eps"],
        maximize=group["maximize"],
    )


def _rmsprop_update(params, grads, states, group, lr) -> None:
    from torch.optim.rmsprop import rmsprop

    rmsprop(
        params,
        grads,
        [state["square_avg"] for state in states],
        [state["grad_avg"] for state in states] if group["centered"] else [],
        [state["momentum_buffer"] for state in states] if group["momentum"] > 0 else [],
        [state["step"] for state in states],
        foreach=True,
        maximize=group["maximize"],
        capturable=torch.is_tensor(lr),
        lr=lr,
        alpha=group["alpha"],
        eps=group["eps"],
        weight_decay=group["weight_decay"],
        momentum=group["momentum"],
        centered=group["centered"],
    )


# torch.optim classes whose update the whole step applies functionally (subclasses included,
# unless they define their own `step`).
_FUNCTIONAL_UPDATES: dict[type, Callable[..., None]] = {
    torch.optim.SGD: _sgd_update,
    torch.optim.Adam: _adam_update,  # and AdamW, its subclass
    torch.optim.RMSprop: _rmsprop_update,
}


def _functional_update(optimizer: torch.optim.Optimizer) -> Callable[..., None] | None:
    """The functional update matching `optimizer.step`, or None (a class of its own)."""
    for cls in type(optimizer).__mro__:
        # kfit's Keras-attribute classes count the updates, then call their torch class's
        # step (torch may also wrap the step of an optimizer's own class for its profiler).
        if "step" in cls.__dict__ and not issubclass(cls, KerasAttributes):
            return _FUNCTIONAL_UPDATES.get(cls)
    return None


class _Recorder:
    """Stands in for a loss tracker during the compiled step; its values are replayed after."""

    def __init__(self) -> None:
        self.updates: list[tuple[torch.Tensor, Any]] = []

    def update(self, value: torch.Tensor, batch_size: Any) -> None:
        self.updates.append((value.detach(), batch_size))


class _StepState:
    """What the compiled step reads besides the model: parameters, optimizer state, rates."""

    def __init__(self, model: Any, optimizer: torch.optim.Optimizer, batch_size: int) -> None:
        controls = model.compile_state.step_controls
        self.optimizer = optimizer
        self.update = _functional_update(optimizer)
        self.batch_size = batch_size
        self.phases_run: set[str] = set()
        self.accumulation = controls.gradient_accumulation_steps if controls else 1
        self.clipnorm = controls.clipnorm if controls else None
        self.clipvalue = controls.clipvalue if controls else None
        self.global_clipnorm = controls.global_clipnorm if controls else None
        decay = controls and controls.weight_decay and not controls.decoupled_decay_in_torch
        self.weight_decay = controls.weight_decay if decay else None
        self.groups = optimizer.param_groups
        self.params = [p for group in self.groups for p in group["params"]]
        self.group_sizes = [len(group["params"]) for group in self.groups]
        self.state_by_param = optimizer.state
        self.states = [optimizer.state[p] for p in self.params]
        device = self.params[0].device
        self.rates = [float(group["lr"]) for group in self.groups]
        self.rate_tensors = [torch.tensor(rate, device=device) for rate in self.rates]
        compiled_loss = model.compile_state.loss
        self.loss_trackers = compiled_loss.trackers if compiled_loss is not None else {}
        self.loss_recorders = {key: _Recorder() for key in self.loss_trackers}
        self.term_trackers = model._loss_terms.trackers
        self.term_recorders = {key: _Recorder() for key in self.term_trackers}

    def holds(self, optimizer: torch.optim.Optimizer | None) -> bool:
        """Whether this is still `optimizer`'s state (`load_state_dict` replaces it)."""
        return (
            optimizer is self.optimizer
            and optimizer.state is self.state_by_param
            and optimizer.param_groups is self.groups
        )

    def set_rates(self) -> None:
        """Copies changed learning rates (a schedule, a callback) into the rate tensors."""
        for index, group in enumerate(self.groups):
            rate = group["lr"]
            if rate != self.rates[index]:
                self.rates[index] = rate
                self.rate_tensors[index].fill_(rate)  # a device write, no host read

    def apply(self, grads: Sequence[torch.Tensor | None]) -> None:
        """Keras's clipping and decay, then the optimizer's update (inside the graph).

        The clipping mirrors `kfit.optimizers.Optimizer.before_step`, on the gradients the
        graph computed instead of `.grad`.
        """
        # Where dynamo leaves the step untraced (disabled, past its recompile limit) it runs
        # as Python: then with float rates, as torch.optim's eager step does.
        compiling = torch.compiler.is_compiling()
        rates = self.rate_tensors if compiling else self.rates
        begin = 0
        for index, group in enumerate(self.groups):
            size, rate = self.group_sizes[index], rates[index]
            used = [i for i in range(begin, begin + size) if grads[i] is not None]
            begin += size
            if not used:
                continue
            params = [self.params[i] for i in used]
            # `used` holds the indices with a gradient. (No walrus here: dynamo cannot trace a
            # comprehension that binds a variable of this function.)
            group_grads: list[torch.Tensor] | tuple[torch.Tensor, ...]
            group_grads = [grads[i] for i in used]  # type: ignore[misc]
            if self.clipvalue is not None:
                group_grads = [g.clamp(-self.clipvalue, self.clipvalue) for g in group_grads]
            elif self.clipnorm is not None:
                norms = torch._foreach_norm(group_grads)
                scales = [self.clipnorm / torch.clamp(n, min=self.clipnorm) for n in norms]
                group_grads = torch._foreach_mul(group_grads, scales)
            elif self.global_clipnorm is not None:
                total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(group_grads)))
                scale = self.global_clipnorm / torch.clamp(total, min=self.global_clipnorm)
                group_grads = torch._foreach_mul(group_grads, scale)
            if self.weight_decay:
                torch._foreach_mul_(params, 1.0 - self.weight_decay * rate)
            assert self.update is not None  # a step without a functional update is not compiled
            self.update(params, group_grads, [self.states[i] for i in used], group, rate)

    def swap_trackers(self, model: Any, recording: bool) -> None:
        """Puts the recorders in the trackers' place (or the trackers back)."""
        if self.loss_trackers:
            model.compile_state.loss.trackers = (
                self.loss_recorders if recording else self.loss_trackers
            )
        if self.term_trackers:
            model._loss_terms.trackers = self.term_recorders if recording else self.term_trackers

    def replay(self) -> None:
        """Hands the values recorded in the graph to the real trackers."""
        for recorders, trackers in (
            (self.loss_recorders, self.loss_trackers),
            (self.term_recorders, self.term_trackers),
        ):
            for key, recorder in recorders.items():
                for value, batch_size in recorder.updates:
                    trackers[key].update(value, batch_size)
                recorder.updates.clear()


def _whole_step(model: Any, state: _StepState, x: Any, y: Any, sample_weight: Any, phase: str):
    """Forward, loss, gradients, accumulation, clipping and update: one graph."""
    with model.compile_state.precision.autocast():
        y_pred = model.call_forward(x)
        loss = model.compute_loss(x, y, y_pred, sample_weight)
    scaled = loss if state.accumulation == 1 else loss / state.accumulation
    grads = list(torch.autograd.grad(scaled, state.params, allow_unused=True))
    with torch.no_grad():
        if phase != _ONLY:  # accumulating in `.grad`, as the eager step does
            used = [i for i, g in enumerate(grads) if g is not None]
            buffers = [state.params[i].grad for i in used]
            fresh = [grads[i] for i in used]
            if phase == _START:
                torch._foreach_copy_(buffers, fresh)
            else:
                torch._foreach_add_(buffers, fresh)
            grads = [state.params[i].grad if g is not None else None for i, g in enumerate(grads)]
        if phase in (_ONLY, _FINISH):
            state.apply(grads)
    detached = data_module.map_tree(lambda t: t.detach(), y_pred)
    return loss.detach(), detached


_compiled_steps: dict[str, Callable[..., Any]] = {}


def _compiled_step(mode: str | None) -> Callable[..., Any]:
    key = mode or "default"
    if key not in _compiled_steps:
        _compiled_steps[key] = torch.compile(_whole_step, fullgraph=True, dynamic=False, mode=mode)
    return _compiled_steps[key]


def whole_step_blocker(model: Any) -> str | None:
    """Why `model`'s training step cannot be compiled whole (None when it can)."""
    optimizer = model.optimizer
    if type(model).compute_loss is not Step.compute_loss:
        return "the model has its own compute_loss"
    if model.compile_state.precision.scaler is not None:
        return "precision='16-mixed' scales the loss with a GradScaler"
    if model.ddp_forward is not None:
        return "torchrun's DDP forward"
    if optimizer is None or _functional_update(optimizer) is None:
        name = type(optimizer).__name__ if optimizer is not None else "none"
        return f"the optimizer ({name}) has no functional update here (SGD, Adam, AdamW, RMSprop)"
    return None


def _tensors_of(states: list[dict[str, Any]]) -> list[torch.Tensor]:
    return [v for state in states for v in state.values() if isinstance(v, torch.Tensor)]
