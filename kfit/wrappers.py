"""scikit-learn estimators around a `kfit.Model`: `SKLearnClassifier` and `SKLearnRegressor`.

They take Keras 3's `keras.wrappers` arguments (`model`, `warm_start`, `model_kwargs`,
`fit_kwargs`) plus `random_state`, `epochs`, `batch_size`, `verbose` and routed parameters
`model__<arg>` (for the build function) and `fit__<arg>` (for `Model.fit`), so that
`GridSearchCV(param_grid={"model__hidden": [16, 32], "epochs": [5, 10]})`, `cross_val_score`,
`Pipeline` and `clone` work on any PyTorch module. Both pass scikit-learn's `check_estimator`.
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
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils import check_array, check_random_state
    from sklearn.utils.class_weight import compute_sample_weight
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import (
        _check_sample_weight,
        check_is_fitted,
        column_or_1d,
        validate_data,
    )
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "kfit.wrappers needs scikit-learn >= 1.6: pip install 'kfit[sklearn]'."
    ) from err

from kfit.model import Model

__all__ = ["SKLearnClassifier", "SKLearnRegressor"]

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


def _probabilities(outputs: np.ndarray) -> np.ndarray:
    """Class probabilities from a classifier's outputs, row by row.

    A row that already is a distribution (softmax outputs) is kept, renormalised in float64;
    any other row is taken as logits and goes through a softmax.
    """
    values = outputs.astype(np.float64)
    sums = values.sum(axis=1, keepdims=True)
    is_distribution = (values >= 0).all(axis=1, keepdims=True) & (np.abs(sums - 1.0) < 1e-3)
    exponentials = np.exp(values - values.max(axis=1, keepdims=True))
    softmax = exponentials / exponentials.sum(axis=1, keepdims=True)
    return np.where(is_distribution, values / np.where(is_distribution, sums, 1.0), softmax)


class _SKLearnWrapper(BaseEstimator):
    """What the classifier and the regressor share: parameters, building, fitting, seeding."""

    _y_numeric = False

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

    def set_params(self, **params: Any) -> _SKLearnWrapper:
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

    def fit(self, X: Any, y: Any, sample_weight: Any = None, **kwargs: Any) -> _SKLearnWrapper:
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
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
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


class SKLearnClassifier(ClassifierMixin, _SKLearnWrapper):
    """A scikit-learn classifier that trains a `kfit.Model`.

    Labels of any type (strings included) are encoded, and the model is trained on one-hot
    targets of shape `(n_samples, n_classes)`, binary problems included: build it with one
    output per class and a categorical loss, `'categorical_crossentropy'` after a softmax or
    `nn.CrossEntropyLoss()` on logits. A 2-D one-hot `y` is taken as it is (`classes_` are
    then the column indices and `predict` returns one-hot rows).

    Args:
        model: a compiled `kfit.Model`, deep-copied before each fit so that the instance
            given is never trained (its weights are the starting point of every fit), or a
            function `build(X, y, **model_kwargs)` that returns a compiled `kfit.Model`,
            called with the validated `X` and the one-hot targets as keywords `X=` and `y=`.
        warm_start: continue training the fitted `model_` on the next `fit` (which then
            adds `epochs` more epochs) instead of building a new model.
        model_kwargs: keyword arguments for the build function.
        fit_kwargs: keyword arguments for `Model.fit` (`epochs`, `callbacks`,
            `validation_split`, `class_weight` keyed by label, ...).
        random_state: an int makes fits reproducible: torch, numpy and `random` are seeded
            before building and training (which covers the initial weights and the
            shuffle) and restored afterwards. None leaves them alone.
        epochs: `Model.fit`'s `epochs` (None: `fit_kwargs`'s value, else 1).
        batch_size: `Model.fit`'s `batch_size`, also used by `predict` (None: 32).
        verbose: `Model.fit`'s `verbose`; None means 0, silent, as scikit-learn estimators
            are. `predict` is always silent.
        **routed_params: `model__<arg>=value` sets the build function's `arg`, and
            `fit__<arg>=value` sets `Model.fit`'s `arg`; both override the dicts above and
            are parameters of their own for `get_params`, `set_params` and `GridSearchCV`.

    Attributes:
        model_: the fitted `kfit.Model`.
        history_: `{metric: [value per epoch]}`, extended by warm-started fits.
        classes_: the labels, sorted.
        n_features_in_: the number of features seen in `fit`.
        feature_names_in_: the column names, when `X` was a DataFrame with string names.

    Example:
        >>> def build(X, y, hidden=32):
        ...     model = kfit.Sequential(nn.Linear(X.shape[1], hidden), nn.ReLU(),
        ...                             nn.Linear(hidden, y.shape[1]), nn.Softmax(dim=-1))
        ...     model.compile(optimizer="adam", loss="categorical_crossentropy")
        ...     return model
        >>> search = GridSearchCV(
        ...     SKLearnClassifier(build, random_state=0),
        ...     param_grid={"model__hidden": [16, 32], "epochs": [5, 10]},
        ... )
        >>> search.fit(X, y)
    """

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, `(n_samples, n_classes)` in the order of `classes_`.

        Softmax outputs are returned as they are (in float64); logits go through a softmax.

        Raises:
            ValueError: if the model does not output one column per class.
        """
        outputs = self._outputs(X)
        if outputs.shape[1] != len(self.classes_):
            raise ValueError(
                f"The model outputs {outputs.shape[1]} values per sample but there are "
                f"{len(self.classes_)} classes: build it with one output per class."
            )
        return _probabilities(outputs)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable label of each sample (one-hot rows if `y` was one-hot)."""
        indices = self.predict_proba(X).argmax(axis=1)
        if self._one_hot_y:
            return np.eye(len(self.classes_), dtype=self._y_dtype)[indices]
        return self.classes_[indices]

    def _target_state(self, y: np.ndarray, reset: bool) -> dict[str, Any]:
        if not reset:
            if (y.ndim == 2) != self._one_hot_y:
                raise ValueError(
                    "A warm-started fit needs `y` in the form of the first fit "
                    f"({'one-hot' if self._one_hot_y else 'labels'})."
                )
            return {"classes_": self.classes_, "_one_hot_y": self._one_hot_y, "_y_dtype": y.dtype}
        classes = np.arange(y.shape[1]) if y.ndim == 2 else np.unique(y)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes; got one class, "
                f"{classes[0]!r}."
            )
        return {"classes_": classes, "_one_hot_y": y.ndim == 2, "_y_dtype": y.dtype}

    def _check_y(self, y: np.ndarray) -> np.ndarray:
        """Labels `(n,)` or one-hot rows `(n, k)`; a column `(n, 1)` becomes labels."""
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)  # scikit-learn's DataConversionWarning
        if y.ndim == 1:
            check_classification_targets(y)
            return y
        if y.ndim != 2:
            raise ValueError(
                f"`y` must be labels (n,) or one-hot rows (n, k); got shape {y.shape}."
            )
        try:
            values = y.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError("A 2-D `y` must hold one-hot rows of 0s and 1s.") from err
        if not (np.isin(values, (0.0, 1.0)).all() and (values.sum(axis=1) == 1).all()):
            raise ValueError(
                f"A 2-D `y` (shape {y.shape}) must hold one-hot rows, a single 1 per row; "
                "multilabel targets are not supported."
            )
        return y

    def _encode(self, y: np.ndarray, state: dict[str, Any]) -> np.ndarray:
        classes = state["classes_"]
        if y.ndim == 2:
            if y.shape[1] != len(classes):
                raise ValueError(
                    f"One-hot `y` has {y.shape[1]} columns; the model was fitted on {len(classes)}."
                )
            return y.astype(np.float32)
        if state["_one_hot_y"]:
            raise ValueError("This classifier was fitted on one-hot `y`; pass one-hot rows.")
        indices = np.searchsorted(classes, y)
        known = (indices < len(classes)) & (classes[np.minimum(indices, len(classes) - 1)] == y)
        if not known.all():
            raise ValueError(
                f"`y` has labels the classifier was not fitted on: {np.unique(y[~known])!r}; "
                f"its classes are {classes!r}."
            )
        return np.eye(len(classes), dtype=np.float32)[indices]

    def _weights(
        self,
        X: np.ndarray,
        y: np.ndarray,
        sample_weight: Any,
        fit_kwargs: dict[str, Any],
    ) -> np.ndarray | None:
        """Sample weights times `class_weight` (keyed by label, or 'balanced')."""
        weights = super()._weights(X, y, sample_weight, fit_kwargs)
        class_weight = fit_kwargs.pop("class_weight", None)
        labels = y.astype(np.float64).argmax(axis=1) if y.ndim == 2 else y
        if class_weight is not None:
            per_class = compute_sample_weight(class_weight, labels)
            weights = per_class if weights is None else weights * per_class
        if weights is not None:
            weighted = np.unique(labels[weights > 0])
            if len(weighted) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes with a "
                    f"positive weight; the classes with one are {weighted.tolist()}."
                )
        return weights


class SKLearnRegressor(RegressorMixin, _SKLearnWrapper):
    """A scikit-learn regressor that trains a `kfit.Model`.

    The model is trained on float targets of shape `(n_samples, n_targets)` (a 1-D `y` is
    one column): build it with `y.shape[1]` outputs. `predict` returns float64 in the shape
    of the `y` it was fitted on.

    Args:
        model: a compiled `kfit.Model`, deep-copied before each fit so that the instance
            given is never trained, or a function `build(X, y, **model_kwargs)` that returns
            a compiled `kfit.Model`, called with keywords `X=` and `y=` (the 2-D targets).
        warm_start: continue training the fitted `model_` on the next `fit`.
        model_kwargs: keyword arguments for the build function.
        fit_kwargs: keyword arguments for `Model.fit`.
        random_state: an int makes fits reproducible (seeds torch, numpy and `random` for
            the build and the fit, restoring them afterwards). None leaves them alone.
        epochs: `Model.fit`'s `epochs` (None: `fit_kwargs`'s value, else 1).
        batch_size: `Model.fit`'s `batch_size`, also used by `predict` (None: 32).
        verbose: `Model.fit`'s `verbose`; None means 0 (silent).
        **routed_params: `model__<arg>` and `fit__<arg>` parameters, as for
            `SKLearnClassifier`.

    Attributes:
        model_: the fitted `kfit.Model`.
        history_: `{metric: [value per epoch]}`, extended by warm-started fits.
        n_features_in_: the number of features seen in `fit`.
        feature_names_in_: the column names, when `X` was a DataFrame with string names.

    Example:
        >>> def build(X, y, hidden=32):
        ...     model = kfit.Sequential(nn.Linear(X.shape[1], hidden), nn.ReLU(),
        ...                             nn.Linear(hidden, y.shape[1]))
        ...     model.compile(optimizer="adam", loss="mse")
        ...     return model
        >>> scores = cross_val_score(SKLearnRegressor(build, epochs=20), X, y, cv=5)
    """

    _y_numeric = True

    def predict(self, X: Any) -> np.ndarray:
        """Predictions in float64, `(n_samples,)` or `(n_samples, n_targets)` like `y`.

        Raises:
            ValueError: if the model does not output one value per target.
        """
        outputs = self._outputs(X).astype(np.float64)
        if outputs.shape[1] != self._n_targets:
            raise ValueError(
                f"The model outputs {outputs.shape[1]} values per sample but `y` had "
                f"{self._n_targets} targets: build it with y.shape[1] outputs."
            )
        return outputs[:, 0] if self._y_ndim == 1 else outputs

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _target_state(self, y: np.ndarray, reset: bool) -> dict[str, Any]:
        n_targets = 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))
        if not reset and n_targets != self._n_targets:
            raise ValueError(
                f"A warm-started fit needs {self._n_targets} targets per sample; got {n_targets}."
            )
        return {"_y_ndim": y.ndim, "_n_targets": n_targets}

    def _encode(self, y: np.ndarray, state: dict[str, Any]) -> np.ndarray:
        return np.asarray(y, dtype=np.float64).reshape(len(y), -1)
