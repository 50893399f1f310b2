"""`Model`: any `nn.Module` with Keras's `compile`, `fit`, `evaluate` and `predict`."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter

from kfit import distributed
from kfit import optimizers as optimizers_module
from kfit import summary as summary_module
from kfit.callbacks.history import History
from kfit.compiled import loss_terms
from kfit.compiled.loss_terms import LossTerms
from kfit.persistence import Persistence
from kfit.training import lr_finder
from kfit.training.state import CompileState, build_compile_state
from kfit.training.trainer import Trainer


class Model(Persistence, Trainer, nn.Module):
    """A PyTorch module with Keras's training API.

    Either wrap a module, `kfit.Model(my_module)`, or subclass `kfit.Model` and write
    `forward` (Keras's subclassing style). A `Model` is an `nn.Module`: `state_dict`, `to`,
    `parameters` and `__call__` behave as usual. A wrapped module is `model.module`, unchanged.

    Args:
        module: the module to wrap; omit it when subclassing.

    Example:
        >>> model = kfit.Model(nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 1)))
        >>> model.compile(optimizer="adam", loss="mse", metrics=["mae"])
        >>> history = model.fit(x, y, epochs=10, validation_split=0.2)
    """

    def __init__(self, module: nn.Module | None = None):
        nn.Module.__init__(self)
        if module is not None:
            if not isinstance(module, nn.Module):
                raise TypeError(
                    f"`module` must be a torch.nn.Module; got {module!r} of type "
                    f"{type(module).__name__}."
                )
            self.module = module
        self.optimizer: torch.optim.Optimizer | None = None
        #: What `compile` decided (device, precision, loss, metrics, ...); None before it.
        self.compile_state: CompileState | None = None
        self._loss_terms = LossTerms()  # add_loss
        self.stop_training = False
        self.history: Any = None
        #: Epochs trained so far (restored by `load`; `fit(initial_epoch=...)` resumes there).
        self.epochs_completed = 0
        self._initial_epoch: int | None = None
        self._interrupt: Any = None
        self._ending_with_error = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # `kfit.add_loss` in a submodule's forward adds to this model's terms.
        stack = loss_terms.running_stack()
        stack.append(self._loss_terms)
        try:
            return super().__call__(*args, **kwargs)
        finally:
            stack.pop()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Calls the wrapped module; a subclass overrides this instead."""
        module = self._modules.get("module")
        if module is None:
            raise NotImplementedError(
                f"{type(self).__name__} has no forward(): wrap a module, kfit.Model(module), "
                "or subclass kfit.Model and define forward()."
            )
        return module(*args, **kwargs)

    def add_loss(self, loss: Callable[[], torch.Tensor] | torch.Tensor, name: str | None = None):
        """Adds a term to the loss that training minimises, logged under its own name.

        Two forms, as in Keras:
        - a function of no arguments returning a tensor, called at every training and
          evaluation step (a weight penalty):
          `model.add_loss(lambda: 1e-4 * model.module[0].weight.pow(2).sum(), name="l2")`;
        - a tensor, passed from inside `forward` (a VAE's KL term, an auxiliary head's loss):
          `self.add_loss(kl.mean(), name="kl")`. It counts for that step only; tensors added
          under one name in a step are summed.

        The step's loss is the compiled loss plus every term (each summed to a scalar). The
        epoch's `loss` and `val_loss` include the terms, and each term is also logged as
        `{name}` and `val_{name}` (the batch-size-weighted mean, like `loss`), so you can see
        how each part moves. Per-output `{output}_loss` values do not include them (Keras).

        Args:
            loss: a function returning a tensor, or a tensor computed in `forward`.
            name: the log key (default: the function's name; `'added_loss'` for a lambda or
                a tensor).

        Raises:
            TypeError: if `loss` is neither callable nor a tensor.
            ValueError: if a function is added under a name already taken.
        """
        self._loss_terms.add(loss, name, self._log_keys())

    # ------------------------------------------------------------------ compile

    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        loss_weights: float | list[float] | dict[str, float] | None = None,
        metrics: Any = None,
        weighted_metrics: Any = None,
        jit_compile: bool | str = False,
        device: str | torch.device | None = None,
        lr_scheduler: Any = None,
        precision: str | int = "32",
        channels_last: bool = False,
    ) -> None:
        """Configures the model for training (Keras 3's arguments and string ids).

        Args:
            optimizer: a Keras id (`'rmsprop'`, `'adam'`, `'sgd'`, ..., any case), a
                `kfit.optimizers` object such as `Adam(learning_rate=1e-3, clipnorm=1.0)`,
                or a torch optimizer class or instance.
            loss: a Keras id (`'mse'`, `'categorical_crossentropy'`, `'crossentropy'`, ...), a
                `kfit.losses.Loss`, a function `f(y_true, y_pred)` returning per-sample values,
                or a torch loss module such as `nn.CrossEntropyLoss()` (called as
                `loss(y_pred, y_true)`). For a model with several outputs (a tuple or dict):
                one loss for every output, a list with one per output, or a dict
                `{output name: loss}`. None when `add_loss` terms or a custom `train_step`
                supply the loss.
            loss_weights: factors for the per-output losses, summed into the total: a number,
                a list (one per output) or a dict `{output name: weight}`.
            metrics: a list of metric ids (`'accuracy'`, `'mae'`, ...), metric objects
                (kfit's or any `torchmetrics.Metric`), or functions `f(y_true, y_pred)`. For
                several outputs: a list with one entry (a metric or a list) per output, or a
                dict `{output name: metric(s)}`; log keys become `{output}_{metric}`.
            weighted_metrics: metrics that take `sample_weight`/`class_weight` into account,
                in the same forms.
            jit_compile: True compiles the whole training step (forward pass, loss,
                backward pass, clipping, accumulation, optimizer update) with `torch.compile`;
                `"reduce-overhead"` also captures it in CUDA graphs on a GPU. Where the step
                cannot be compiled whole, warns once and compiles the forward pass and loss;
                where compilation fails, warns and runs eagerly. See `kfit.training.jit`.
            device: `'cpu'`, `'cuda'`, `'cuda:1'`, `'mps'`, ...; None picks CUDA, then MPS,
                then CPU.
            lr_scheduler: a `torch.optim.lr_scheduler` scheduler, a function
                `optimizer -> scheduler` (for optimizers built from ids), or a
                `kfit.callbacks.TorchScheduler`; stepped every epoch during `fit` (a
                `ReduceLROnPlateau` with `val_loss`), its rate logged as `learning_rate`.
            precision: `'32'` (default), `'bf16-mixed'` or `'16-mixed'`: run the forward pass
                and the loss under `torch.autocast` in that dtype (weights, optimizer and
                metrics stay float32); `'16-mixed'` adds a gradient scaler. See
                `kfit.training.precision`.
            channels_last: keep the weights and the 4-d inputs in the channels-last memory
                layout, which speeds up convolutions on recent GPUs (and with bf16 on CPUs).

        Raises:
            ValueError: for unknown ids (naming the closest valid one), an unavailable
                device or invalid options.
            TypeError: for arguments of the wrong kind.
        """
        state = build_compile_state(
            optimizer,
            loss,
            loss_weights,
            metrics,
            weighted_metrics,
            jit_compile,
            device,
            lr_scheduler,
            precision,
            channels_last,
        )
        # Everything is valid: only now change the model.
        self.to(state.device)
        if channels_last:
            # Module.to takes memory_format; torch's type stubs leave it out.
            self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if state.scheduler_callback is not None:
            state.scheduler_callback.holds_model_weakly = True  # the model keeps it
        self.compile_state = state
        self.optimizer = None if self._has_lazy_parameters() else self._build_optimizer()
        self.stop_training = False

    def _has_lazy_parameters(self) -> bool:
        return any(isinstance(p, UninitializedParameter) for p in self.parameters())

    def _build_optimizer(self) -> torch.optim.Optimizer:
        optimizer = optimizers_module.with_keras_attributes(self._make_optimizer())
        # A spec with step controls sets the scheduled rate and counts the updates itself.
        optimizer.kfit_counted_outside = self._compiled("fit").step_controls is not None
        return optimizer

    def _make_optimizer(self) -> torch.optim.Optimizer:
        source = self._compiled("fit").optimizer_source
        params = [p for p in self.parameters() if p.requires_grad]
        if isinstance(source, torch.optim.Optimizer):
            owned = {id(p) for g in source.param_groups for p in g["params"]}
            if not owned & {id(p) for p in params}:
                raise ValueError(
                    "The optimizer instance passed to compile() holds none of "
                    "this model's parameters; build it from model.parameters()."
                )
            return source
        if not params:
            raise ValueError("The model has no trainable parameters to optimise.")
        if isinstance(source, optimizers_module.Optimizer):
            return source.build(params)
        return source(params)

    def _optimizer_for_step(self) -> torch.optim.Optimizer:
        if self.optimizer is None:  # lazy modules: parameters exist after the first forward
            self.optimizer = self._build_optimizer()
        return self.optimizer

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        history = self.__dict__.get("history")
        if isinstance(history, History):  # its (weak) model reference is not pickled
            history.set_model(self)

    @property
    def jit_compile_seconds(self) -> float:
        """Seconds spent compiling the training step so far (`jit_compile`; 0.0 without)."""
        jit = self.compile_state.jit if self.compile_state is not None else None
        return jit.compile_seconds if jit is not None else 0.0

    def summary(
        self,
        input_size: Sequence[int] | Sequence[Sequence[int]] | None = None,
        input_data: Any = None,
        print_fn: Callable[[str], Any] | None = print,
        line_length: int = summary_module.DEFAULT_LINE_LENGTH,
    ) -> None:
        """Prints Keras's summary table: layers, output shapes, parameter totals.

        Returns None, as Keras does (a notebook would echo returned text); pass `print_fn`
        to capture the text. See `kfit.summary.summary` for the arguments.
        """
        if not distributed.is_rank_zero():  # torchrun: one table, from rank 0
            print_fn = None
        summary_module.summary(self, input_size, input_data, print_fn, line_length)

    # ------------------------------------------------------------------ lr_find

    def lr_find(
        self,
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
    ) -> lr_finder.LRFinderResult:
        """The learning-rate range test; weights and optimizer state are restored afterwards.

        See `kfit.training.lr_finder.lr_find` for the arguments. Not in Keras.

        Returns:
            A `kfit.training.lr_finder.LRFinderResult`: `lrs`, `losses`, `suggested_lr`
                (or `reason`), `plot()`.
        """
        return lr_finder.lr_find(
            self,
            x,
            y,
            batch_size=batch_size,
            sample_weight=sample_weight,
            start_lr=start_lr,
            end_lr=end_lr,
            num_steps=num_steps,
            smoothing=smoothing,
            diverge_threshold=diverge_threshold,
            plot=plot,
            verbose=verbose,
            seed=seed,
        )

    # ------------------------------------------------------------------ properties

    @property
    def device(self) -> torch.device:
        """Where the model runs: set by `compile`, else where its parameters are."""
        if self.compile_state is not None:
            return self.compile_state.device
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            if not isinstance(tensor, UninitializedParameter):
                return tensor.device
        return torch.device("cpu")

    @property
    def float_dtype(self) -> torch.dtype:
        """The floating dtype inputs are converted to: the parameters' (float32 by default)."""
        for param in self.parameters():
            if param.is_floating_point() and not isinstance(param, UninitializedParameter):
                return param.dtype
        return torch.float32

    @property
    def metrics_names(self) -> list[str]:
        """`['loss', *metric names]` once the metrics are built (after the first batch)."""
        names = ["loss"]
        compiled = self.compile_state
        if compiled is not None and compiled.loss is not None and compiled.metrics.built:
            names += compiled.metrics.names
        return names


Model._plain_forward = Model.forward  # `call_forward` calls `module` directly when unchanged


class Sequential(Model):
    """A `Model` made of layers applied in order (an `nn.Sequential` inside).

    Args:
        *layers: modules, or one list of modules.

    Example:
        >>> model = kfit.Sequential(nn.Linear(100, 64), nn.ReLU(), nn.Linear(64, 10),
        ...                         nn.Softmax(dim=-1))
    """

    def __init__(self, *layers: nn.Module | list[nn.Module]):
        modules = (
            list(layers[0]) if len(layers) == 1 and isinstance(layers[0], list | tuple) else layers
        )
        for layer in modules:
            if not isinstance(layer, nn.Module):
                raise TypeError(
                    f"Sequential layers must be torch.nn.Module objects; got "
                    f"{layer!r} of type {type(layer).__name__}."
                )
        super().__init__(nn.Sequential(*modules))

    def add(self, layer: nn.Module) -> None:
        """Appends a layer, as Keras's `Sequential.add` does."""
        if not isinstance(layer, nn.Module):
            raise TypeError(f"`layer` must be a torch.nn.Module; got {type(layer).__name__}.")
        cast(nn.Sequential, self.module).append(layer)
