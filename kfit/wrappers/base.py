"""`SKLearnWrapper`: what the scikit-learn classifier and regressor share.

Parameters (Keras 3's `keras.wrappers` arguments plus routed `model__` / `fit__` ones),
`fit` (build or warm-start the model, then `Model.fit`), seeding, and the hooks each
estimator fills in for its targets (`_check_y`, `_target_state`, `_encode`, `_weights`).
"""

from __future__ import annotations

import contextlib
import copy
import numbers
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

try:
    from scipy.sparse import issparse
    from sklearn.base import BaseEstimator
    from sklearn.utils import check_array, check_random_state
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "kfit.wrappers needs scikit-learn >= 1.6: pip install 'kfit[sklearn]'."
    ) from err

from kfit.internals import check_sample_weight
from kfit.model import Model

_ROUTE_PREFIXES = ("model__", "fit__")
# Top-level shorthands for `fit__<name>`; None means "not given here".
_FIT_SHORTHANDS = ("epochs", "batch_size", "verbose")
# Inputs the wrapper itself passes to `Model.fit`.
_RESERVED_FIT_ARGS = ("x", "y", "sample_weight")
# Float inputs keep float32/float64; anything else numeric becomes float64 (then the model's).
_X_DTYPES = (np.float64, np.float32)


def _is_routed(name: str) -> bool:
    return any(name.startswith(prefix) and len(name) > len(prefix) for prefix in _ROUTE_PREFIXES)


def _routed(params: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {key[len(prefix) :]: value for key, value in params.items() if key.startswith(prefix)}


@contextlib.contextmanager
def _seeded(random_state: Any) -> Iterator[None]:
    """Seeds torch, numpy and `random` from `random_state`; restores their states afterwards.

    None leaves the global generators alone, so each fit differs.
    """
    if random_state is None:
        yield
        return
    try:
        generator = check_random_state(random_state)
    except (ValueError, TypeError) as err:
        raise ValueError(
            "`random_state` must be None, an int in [0, 2**32 - 1] or a numpy RandomState; "
            f"got {random_state!r}."
        ) from err
    if isinstance(random_state, numbers.Integral):
        seed = int(random_state)
    else:  # a RandomState draws a new seed for every fit, as scikit-learn's estimators do
        seed = int(generator.randint(np.iinfo(np.int32).max))
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    numpy_state, python_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


class SKLearnWrapper(BaseEstimator):
    """What the classifier and the regressor share: parameters, building, fitting, seeding."""

    _y_numeric = False

    # Set by `fit` (scikit-learn's fitted attributes; absent until then).
    model_: Model
    history_: dict[str, list[Any]]

    def __init__(
        self,
        model: Model | Callable[..., Model],
        warm_start: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        fit_kwargs: dict[str, Any] | None = None,
        *,
        random_state: int | np.random.RandomState | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        verbose: int | str | None = None,
        **routed_params: Any,
    ):
        self.model = model
        self.warm_start = warm_start
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs
        self.random_state = random_state
        self.epochs = epochs
        self.batch_size = batch_size
        self.verbose = verbose
        # Private, so that only the named parameters are attributes; `get_params` and
        # `set_params` expose these as the parameters they are. Their names are checked in
        # `fit`: scikit-learn's __init__ only stores.
        self._routed_params = dict(routed_params)

    # ------------------------------------------------------------------ parameters

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The estimator's parameters, `model__<arg>` and `fit__<arg>` ones included.

        Args:
            deep: also return the parameters of nested estimators.

        Returns:
            `{name: value}`, as `__init__` received them.
        """
        params = super().get_params(deep=deep)
        params.update(self._routed_params)
        return params

    def set_params(self, **params: Any) -> SKLearnWrapper:
        """Sets parameters, `model__<arg>` and `fit__<arg>` ones included.

        Returns:
            The estimator.

        Raises:
            ValueError: for a name that is neither a parameter nor routed.
        """
        routed = {
            name: value
            for name, value in params.items()
            if _is_routed(name) or name in self._routed_params
        }
        super().set_params(**{name: v for name, v in params.items() if name not in routed})
        self._routed_params = {**self._routed_params, **routed}
        return self

    def _model_kwargs(self) -> dict[str, Any]:
        """`model_kwargs`, overridden by `model__<arg>` parameters."""
        if self.model_kwargs is not None and not isinstance(self.model_kwargs, dict):
            raise TypeError(f"`model_kwargs` must be a dict or None; got {self.model_kwargs!r}.")
        return {**(self.model_kwargs or {}), **_routed(self._routed_params, "model__")}

    def _fit_kwargs(self, call_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The arguments for `Model.fit`, most specific last.

        `fit_kwargs`, then `fit__<arg>` and the `epochs`/`batch_size`/`verbose` shorthands,
        then the keyword arguments given to `fit` itself; `verbose` defaults to 0.
        """
        if self.fit_kwargs is not None and not isinstance(self.fit_kwargs, dict):
            raise TypeError(f"`fit_kwargs` must be a dict or None; got {self.fit_kwargs!r}.")
        named = _routed(self._routed_params, "fit__")
        for name in _FIT_SHORTHANDS:
            value = getattr(self, name)
            if value is None:
                continue
            if name in named:
                raise ValueError(
                    f"`{name}` is given twice: {name}={value!r} and fit__{name}="
                    f"{named[name]!r}; keep one."
                )
            named[name] = value
        kwargs = {"verbose": 0, **(self.fit_kwargs or {}), **named, **call_kwargs}
        reserved = sorted(set(kwargs) & set(_RESERVED_FIT_ARGS))
        if reserved:
            raise ValueError(
                f"{reserved} cannot be fit arguments of the wrapper: pass X, y and "
                "sample_weight to fit(X, y, sample_weight=...) itself."
            )
        return kwargs

    # ------------------------------------------------------------------ fit

    def fit(self, X: Any, y: Any, sample_weight: Any = None, **kwargs: Any) -> SKLearnWrapper:
        """Builds (or, with `warm_start`, reuses) the model and trains it on `X` and `y`.

        Args:
            X: array-like of shape `(n_samples, n_features)`.
            y: the targets (see the class for the accepted forms).
            sample_weight: one non-negative weight per sample; rescaled to average 1, so a
                weight counts like a repetition of the sample.
            **kwargs: arguments for `Model.fit`; they take precedence over `fit_kwargs`,
                `fit__<arg>` and the `epochs`/`batch_size`/`verbose` parameters.

        Returns:
            The fitted estimator.

        Raises:
            ValueError, TypeError: for invalid data or parameters, before any training.
        """
        unknown = sorted(name for name in self._routed_params if not _is_routed(name))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected parameters {unknown}: besides its named "
                "parameters it takes `model__<arg>` (passed to the build function) and "
                "`fit__<arg>` (passed to Model.fit)."
            )
        warm = bool(self.warm_start) and hasattr(self, "model_")
        X, y = validate_data(
            self,
            X,
            y,
            reset=not warm,
            dtype=_X_DTYPES,
            multi_output=True,
            y_numeric=self._y_numeric,
        )
        if issparse(y):
            raise ValueError(f"{type(self).__name__} needs a dense `y`; got a sparse matrix.")
        y = self._check_y(y)
        target_state = self._target_state(y, reset=not warm)
        targets = self._encode(y, target_state)
        fit_kwargs = self._fit_kwargs(kwargs)
        weights = self._weights(X, y, sample_weight, fit_kwargs)
        if weights is not None:
            weights = weights * (len(weights) / weights.sum())
        if fit_kwargs.get("validation_data") is not None:
            fit_kwargs["validation_data"] = self._validation_data(
                fit_kwargs["validation_data"], target_state
            )
        with _seeded(self.random_state):
            model = self.model_ if warm else self._build_model(X, targets)
            history = model.fit(X, targets, sample_weight=weights, **fit_kwargs)
        # Only now, after a successful fit, does the estimator change.
        for name, value in target_state.items():
            setattr(self, name, value)
        logged = {key: list(values) for key, values in history.history.items()}
        if warm:
            logged = {key: [*self.history_.get(key, []), *values] for key, values in logged.items()}
        self.model_ = model
        self.history_ = logged
        return self

    def _build_model(self, X: np.ndarray, targets: np.ndarray) -> Model:
        """A fresh compiled model: a deep copy of the given one, or the build function's."""
        model_kwargs = self._model_kwargs()
        if isinstance(self.model, Model):
            if model_kwargs:
                raise ValueError(
                    f"Build arguments {sorted(model_kwargs)} (from `model_kwargs` or "
                    "`model__<arg>`) need `model` to be a build function; it is a Model."
                )
            model = copy.deepcopy(self.model)  # the user's instance is never trained
        elif isinstance(self.model, torch.nn.Module):
            raise TypeError(
                f"`model` is a plain {type(self.model).__name__} module: wrap the module, "
                "kfit.Model(module), and compile it, or pass a build function."
            )
        elif not callable(self.model):
            raise TypeError(
                "`model` must be a compiled kfit.Model or a function build(X, y, **kwargs) "
                f"returning one; got {self.model!r} of type {type(self.model).__name__}."
            )
        else:
            model = self.model(X=X, y=targets, **model_kwargs)
            if not isinstance(model, Model):
                raise TypeError(
                    f"The build function {getattr(self.model, '__name__', self.model)!r} must "
                    f"return a compiled kfit.Model; it returned {type(model).__name__}."
                )
        if not model.compiled:
            raise ValueError(
                "The wrapped model is not ready to train: you must call compile() before "
                "fit(): e.g. model.compile(optimizer='rmsprop', loss='mse')."
            )
        return model

    def _weights(
        self,
        X: np.ndarray,
        y: np.ndarray,
        sample_weight: Any,
        fit_kwargs: dict[str, Any],
    ) -> np.ndarray | None:
        """The checked sample weights (before rescaling), or None."""
        if sample_weight is None:
            return None
        weights = check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if not weights.any():
            raise ValueError(
                "`sample_weight` is zero for every sample: at least one weight must be positive."
            )
        return weights

    def _validation_data(self, data: Any, target_state: dict[str, Any]) -> Any:
        """`(X_val, y_val[, w_val])` checked and encoded like `X` and `y`; data sets as they are."""
        if not isinstance(data, tuple | list) or len(data) not in (2, 3):
            return data  # a Dataset or DataLoader: it must yield encoded targets itself
        x_val, y_val, *rest = data
        x_val = validate_data(self, x_val, reset=False, dtype=_X_DTYPES)
        y_val = check_array(y_val, ensure_2d=False, dtype=None, input_name="y_val")
        return (x_val, self._encode(self._check_y(y_val), target_state), *rest)

    def _outputs(self, X: Any) -> np.ndarray:
        """The fitted model's outputs for `X`, as numpy."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=_X_DTYPES)
        batch_size = self._fit_kwargs({}).get("batch_size")
        outputs = self.model_.predict(X, batch_size=batch_size, verbose=0)
        if not isinstance(outputs, np.ndarray):
            raise TypeError(
                f"{type(self).__name__} needs a model with one output tensor; "
                f"it returned a {type(outputs).__name__}."
            )
        return outputs.reshape(len(outputs), -1)

    def _check_y(self, y: np.ndarray) -> np.ndarray:
        """`y` in the form `_target_state` and `_encode` take."""
        return y

    def _target_state(self, y: np.ndarray, reset: bool) -> dict[str, Any]:
        """What `fit` learns from `y` (set on the estimator after training), or had learnt."""
        raise NotImplementedError

    def _encode(self, y: np.ndarray, state: dict[str, Any]) -> np.ndarray:
        """The targets the model trains on."""
        raise NotImplementedError
