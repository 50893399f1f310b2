"""Metrics with Keras 3's names, options and formulas, as torchmetrics accumulators.

Every metric here is a `torchmetrics.Metric`: its state lives on the model's device, it syncs
across processes under torchrun, and `update` never reads a value back to the host. A metric's
epoch value is what Keras computes over the same batches, whatever the batch size.

Argument order: `update(preds, target, sample_weight=None)` follows torchmetrics; the Keras
spellings `update_state(y_true, y_pred, sample_weight=None)` and `result()` are aliases.
`get_config()`/`from_config()` and `serialize`/`deserialize` rebuild any metric.

The families, as Keras has them: `reduction` (Mean, Sum, MeanMetricWrapper), `accuracy`,
`regression`, `probabilistic`, `hinge_metrics` (named apart from the function `hinge`),
`correlation`, `confusion` (counts, precision, recall), `fixed_rate` (the "X at fixed Y"
metrics), `auc`, `fbeta`, `iou`; ids and configs in `registry`. The
per-sample loss functions are the loss functions themselves:
`kfit.metrics.mean_squared_error is kfit.losses.mean_squared_error`.
"""

from __future__ import annotations

from kfit.losses import (
    binary_crossentropy,
    binary_focal_crossentropy,
    categorical_crossentropy,
    categorical_focal_crossentropy,
    categorical_hinge,
    cosine_distance,
    hinge,
    huber,
    kl_divergence,
    log_cosh,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
    poisson,
    sparse_categorical_crossentropy,
    squared_hinge,
)
from kfit.metrics.accuracy import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)
from kfit.metrics.auc import AUC
from kfit.metrics.base import Accumulator, Metric
from kfit.metrics.confusion import (
    FalseNegatives,
    FalsePositives,
    Precision,
    Recall,
    TrueNegatives,
    TruePositives,
)
from kfit.metrics.correlation import (
    ConcordanceCorrelation,
    PearsonCorrelation,
    concordance_correlation,
    pearson_correlation,
)
from kfit.metrics.fbeta import F1Score, FBetaScore
from kfit.metrics.fixed_rate import (
    PrecisionAtRecall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
)
from kfit.metrics.hinge_metrics import CategoricalHinge, Hinge, SquaredHinge
from kfit.metrics.iou import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from kfit.metrics.probabilistic import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    KLDivergence,
    Poisson,
    SparseCategoricalCrossentropy,
)
from kfit.metrics.reduction import Mean, MeanMetricWrapper, Sum
from kfit.metrics.registry import (
    ACCURACY_IDS,
    ALL_OBJECTS_DICT,
    UNSUPPORTED,
    deserialize,
    get,
    serialize,
)
from kfit.metrics.regression import (
    CosineDistance,
    CosineSimilarity,
    LogCoshError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    R2Score,
    RootMeanSquaredError,
)

__all__ = [
    "ACCURACY_IDS",
    "ALL_OBJECTS_DICT",
    "AUC",
    "Accumulator",
    "Accuracy",
    "BinaryAccuracy",
    "BinaryCrossentropy",
    "BinaryIoU",
    "CategoricalAccuracy",
    "CategoricalCrossentropy",
    "CategoricalHinge",
    "ConcordanceCorrelation",
    "CosineDistance",
    "CosineSimilarity",
    "F1Score",
    "FBetaScore",
    "FalseNegatives",
    "FalsePositives",
    "Hinge",
    "IoU",
    "KLDivergence",
    "LogCoshError",
    "Mean",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanIoU",
    "MeanMetricWrapper",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "Metric",
    "OneHotIoU",
    "OneHotMeanIoU",
    "PearsonCorrelation",
    "Poisson",
    "Precision",
    "PrecisionAtRecall",
    "R2Score",
    "Recall",
    "RecallAtPrecision",
    "RootMeanSquaredError",
    "SensitivityAtSpecificity",
    "SparseCategoricalAccuracy",
    "SparseCategoricalCrossentropy",
    "SparseTopKCategoricalAccuracy",
    "SpecificityAtSensitivity",
    "SquaredHinge",
    "Sum",
    "TopKCategoricalAccuracy",
    "TrueNegatives",
    "TruePositives",
    "UNSUPPORTED",
    "binary_accuracy",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_accuracy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "categorical_hinge",
    "concordance_correlation",
    "cosine_distance",
    "deserialize",
    "get",
    "hinge",
    "huber",
    "kl_divergence",
    "log_cosh",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_logarithmic_error",
    "pearson_correlation",
    "poisson",
    "serialize",
    "sparse_categorical_accuracy",
    "sparse_categorical_crossentropy",
    "sparse_top_k_categorical_accuracy",
    "squared_hinge",
    "top_k_categorical_accuracy",
]
