"""scikit-learn estimators around a `kfit.Model`: `SKLearnClassifier` and `SKLearnRegressor`.

They take Keras 3's `keras.wrappers` arguments (`model`, `warm_start`, `model_kwargs`,
`fit_kwargs`) plus `random_state`, `epochs`, `batch_size`, `verbose` and routed parameters
`model__<arg>` (for the build function) and `fit__<arg>` (for `Model.fit`), so that
`GridSearchCV(param_grid={"model__hidden": [16, 32], "epochs": [5, 10]})`, `cross_val_score`,
`Pipeline` and `clone` work on any PyTorch module. Both pass scikit-learn's `check_estimator`.
"""

from kfit.wrappers.base import SKLearnWrapper
from kfit.wrappers.classifier import SKLearnClassifier
from kfit.wrappers.regressor import SKLearnRegressor

__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnWrapper"]
