"""Training diagnosis: the notes `fit` prints under the epoch line, and when it stays quiet."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

import kfit
from kfit import progress
from kfit.callbacks.diagnosis import Diagnostic, TrainingDiagnosis

pytestmark = pytest.mark.usefixtures("one_thread")

NOTE = "Diagnosis: "


def _regression(n: int = 256, features: int = 8, noise: float = 0.1, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    w = rng.normal(size=(features, 1)).astype(np.float32)
    return x, (x @ w + noise * rng.normal(size=(n, 1))).astype(np.float32)


def _linear(optimizer, loss="mse", features: int = 8) -> kfit.Model:
    torch.manual_seed(0)
    model = kfit.Sequential(nn.Linear(features, 1))
    model.compile(optimizer=optimizer, loss=loss, device="cpu")
    return model


def _mlp(optimizer, loss="mse", head: nn.Module | None = None, out: int = 1) -> kfit.Model:
    torch.manual_seed(0)
    layers = [nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, out)]
    model = kfit.Sequential(*layers, *([head] if head is not None else []))
    model.compile(optimizer=optimizer, loss=loss, device="cpu")
    return model


def _notes(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(NOTE)]


def _sgd(lr: float, **kwargs) -> kfit.optimizers.SGD:
    return kfit.optimizers.SGD(learning_rate=lr, **kwargs)


# --------------------------------------------------------------------------- learning rate too high


def test_too_high_learning_rate_prints_the_note_once(capsys):
    # Full-batch gradient descent on least squares with lr above 2/L: the loss grows each epoch.
    x, y = _regression()
    history = _linear(_sgd(0.8)).fit(x, y, epochs=10, batch_size=256, verbose=2)

    notes = _notes(capsys.readouterr().out)
    assert notes == [
        NOTE + "the loss rose for 3 epochs in a row (3.611 -> 6.783) with the learning rate "
        "unchanged: learning rate may be too high (now 0.8); try 0.08 or `model.lr_find(...)`."
    ]
    assert [(d.kind, d.epoch) for d in history.diagnostics] == [("learning_rate_too_high", 5)]
    assert history.history["loss"][-1] > 3 * history.history["loss"][2]  # it did keep rising


def test_a_loss_far_above_its_best_is_also_too_high(capsys):
    x, y = _regression()
    history = _linear(_sgd(1.0)).fit(x, y, epochs=4, batch_size=256, verbose=2)

    (note,) = history.diagnostics
    assert note.kind == "learning_rate_too_high"
    assert "is far above its best (5.417)" in note.message
    assert "(now 1); try 0.1" in note.message
    assert _notes(capsys.readouterr().out) == [NOTE + note.message]


def test_the_note_prints_under_the_epoch_line(capsys):
    x, y = _regression()
    _linear(_sgd(0.8)).fit(x, y, epochs=7, batch_size=256, verbose=1)

    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(NOTE))
    assert lines[at - 2] == "Epoch 6/7"
    assert lines[at - 1].startswith("1/1 [==============================]")
    assert lines[at + 1] == "Epoch 7/7"


def test_the_note_does_not_break_a_live_progress_bar(monkeypatch, capsys):
    # As in a terminal: the bar is redrawn with carriage returns; the note starts a fresh line.
    monkeypatch.setattr(progress, "_isatty", lambda stream: True)
    x, y = _regression()
    _linear(_sgd(0.8)).fit(x, y, epochs=7, batch_size=32, verbose=1)

    out = capsys.readouterr().out
    assert out.count(NOTE) == 1
    before, after = out.split(NOTE)
    assert before.endswith("\n")
    assert "\r" not in after.splitlines()[0]
    assert after.splitlines()[1] == "Epoch 7/7" or after.splitlines()[1].startswith("Epoch ")


def test_a_schedule_changing_the_rate_is_not_blamed_on_the_setting(capsys):
    x, y = _regression()
    raise_lr = kfit.callbacks.LearningRateScheduler(lambda epoch, lr: 0.8 + 0.01 * epoch)
    history = _linear(_sgd(0.8)).fit(
        x, y, epochs=8, batch_size=256, verbose=2, callbacks=[raise_lr]
    )

    assert history.history["loss"][-1] > history.history["loss"][2]
    assert history.diagnostics == []
    assert _notes(capsys.readouterr().out) == []


# --------------------------------------------------------------------------- quiet runs


@pytest.mark.parametrize(
    ("optimizer", "batch_size"),
    [(kfit.optimizers.Adam(learning_rate=0.01), 8), (_sgd(0.05), 8), ("rmsprop", 4)],
)
def test_a_healthy_run_prints_no_note(capsys, optimizer, batch_size):
    x, y = _regression(n=160)
    history = _mlp(optimizer).fit(
        x, y, epochs=12, batch_size=batch_size, validation_split=0.2, verbose=2
    )

    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]
    assert history.diagnostics == []
    assert NOTE not in capsys.readouterr().out


def test_diagnose_false_turns_it_off(capsys):
    x, y = _regression()
    history = _linear(_sgd(0.8)).fit(x, y, epochs=10, batch_size=256, verbose=2, diagnose=False)

    assert NOTE not in capsys.readouterr().out
    assert history.diagnostics == []


def test_verbose_0_prints_nothing(capsys):
    x, y = _regression()
    history = _linear(_sgd(0.8)).fit(x, y, epochs=10, batch_size=256, verbose=0)

    assert capsys.readouterr().out == ""
    assert history.diagnostics == []


@pytest.mark.parametrize("value", [None, 1, "yes"])
def test_diagnose_must_be_a_bool(value):
    x, y = _regression(n=8)
    model = _linear(_sgd(0.1))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"`diagnose` must be True or False; got"):
        model.fit(x, y, verbose=0, diagnose=value)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


# --------------------------------------------------------------------------- NaN


def test_nan_loss_names_the_epoch_and_the_usual_causes(capsys):
    x, y = _regression()
    history = _mlp(_sgd(0.4)).fit(x, y, epochs=5, batch_size=32, verbose=2)

    assert np.isnan(history.history["loss"][1])
    (note,) = history.diagnostics
    assert note.kind == "non_finite_loss"
    assert note.epoch == 1
    assert note.message.startswith("the loss became nan at epoch 2 (the batch is not known")
    assert "TerminateOnNaN() stops at it" in note.message
    assert "a learning rate too high (now 0.4; try 0.04)" in note.message
    assert "inputs or targets" not in note.message  # epoch 1 was finite: not the data
    assert _notes(capsys.readouterr().out) == [NOTE + note.message]  # once, though 4 epochs NaN


def test_nan_in_the_first_epoch_also_suspects_the_data():
    x, y = _regression()
    y[5] = np.nan
    history = _mlp(kfit.optimizers.Adam()).fit(x, y, epochs=1, verbose=2)

    (note,) = history.diagnostics
    assert "at epoch 1" in note.message
    assert "NaN or Inf values in the inputs or targets" in note.message


def test_nan_with_terminate_on_nan_refers_to_its_batch(capsys):
    x, y = _regression()
    history = _mlp(_sgd(0.4)).fit(
        x, y, epochs=5, batch_size=32, verbose=2, callbacks=[kfit.callbacks.TerminateOnNaN()]
    )

    out = capsys.readouterr().out
    assert "Invalid loss, terminating training" in out
    assert "TerminateOnNaN named the batch above" in history.diagnostics[0].message


class _Saturating(nn.Module):
    """A sigmoid whose input is huge at the second epoch's steps (float32 gives exactly 0/1)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 1)
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
        scale = 1e4 if self.calls > 8 else 1.0
        out = torch.sigmoid(self.linear(x) * scale)
        # A log of 0 in the model: NaN once the sigmoid saturates.
        return out + 0 * torch.log(out) * torch.log1p(-out) if self.calls > 16 else out


def test_nan_with_saturated_probabilities_suggests_from_logits():
    x, y = _regression()
    torch.manual_seed(0)
    model = kfit.Model(_Saturating())
    model.compile(optimizer=_sgd(0.01), loss="binary_crossentropy", device="cpu")
    history = model.fit(x, (y > 0).astype(np.float32), epochs=3, batch_size=32, verbose=2)

    note = history.diagnostics[-1]
    assert note.kind == "non_finite_loss"
    assert "predictions reached 0 or 1 (from 0 to 1)" in note.message
    assert "kfit.losses.BinaryCrossentropy(from_logits=True)" in note.message


def test_nan_validation_loss_with_a_finite_training_loss():
    x, y = _regression()
    y_val = y[:32].copy()
    y_val[0] = np.inf
    history = _mlp(kfit.optimizers.Adam()).fit(
        x, y, epochs=2, validation_data=(x[:32], y_val), verbose=2
    )

    assert [d.kind for d in history.diagnostics] == ["non_finite_val_loss"]
    assert "the validation data may hold NaN or Inf" in history.diagnostics[0].message


# --------------------------------------------------------------------------- over-fitting


def _overfit_data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    return x, rng.normal(size=(64, 1)).astype(np.float32)  # pure noise: nothing to generalise


def _overfitting_model() -> kfit.Model:
    torch.manual_seed(0)
    model = kfit.Sequential(nn.Linear(8, 128), nn.ReLU(), nn.Linear(128, 1))
    model.compile(optimizer=kfit.optimizers.Adam(0.01), loss="mse", device="cpu")
    return model


def test_validation_loss_rising_while_training_falls_is_overfitting(capsys):
    x, y = _overfit_data()
    history = _overfitting_model().fit(
        x[:32], y[:32], validation_data=(x[32:], y[32:]), epochs=25, batch_size=8, verbose=2
    )

    kinds = [d.kind for d in history.diagnostics]
    assert kinds == ["overfitting"]
    note = history.diagnostics[0]
    val = history.history["val_loss"][: note.epoch + 1]
    averages = np.convolve(val, np.ones(3) / 3, mode="valid")  # averages[i]: epochs i..i+2
    best_at = int(np.argmin(averages))
    assert len(averages) - 1 - best_at >= 5
    assert averages[-1] >= 1.05 * averages[best_at]
    assert history.history["loss"][note.epoch] < history.history["loss"][best_at + 2]
    assert f"has risen from its best {averages[best_at]:.4g} at epoch {best_at + 3}" in (
        note.message
    )
    assert "kfit.callbacks.EarlyStopping(monitor='val_loss'" in note.message
    assert _notes(capsys.readouterr().out) == [NOTE + note.message]


def test_overfitting_advice_knows_early_stopping_is_set():
    x, y = _overfit_data()
    stopper = kfit.callbacks.EarlyStopping(patience=20)
    history = _overfitting_model().fit(
        x[:32],
        y[:32],
        validation_data=(x[32:], y[32:]),
        epochs=25,
        batch_size=8,
        verbose=2,
        callbacks=[stopper],
    )

    assert "EarlyStopping is set and will stop it" in history.diagnostics[0].message


# --------------------------------------------------------------------------- flat loss


def test_flat_loss_from_the_start_suggests_a_higher_rate(capsys):
    x, y = _regression()
    history = _mlp(_sgd(1e-6)).fit(x, y, epochs=4, batch_size=32, verbose=2)

    (note,) = history.diagnostics
    assert (note.kind, note.epoch) == ("flat_loss", 2)
    assert note.message.startswith("the loss stayed within 1% of ")
    assert "learning rate may be too low (now 1e-06); try 1e-05 or `model.lr_find(...)`" in (
        note.message
    )
    assert _notes(capsys.readouterr().out) == [NOTE + note.message]


def test_flat_loss_is_not_claimed_for_a_model_trained_before():
    x, y = _regression()
    model = _mlp(_sgd(1e-6))
    model.fit(x, y, epochs=1, verbose=0)
    history = model.fit(x, y, epochs=4, batch_size=32, verbose=2)

    assert history.diagnostics == []


class _Detached(nn.Module):
    """A body whose output is detached: no gradient reaches it; `scale` gets a zero gradient."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(8, 1)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.body(x).detach() + 0 * self.scale


def test_flat_loss_names_parameters_no_gradient_reached():
    x, y = _regression()
    torch.manual_seed(0)
    model = kfit.Model(_Detached())
    model.compile(optimizer="adam", loss="mse", device="cpu")
    history = model.fit(x, y, epochs=3, verbose=2)

    (note,) = history.diagnostics
    assert "no gradient reached 2 of 3 trainable parameters (module.body.weight, " in note.message
    assert "the gradients of module.scale are exactly 0" in note.message
    assert "too low" not in note.message


def test_flat_loss_names_parameters_frozen_after_compile():
    x, y = _regression()
    model = _linear(_sgd(1e-7))
    model.module[0].weight.requires_grad_(False)  # frozen after the optimizer took it
    history = model.fit(x, y, epochs=3, verbose=2)

    (note,) = history.diagnostics
    assert "1 parameter(s) the optimizer holds are frozen (requires_grad=False: " in note.message
    assert "module.0.weight" in note.message


def test_a_saturated_sigmoid_stuck_after_getting_worse_suggests_from_logits():
    x, y = _regression()
    model = _mlp(_sgd(50.0), loss="binary_crossentropy", head=nn.Sigmoid())
    history = model.fit(x, (y > 0).astype(np.float32), epochs=6, batch_size=32, verbose=2)

    (note,) = history.diagnostics
    assert note.kind == "flat_loss"
    assert re.match(
        r"the loss is stuck at [\d.]+, above its best [\d.]+, for 3 epochs", note.message
    )
    assert "learning rate may be too high (now 50); try 5 or `model.lr_find(...)`" in note.message
    assert "Found: every gradient is exactly 0; predictions are stuck at 0 or 1" in note.message
    assert "use kfit.losses.BinaryCrossentropy(from_logits=True) on logits" in note.message


# --------------------------------------------------------------------------- cost and keeping


@pytest.mark.parametrize(
    ("loss", "head", "target"),
    [("mse", None, lambda y: y), ("binary_crossentropy", nn.Sigmoid(), lambda y: y > 0)],
)
def test_diagnosis_adds_no_host_read(count_host_reads, capsys, loss, head, target):
    x, y = _regression(n=96)
    y = target(y).astype(np.float32)
    model = _mlp("adam", loss=loss, head=head)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # the first batch settles the metrics
    counter = count_host_reads()
    model.fit(x, y, batch_size=16, epochs=4, verbose=2)

    assert counter.calls == ["tolist"] * 4  # fit's own read of the epoch values, nothing more


def test_diagnosis_probe_hook_is_gone_after_fit():
    x, y = _regression(n=64)
    model = _mlp("adam", loss="binary_crossentropy", head=nn.Sigmoid())
    model.fit(x, (y > 0).astype(np.float32), epochs=2, verbose=2)

    assert len(model._forward_hooks) == 0


def test_diagnostics_are_saved_and_loaded(tmp_path):
    x, y = _regression()
    model = _linear(_sgd(0.8))
    model.fit(x, y, epochs=7, batch_size=256, verbose=2)
    model.save(tmp_path / "state.pt")

    restored = _linear(_sgd(0.8))
    restored.load(tmp_path / "state.pt")

    assert restored.history.diagnostics == model.history.diagnostics
    assert isinstance(restored.history.diagnostics[0], Diagnostic)


def test_each_fit_call_starts_a_fresh_diagnosis():
    callback = TrainingDiagnosis()
    callback.diagnostics = [Diagnostic("flat_loss", 0, "old")]
    callback.set_model(_linear(_sgd(0.1)))
    callback.on_train_begin()

    assert callback.diagnostics == []


def test_a_note_that_reads_values_reads_them_once(count_host_reads):
    x, y = _regression()
    model = _mlp(_sgd(50.0), loss="binary_crossentropy", head=nn.Sigmoid())
    counter = count_host_reads()
    history = model.fit(x, (y > 0).astype(np.float32), epochs=8, batch_size=32, verbose=2)

    assert [(d.kind, d.epoch) for d in history.diagnostics] == [("flat_loss", 3)]
    # The first-batch check reads the prediction range once (the from_logits warning); then
    # one read of the epoch values per epoch, plus the gradient norms and the prediction range
    # read once for the note, though the loss stays stuck for the remaining epochs.
    assert counter.calls == ["__float__"] * 2 + ["tolist"] * (8 + 2)
