"""`SKLearnClassifier`: class labels in, class probabilities and labels out."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from kfit.wrappers.base import SKLearnWrapper


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


class SKLearnClassifier(ClassifierMixin, SKLearnWrapper):
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
