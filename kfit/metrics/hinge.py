"""Hinge metrics, as Keras's `hinge_metrics`."""

from __future__ import annotations

from typing import Any

from kfit.losses import categorical_hinge, hinge, squared_hinge
from kfit.metrics.reduction import MeanMetricWrapper

__all__ = ["CategoricalHinge", "Hinge", "SquaredHinge"]


class Hinge(MeanMetricWrapper):
    """Mean hinge loss `max(1 - y_true * y_pred, 0)` (0/1 labels become -1/1).

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    def __init__(self, name: str = "hinge", dtype: Any = None):
        super().__init__(hinge, name=name, dtype=dtype)


class SquaredHinge(MeanMetricWrapper):
    """Mean squared hinge loss `max(1 - y_true * y_pred, 0)**2`.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    def __init__(self, name: str = "squared_hinge", dtype: Any = None):
        super().__init__(squared_hinge, name=name, dtype=dtype)


class CategoricalHinge(MeanMetricWrapper):
    """Mean categorical hinge loss `max(0, 1 + max(neg) - pos)`.

    Args:
        name: the name shown in logs.
        dtype: the dtype of the states.
    """

    def __init__(self, name: str = "categorical_hinge", dtype: Any = None):
        super().__init__(categorical_hinge, name=name, dtype=dtype)
