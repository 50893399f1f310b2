"""The keras.io guides' training code, run as written against kfit and compared with Keras 3.

Each test ports one guide pattern (training with built-in methods, writing your own callbacks,
customizing what happens in fit with torch, the GAN example, a training loop from scratch,
saving), changing only the model definitions (Keras layers -> torch modules). Where the result
is numeric, Keras 3 (torch backend, CPU) runs the same code on the same weights and data.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import kfit

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("KERAS_TORCH_DEVICE", "cpu")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("needs KERAS_BACKEND=torch", allow_module_level=True)

pytestmark = [
    pytest.mark.keras_compat,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:keras"),
]

FEATURES, HIDDEN, CLASSES = 6, 8, 3


def _data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=(n, 1))
    return x, y


def _regression_data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    return x, (x @ rng.normal(size=(FEATURES, 1))).astype(np.float32)


def _weights(units: int) -> list[np.ndarray]:
    rng = np.random.default_rng(2)
    shapes = [(FEATURES, HIDDEN), (HIDDEN,), (HIDDEN, units), (units,)]
    return [(0.4 * rng.normal(size=s)).astype(np.float32) for s in shapes]


def _keras_layers(units: int, activation: str | None = None) -> list[Any]:
    return [
        keras.Input((FEATURES,)),
        keras.layers.Dense(HIDDEN, activation="relu"),
        keras.layers.Dense(units, activation=activation),
    ]


def _torch_layers(units: int, weights: list[np.ndarray], softmax: bool = False) -> list[Any]:
    layers = [nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, units)]
    # Keras kernels are (in, out), torch weights (out, in): set_weights takes torch's layout.
    torch_order = [weights[0].T, weights[1], weights[2].T, weights[3]]
    kfit.Sequential(layers).set_weights(torch_order)
    return [*layers, nn.Softmax(dim=-1)] if softmax else layers


def _assert_history_close(kfit_history: Any, keras_history: Any, rtol: float = 1e-4) -> None:
    assert set(kfit_history.history) == set(keras_history.history)
    for key, values in keras_history.history.items():
        np.testing.assert_allclose(kfit_history.history[key], values, rtol=rtol, err_msg=key)


# --------------------------------------------------------------- training with built-in methods


def _true_positives_class(lib: Any, ops: Any) -> type:
    class CategoricalTruePositives(lib.metrics.Metric):
        def __init__(self, name="categorical_true_positives", **kwargs):
            super().__init__(name=name, **kwargs)
            self.true_positives = self.add_variable(shape=(), name="ctp", initializer="zeros")

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_pred = ops.reshape(ops.argmax(y_pred, axis=1), (-1, 1))
            values = ops.cast(ops.cast(y_true, "int32") == ops.cast(y_pred, "int32"), "float32")
            if sample_weight is not None:
                values = ops.multiply(values, ops.cast(sample_weight, "float32"))
            self.true_positives.assign_add(ops.sum(values))

        def result(self):
            return self.true_positives

        def reset_state(self):
            self.true_positives.assign(0.0)

    return CategoricalTruePositives


class _TorchOps:
    """The few `keras.ops` the guide's metric uses, in torch."""

    reshape = staticmethod(torch.reshape)
    sum = staticmethod(torch.sum)
    multiply = staticmethod(torch.mul)

    @staticmethod
    def argmax(x, axis):
        return torch.argmax(x, dim=axis)

    @staticmethod
    def cast(x, dtype):
        return torch.as_tensor(x).to(getattr(torch, dtype))


def test_keras_style_metric_subclass_in_compile_matches_keras():
    x, y = _data()
    weights = _weights(CLASSES)
    keras_model = keras.Sequential(_keras_layers(CLASSES, "softmax"))
    keras_model.set_weights(weights)
    metric = _true_positives_class(keras, keras.ops)
    keras_model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss="sparse_categorical_crossentropy",
        metrics=[metric()],
    )
    model = kfit.Sequential(_torch_layers(CLASSES, weights, softmax=True))
    model.compile(
        optimizer=kfit.optimizers.SGD(0.1),
        loss="sparse_categorical_crossentropy",
        metrics=[_true_positives_class(kfit, _TorchOps)()],
        device="cpu",
    )

    keras_history = keras_model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)

    _assert_history_close(history, keras_history)


def test_keras_style_metric_state_lives_on_the_model_device_and_resets():
    metric = _true_positives_class(kfit, _TorchOps)()
    metric.update_state(torch.tensor([[1], [0]]), torch.tensor([[0.0, 1.0], [0.0, 1.0]]))

    assert float(metric.result()) == 1.0
    assert metric.true_positives.device == torch.device("cpu")
    metric.reset()
    assert float(metric.result()) == 0.0


def test_add_loss_from_a_submodule_matches_a_keras_layer_add_loss():
    class ActivityRegularizationLayer(keras.layers.Layer):
        def call(self, inputs):
            self.add_loss(1e-2 * keras.ops.sum(inputs))
            return inputs

    class TorchActivityRegularization(nn.Module):
        def forward(self, inputs):
            kfit.add_loss(1e-2 * torch.sum(inputs))
            return inputs

    x, y = _regression_data()
    weights = _weights(1)
    layers = _keras_layers(1)
    keras_model = keras.Sequential([*layers[:2], ActivityRegularizationLayer(), layers[2]])
    keras_model.set_weights(weights)
    keras_model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    torch_layers = _torch_layers(1, weights)
    model = kfit.Sequential([*torch_layers[:2], TorchActivityRegularization(), torch_layers[2]])
    model.compile(optimizer=kfit.optimizers.SGD(0.01), loss="mse", device="cpu")

    keras_history = keras_model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)

    np.testing.assert_allclose(history.history["loss"], keras_history.history["loss"], rtol=1e-4)
    assert history.history["added_loss"][0] > 0  # logged on its own, too (not in Keras)


# --------------------------------------------------------------- writing your own callbacks


class EarlyStoppingAtMinLoss(kfit.callbacks.Callback):
    """The callbacks guide's example, as written (get_weights/set_weights)."""

    def __init__(self, patience=0):
        super().__init__()
        self.patience = patience
        self.best_weights = None

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = np.inf

    def on_epoch_end(self, epoch, logs=None):
        current = logs.get("loss")
        if np.less(current, self.best):
            self.best = current
            self.wait = 0
            self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.model.stop_training = True
                self.model.set_weights(self.best_weights)


class CustomLearningRateScheduler(kfit.callbacks.Callback):
    """The callbacks guide's scheduler, as written."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self.model.optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        lr = self.model.optimizer.learning_rate
        scheduled_lr = self.schedule(epoch, lr)
        self.model.optimizer.learning_rate = scheduled_lr


def _lr_schedule(epoch, lr):
    return lr * 0.5 if epoch >= 1 else lr


def test_callbacks_guide_scheduler_matches_keras():
    x, y = _regression_data()
    weights = _weights(1)
    keras_model = keras.Sequential(_keras_layers(1))
    keras_model.set_weights(weights)
    keras_model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])

    class KerasScheduler(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            self.model.optimizer.learning_rate = _lr_schedule(epoch, lr)

    model = kfit.Sequential(_torch_layers(1, weights))
    model.compile(optimizer=kfit.optimizers.SGD(0.05), loss="mse", metrics=["mae"], device="cpu")

    keras_history = keras_model.fit(
        x, y, batch_size=16, epochs=3, shuffle=False, verbose=0, callbacks=[KerasScheduler()]
    )
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=3,
        shuffle=False,
        verbose=0,
        callbacks=[CustomLearningRateScheduler(_lr_schedule)],
    )

    _assert_history_close(history, keras_history)
    assert model.optimizer.learning_rate == pytest.approx(0.05 / 4)


def test_callbacks_guide_early_stopping_restores_the_best_weights():
    x, y = _regression_data()
    model = kfit.Sequential(_torch_layers(1, _weights(1)))
    model.compile(optimizer=kfit.optimizers.SGD(5.0), loss="mse", device="cpu")  # diverges
    callback = EarlyStoppingAtMinLoss(patience=1)

    history = model.fit(x, y, batch_size=64, epochs=10, verbose=0, callbacks=[callback])

    assert callback.stopped_epoch < 9
    for now, best in zip(model.get_weights(), callback.best_weights, strict=True):
        np.testing.assert_array_equal(now, best)
    assert len(history.history["loss"]) == callback.stopped_epoch + 1


# --------------------------------------------------------------- customizing what happens in fit


def _custom_model_class(base: type, lib: Any) -> type:
    class CustomModel(base):
        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self(x, training=True) if lib is keras else self(x)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights] if lib is keras else None
            if lib is keras:
                gradients = [v.value.grad for v in trainable_weights]
                with torch.no_grad():
                    self.optimizer.apply(gradients, trainable_weights)
            else:
                with torch.no_grad():
                    self.optimizer.step()
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

    return CustomModel


def test_custom_train_step_as_written_matches_keras():
    x, y = _regression_data()
    weights = _weights(1)
    keras_model = _custom_model_class(keras.Sequential, keras)(_keras_layers(1))
    keras_model.set_weights(weights)
    keras_model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    model = _custom_model_class(kfit.Sequential, kfit)(_torch_layers(1, weights))
    model.compile(optimizer=kfit.optimizers.SGD(0.05), loss="mse", metrics=["mae"], device="cpu")

    assert [m.name for m in model.metrics] == ["loss", "compile_metrics"]
    keras_history = keras_model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)

    # Keras's step returns the running values: the last batch's means are the epoch's.
    _assert_history_close(history, keras_history)


def test_custom_test_step_with_unpack_matches_keras():
    def test_step(self, data):
        x, y, sample_weight = unpack(data)
        y_pred = self(x)
        loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    x, y = _regression_data()
    weights = _weights(1)
    unpack = keras.utils.unpack_x_y_sample_weight
    keras_model = type("K", (keras.Sequential,), {"test_step": test_step})(_keras_layers(1))
    keras_model.set_weights(weights)
    keras_model.compile(loss="mse", metrics=["mae"])
    expected = keras_model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    unpack = kfit.utils.unpack_x_y_sample_weight
    model = type("M", (kfit.Sequential,), {"test_step": test_step})(_torch_layers(1, weights))
    model.compile(loss="mse", metrics=["mae"], device="cpu")

    got = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)

    assert got == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------- the GAN example


class GAN(kfit.Model):
    """The guide's GAN, with torch modules: optimizers outside compile, `apply`."""

    def __init__(self, discriminator, generator, latent_dim):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.d_loss_tracker = kfit.metrics.Mean(name="d_loss")
        self.g_loss_tracker = kfit.metrics.Mean(name="g_loss")
        self.built = True

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile(device="cpu")
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    def train_step(self, real_images):
        if isinstance(real_images, tuple):
            real_images = real_images[0]
        batch_size = real_images.shape[0]
        random_latent_vectors = torch.randn(batch_size, self.latent_dim)
        generated_images = self.generator(random_latent_vectors)
        combined_images = torch.concat([generated_images, real_images], axis=0)
        labels = torch.concat([torch.ones((batch_size, 1)), torch.zeros((real_images.shape[0], 1))])
        labels += 0.05 * torch.rand(labels.shape)

        self.zero_grad()
        predictions = self.discriminator(combined_images)
        d_loss = self.loss_fn(labels, predictions)
        d_loss.backward()
        grads = [v.grad for v in self.discriminator.parameters()]
        with torch.no_grad():
            self.d_optimizer.apply(grads, list(self.discriminator.parameters()))

        random_latent_vectors = torch.randn(batch_size, self.latent_dim)
        misleading_labels = torch.zeros((batch_size, 1))
        self.zero_grad()
        predictions = self.discriminator(self.generator(random_latent_vectors))
        g_loss = self.loss_fn(misleading_labels, predictions)
        g_loss.backward()
        grads = [v.grad for v in self.generator.parameters()]
        with torch.no_grad():
            self.g_optimizer.apply(grads, list(self.generator.parameters()))

        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}


def test_gan_example_trains_with_standalone_optimizers():
    torch.manual_seed(0)
    discriminator = nn.Sequential(nn.Linear(4, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    generator = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 4))
    gan = GAN(discriminator=discriminator, generator=generator, latent_dim=2)
    gan.compile(
        d_optimizer=kfit.optimizers.Adam(learning_rate=0.0003),
        g_optimizer=kfit.optimizers.Adam(learning_rate=0.0003),
        loss_fn=kfit.losses.BinaryCrossentropy(from_logits=True),
    )
    before = [p.detach().clone() for p in gan.parameters()]
    data = torch.utils.data.TensorDataset(torch.randn(64, 4))

    history = gan.fit(torch.utils.data.DataLoader(data, batch_size=16), epochs=2, verbose=0)

    assert list(history.history) == ["d_loss", "g_loss"]
    assert all(np.isfinite(v) for vs in history.history.values() for v in vs)
    assert gan.d_optimizer.iterations == gan.g_optimizer.iterations == 8
    assert all(not torch.equal(b, p) for b, p in zip(before, gan.parameters(), strict=True))


# --------------------------------------------------------------- a training loop from scratch


def _loop(model: Any, parameters: list[Any], optimizer: Any, loss_fn: Any, metric: Any, lib: Any):
    """The guide's low-level loop with torch: backward, then `optimizer.apply`."""
    x, y = _data(48)
    losses, accuracies = [], []
    for _epoch in range(2):
        for step in range(3):
            xb = torch.from_numpy(x[16 * step : 16 * (step + 1)])
            yb = torch.from_numpy(y[16 * step : 16 * (step + 1)])
            logits = model(xb)
            loss = loss_fn(yb, logits)
            model.zero_grad()
            loss.backward()
            gradients = [v.value.grad if lib is keras else v.grad for v in parameters]
            with torch.no_grad():
                optimizer.apply(gradients, parameters)
            metric.update_state(yb, logits)
            losses.append(float(loss))
        accuracies.append(float(metric.result()))
        metric.reset_state()
    return losses, accuracies


def test_training_loop_from_scratch_matches_keras():
    weights = _weights(CLASSES)
    keras_model = keras.Sequential(_keras_layers(CLASSES))
    keras_model.set_weights(weights)
    expected = _loop(
        keras_model,
        keras_model.trainable_weights,
        keras.optimizers.Adam(learning_rate=1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        keras.metrics.SparseCategoricalAccuracy(),
        keras,
    )
    torch_model = kfit.Sequential(_torch_layers(CLASSES, weights))
    got = _loop(
        torch_model,
        list(torch_model.parameters()),
        kfit.optimizers.Adam(learning_rate=1e-2),
        kfit.losses.SparseCategoricalCrossentropy(from_logits=True),
        kfit.metrics.SparseCategoricalAccuracy(),
        kfit,
    )

    np.testing.assert_allclose(got[0], expected[0], rtol=1e-4)
    assert got[1] == expected[1]


# --------------------------------------------------------------- saving


def _build_model() -> kfit.Model:
    return kfit.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1))


def test_load_model_from_a_builder_restores_the_trained_model(tmp_path):
    x, y = _regression_data()
    model = _build_model()
    model.compile(optimizer="adam", loss="mse", metrics=["mae"], device="cpu")
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "model.pt")

    restored = kfit.models.load_model(tmp_path / "model.pt", model=_build_model)

    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    assert restored.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
    assert restored.optimizer.iterations == model.optimizer.iterations
    assert restored.history.history == model.history.history


def test_load_model_wraps_a_plain_module_and_loads_weights_alone(tmp_path):
    model = _build_model()
    model.save_weights(tmp_path / "weights.pt")

    restored = kfit.models.load_model(
        tmp_path / "weights.pt",
        model=lambda: nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1)),
        compile=False,
    )

    for a, b in zip(restored.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_load_model_without_the_builder_says_what_to_pass(tmp_path):
    with pytest.raises(ValueError, match="model=build_model"):
        kfit.models.load_model(tmp_path / "model.pt")


def test_weights_move_between_models_with_get_and_set_weights():
    source, target = _build_model(), _build_model()

    target.set_weights(source.get_weights())

    x = torch.randn(4, FEATURES)
    torch.testing.assert_close(target(x), source(x))
