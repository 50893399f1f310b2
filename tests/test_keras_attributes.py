"""Keras's model and optimizer attributes: get/set_weights, learning_rate, iterations, apply."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import kfit


def _model(optimizer="sgd") -> kfit.Model:
    torch.manual_seed(0)
    model = kfit.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    model.compile(optimizer=optimizer, loss="mse", device="cpu")
    return model


def _data(n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=(n, 1)).astype(np.float32)


def test_get_weights_returns_numpy_copies_in_state_dict_order():
    model = _model()
    weights = model.get_weights()

    assert [w.shape for w in weights] == [tuple(t.shape) for t in model.state_dict().values()]
    assert all(isinstance(w, np.ndarray) for w in weights)
    weights[0][...] = 7.0
    assert not np.allclose(model.get_weights()[0], 7.0)


def test_set_weights_restores_what_get_weights_kept():
    model = _model()
    kept = model.get_weights()
    model.fit(*_data(), epochs=2, verbose=0)

    model.set_weights(kept)

    for now, before in zip(model.get_weights(), kept, strict=True):
        np.testing.assert_array_equal(now, before)


def test_set_weights_wrong_count_names_the_numbers():
    model = _model()

    with pytest.raises(ValueError, match="must hold 9 arrays.*got 8"):
        model.set_weights(model.get_weights()[:-1])


def test_set_weights_wrong_shape_names_the_index_and_changes_nothing():
    model = _model()
    weights = model.get_weights()
    before = [w.copy() for w in weights]
    weights[0] = weights[0] + 1.0
    weights[2] = np.zeros(5, np.float32)

    with pytest.raises(ValueError, match=r"weights\[2\].*\(4,\).*\(5,\)"):
        model.set_weights(weights)
    np.testing.assert_array_equal(model.get_weights()[0], before[0])


def test_learning_rate_reads_and_assigns_and_lr_is_an_alias():
    model = _model(kfit.optimizers.SGD(0.1))

    assert model.optimizer.learning_rate == pytest.approx(0.1)
    model.optimizer.learning_rate = 0.25
    assert model.optimizer.lr == pytest.approx(0.25)
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(0.25)


def test_assigned_learning_rate_is_used_by_the_next_step():
    model = kfit.Model(nn.Linear(1, 1, bias=False))
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    with torch.no_grad():
        model.module.weight.fill_(1.0)
    model.optimizer.learning_rate = 0.5
    x, y = np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32)

    model.train_on_batch(x, y)

    # d/dw (w - 0)^2 = 2w = 2; w = 1 - 0.5 * 2 = 0
    assert model.module.weight.item() == pytest.approx(0.0)


def test_iterations_counts_the_updates():
    model = _model()
    x, y = _data(32)

    model.fit(x, y, batch_size=8, epochs=2, verbose=0)

    assert model.optimizer.iterations == 8


def test_assigned_schedule_is_evaluated_at_each_step():
    model = _model()
    model.optimizer.learning_rate = lambda step: 0.1 / (1 + step)
    x, y = _data(16)

    model.fit(x, y, batch_size=8, epochs=1, verbose=0)

    assert model.optimizer.iterations == 2
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / 2)
    assert model.optimizer.learning_rate == pytest.approx(0.1 / 3)


def test_number_cannot_replace_a_schedule_as_in_keras():
    schedule = kfit.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    model = _model(kfit.optimizers.SGD(schedule))

    with pytest.raises(TypeError, match="schedule"):
        model.optimizer.learning_rate = 0.01


def test_scheduler_callback_reads_and_sets_learning_rate_as_the_keras_guide_does():
    class CustomLearningRateScheduler(kfit.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if not hasattr(self.model.optimizer, "learning_rate"):
                raise ValueError('Optimizer must have a "learning_rate" attribute.')
            lr = float(self.model.optimizer.learning_rate)
            self.model.optimizer.learning_rate = lr * 0.5

    model = _model(kfit.optimizers.SGD(0.1))
    model.fit(*_data(), epochs=3, verbose=0, callbacks=[CustomLearningRateScheduler()])

    assert model.optimizer.learning_rate == pytest.approx(0.1 / 8)


def test_learning_rate_scheduler_callback_updates_learning_rate_attribute():
    model = _model(kfit.optimizers.SGD(0.1))
    scheduler = kfit.callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 * (epoch + 1))

    model.fit(*_data(), epochs=2, verbose=0, callbacks=[scheduler])

    assert model.optimizer.learning_rate == pytest.approx(0.02)


def test_iterations_survive_save_and_load(tmp_path):
    model = _model()
    model.fit(*_data(16), batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "m.pt")

    restored = _model()
    restored.load(tmp_path / "m.pt")

    assert restored.optimizer.iterations == 2


def test_torch_optimizer_instance_keeps_working_and_gains_attributes():
    module = nn.Linear(3, 1)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.01)
    model = kfit.Model(module)
    model.compile(optimizer=optimizer, loss="mse", device="cpu")

    model.fit(*_data(16), batch_size=8, epochs=1, verbose=0)

    assert model.optimizer is optimizer
    assert isinstance(optimizer, torch.optim.Adam)
    assert (optimizer.iterations, optimizer.learning_rate) == (2, pytest.approx(0.01))


def test_standalone_optimizer_apply_matches_torch():
    param = nn.Parameter(torch.tensor([1.0, -2.0]))
    reference = nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = kfit.optimizers.Adam(0.1)
    torch_optimizer = torch.optim.Adam([reference], lr=0.1, eps=1e-7)

    for _ in range(3):
        grad = 2 * param.detach()
        optimizer.apply([grad], [param])
        reference.grad = 2 * reference.detach()
        torch_optimizer.step()

    torch.testing.assert_close(param.detach(), reference.detach())
    assert optimizer.iterations == 3


def test_standalone_apply_gradients_takes_pairs_and_later_calls_may_omit_variables():
    param = nn.Parameter(torch.ones(2))
    optimizer = kfit.optimizers.SGD(0.5)

    optimizer.apply_gradients(zip([torch.ones(2)], [param], strict=True))
    optimizer.apply([torch.ones(2)])

    torch.testing.assert_close(param.detach(), torch.zeros(2))


def test_standalone_optimizer_learning_rate_is_settable_after_building():
    param = nn.Parameter(torch.ones(1))
    optimizer = kfit.optimizers.SGD(0.5)
    optimizer.apply([torch.ones(1)], [param])

    optimizer.learning_rate = 0.25
    optimizer.apply([torch.ones(1)], [param])

    assert param.item() == pytest.approx(0.25)
    assert optimizer.learning_rate == pytest.approx(0.25)


def test_standalone_apply_without_variables_first_raises():
    with pytest.raises(ValueError, match="trainable_variables"):
        kfit.optimizers.SGD().apply([torch.ones(1)])


def test_standalone_apply_clips_as_compile_does():
    param = nn.Parameter(torch.zeros(2))
    optimizer = kfit.optimizers.SGD(1.0, clipvalue=0.5)

    optimizer.apply([torch.tensor([3.0, -0.1])], [param])

    torch.testing.assert_close(param.detach(), torch.tensor([-0.5, 0.1]))
