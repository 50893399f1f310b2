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


# --------------------------------------------------------------- custom steps, Keras style


@pytest.mark.parametrize(
    ("weights", "expected_length"), [(None, 2), (np.ones(8, np.float32), 3)], ids=["xy", "xyw"]
)
def test_train_step_gets_the_batch_as_the_data_yields_it(weights, expected_length):
    seen = []

    class Recording(kfit.Model):
        def train_step(self, data):
            seen.append(len(data))
            return super().train_step(data)

    model = Recording(nn.Linear(3, 1))
    model.compile("sgd", "mse", device="cpu")
    x, y = _data(8)
    model.fit(x, y, sample_weight=weights, batch_size=8, epochs=1, verbose=0)

    assert seen == [expected_length]


@pytest.mark.parametrize(
    ("data", "expected"),
    [("x", ("x", None, None)), (("x",), ("x", None, None)), (("x", "y"), ("x", "y", None))],
)
def test_unpack_x_y_sample_weight(data, expected):
    assert kfit.utils.unpack_x_y_sample_weight(data) == expected


def test_pack_x_y_sample_weight_is_the_shortest_tuple():
    assert kfit.utils.pack_x_y_sample_weight("x") == ("x",)
    assert kfit.utils.pack_x_y_sample_weight("x", "y") == ("x", "y")
    assert kfit.utils.pack_x_y_sample_weight("x", "y", "w") == ("x", "y", "w")


def test_compute_loss_takes_keras_keywords():
    model = _model()
    y_pred, y = torch.zeros(4, 1), torch.ones(4, 1)

    assert model.compute_loss(y=y, y_pred=y_pred).item() == pytest.approx(1.0)


def test_loss_tracker_update_state_takes_the_loss_alone():
    model = _model()
    tracker = model.metrics[0]

    tracker.update_state(torch.tensor(1.0))
    tracker.update_state(torch.tensor(3.0))

    assert tracker.name == "loss"
    assert tracker.result().item() == pytest.approx(2.0)


def test_metrics_lists_the_compiled_metrics_container_until_they_are_built():
    model = kfit.Model(nn.Linear(3, 1))
    model.compile("sgd", "mse", metrics=["mae"], device="cpu")
    container = model.metrics[1]

    container.update_state(torch.zeros(2, 1), torch.ones(2, 1))

    assert container.name == "compile_metrics"
    assert {k: v.item() for k, v in container.result().items()} == {"mae": 1.0}
    assert [m.name for m in model.metrics] == ["loss", "mae"]


# --------------------------------------------------------------- Keras-style metrics


class _Count(kfit.metrics.Metric):
    def __init__(self, name="count", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_weight(shape=(2,), initializer="ones", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.total.assign_add(torch.stack([y_true.sum(), y_pred.sum()]))

    def result(self):
        return self.total[0] / self.total[1]


def test_keras_style_metric_updates_through_either_spelling_and_resets():
    metric = _Count()

    metric.update_state(torch.tensor([1.0]), torch.tensor([3.0]))
    assert metric.result().item() == pytest.approx(2.0 / 4.0)
    metric.update(torch.tensor([1.0]), torch.tensor([0.0]))  # Keras's order: y_true first
    assert metric.compute().item() == pytest.approx(3.0 / 4.0)
    metric.reset()
    assert metric.result().item() == pytest.approx(1.0)


def test_add_variable_rejects_an_unknown_initializer():
    class Bad(kfit.metrics.Metric):
        def __init__(self):
            super().__init__()
            self.add_variable(initializer="glorot")

        def update_state(self, y_true, y_pred, sample_weight=None):
            pass

        def result(self):
            return torch.zeros(())

    with pytest.raises(ValueError, match="initializer.*glorot"):
        Bad()


# --------------------------------------------------------------- kfit.add_loss


def test_add_loss_from_a_submodule_is_added_and_logged():
    class Penalised(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 1)

        def forward(self, x):
            kfit.add_loss(torch.tensor(0.5), name="penalty")
            return self.linear(x)

    model = kfit.Sequential(Penalised())
    model.compile("sgd", "mse", device="cpu")
    x, y = _data(8)
    y_pred = torch.from_numpy(model.predict(x, verbose=0))
    plain = kfit.losses.mean_squared_error(torch.from_numpy(y), y_pred)

    logs = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)

    assert logs["penalty"] == pytest.approx(0.5)
    assert logs["loss"] == pytest.approx(float(torch.as_tensor(plain).mean()) + 0.5, rel=1e-5)


def test_add_loss_outside_a_forward_pass_is_an_error():
    with pytest.raises(RuntimeError, match="outside the forward pass"):
        kfit.add_loss(torch.tensor(1.0))


def test_add_loss_takes_tensors_only():
    with pytest.raises(TypeError, match="takes a tensor"):
        kfit.add_loss(1.0)


def test_a_model_with_its_optimizer_unpickles_in_a_new_process(tmp_path):
    import pickle
    import subprocess
    import sys

    model = _model("adam")
    model.fit(*_data(8), batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    code = (
        "import pickle, sys; m = pickle.loads(open(sys.argv[1], 'rb').read()); "
        "print(m.optimizer.iterations)"
    )

    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "1"
