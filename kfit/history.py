"""`History`: every epoch's logged values, kept by `fit` and returned from it."""

from __future__ import annotations

from typing import Any

from kfit.callbacks.callback import Callback


class History(Callback):
    """Records each epoch's `logs` (added by `fit` automatically; one per `fit` call).

    Attributes:
        history: `{key: [value per epoch]}`; keys in log order: `loss`, the metrics, then
            their `val_` versions, then keys that callbacks add.
        epoch: the 0-based indices of the epochs that ran.
        params: `{'verbose', 'epochs', 'steps'}` as `fit` set them.
        model: the model that was trained.

    Example:
        >>> history = model.fit(x, y, epochs=3)
        >>> history.history["loss"]
        [0.71, 0.52, 0.44]
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[Any]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        # The model's `history` attribute is this object from the first epoch on.
        self.model.history = self

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"
