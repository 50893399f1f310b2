"""NaN is never an improvement for a monitoring callback, and the first NaN is reported."""

from __future__ import annotations

import math

import pytest

from kfit.callbacks import EarlyStopping, ModelCheckpoint, ReduceLROnPlateau

VALUES = [math.nan, 0.5, 0.3, 0.2]


def test_early_stopping_does_not_stop_while_the_score_improves_after_a_nan(kfit_side, drive):
    model = kfit_side.model()
    callback = EarlyStopping(patience=1)
    with pytest.warns(UserWarning, match="'val_loss' is NaN"):
        seen = drive(callback, model, [{"val_loss": v} for v in VALUES])
    assert len(seen) == 4
    assert callback.best == 0.2


def test_model_checkpoint_saves_every_improvement_after_a_nan(kfit_side, drive, tmp_path):
    model = kfit_side.model()
    callback = ModelCheckpoint(
        str(tmp_path / "ck-{epoch}.pt"), save_best_only=True, save_weights_only=True
    )
    with pytest.warns(UserWarning, match="is NaN"):
        drive(callback, model, [{"val_loss": v} for v in VALUES])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck-2.pt", "ck-3.pt", "ck-4.pt"]
    assert callback.best == 0.2


def test_reduce_lr_on_plateau_counts_a_nan_as_no_improvement(kfit_side, drive):
    model = kfit_side.model(learning_rate=0.5)
    callback = ReduceLROnPlateau(patience=1, factor=0.5)
    with pytest.warns(UserWarning, match="is NaN"):
        drive(callback, model, [{"val_loss": v} for v in [0.5, math.nan, math.nan, 0.4]])
    assert callback.best == 0.4
    assert kfit_side.learning_rate(model) == pytest.approx(0.125)  # reduced at both NaN epochs


def test_the_nan_warning_is_given_once(kfit_side, drive, recwarn):
    model = kfit_side.model()
    drive(EarlyStopping(patience=10), model, [{"val_loss": math.nan}] * 3)
    assert sum("is NaN" in str(w.message) for w in recwarn) == 1
