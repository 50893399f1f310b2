"""`SKLearnRegressor`: numeric targets in, predictions out."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import RegressorMixin

from kfit.wrappers.base import SKLearnWrapper


class SKLearnRegressor(RegressorMixin, SKLearnWrapper):
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
