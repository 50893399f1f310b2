"""Custom `train_step` / `test_step` in a `kfit.Model` subclass still get the log and History."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import kfit

N, LATENT = 48, 2


def _real_samples() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(size=(N, 2)) * 0.5 + np.array([2.0, -1.0])).astype("float32")


def _nets(seed: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    generator = nn.Sequential(nn.Linear(LATENT, 8), nn.ReLU(), nn.Linear(8, 2))
    discriminator = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    return generator, discriminator


def _gan_losses(generator, discriminator, real):
    """One GAN step's two losses; draws the latent samples from torch's generator."""
    bce = nn.functional.binary_cross_entropy_with_logits
    fake = generator(torch.randn(real.shape[0], LATENT)).detach()
    d_real, d_fake = discriminator(real), discriminator(fake)
    d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
    return d_loss, lambda: bce(
        discriminator(generator(torch.randn(real.shape[0], LATENT))),
        torch.ones(real.shape[0], 1),
    )


class GAN(kfit.Model):
    """Keras's GAN example, in kfit: two optimizers and Mean trackers as attributes."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.generator, self.discriminator = _nets(seed)
        self.d_loss_tracker = kfit.metrics.Mean(name="d_loss")
        self.g_loss_tracker = kfit.metrics.Mean(name="g_loss")

    def forward(self, z):
        return self.generator(z)

    def compile(self, d_lr: float, g_lr: float) -> None:  # type: ignore[override]
        super().compile(device="cpu")
        self.d_optimizer = torch.optim.SGD(self.discriminator.parameters(), lr=d_lr)
        self.g_optimizer = torch.optim.SGD(self.generator.parameters(), lr=g_lr)

    def train_step(self, batch):
        real = batch[0]
        d_loss, make_g_loss = _gan_losses(self.generator, self.discriminator, real)
        self.d_optimizer.zero_grad()
        d_loss.backward()
        self.d_optimizer.step()
        g_loss = make_g_loss()
        self.g_optimizer.zero_grad()
        g_loss.backward()
        self.g_optimizer.step()
        self.d_loss_tracker.update(d_loss)
        self.g_loss_tracker.update(g_loss)
        return {"d_loss": self.d_loss_tracker.compute(), "g_loss": self.g_loss_tracker.compute()}


def test_gan_style_train_step_logs_its_trackers_equal_to_a_plain_torch_replay():
    real = _real_samples()
    model = GAN()
    model.compile(d_lr=0.05, g_lr=0.02)
    seen_logs = []
    callback = kfit.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen_logs.append(dict(logs))
    )
    torch.manual_seed(123)
    history = model.fit(
        real, epochs=2, batch_size=16, shuffle=False, verbose=0, callbacks=[callback]
    )

    generator, discriminator = _nets(0)
    d_optimizer = torch.optim.SGD(discriminator.parameters(), lr=0.05)
    g_optimizer = torch.optim.SGD(generator.parameters(), lr=0.02)
    torch.manual_seed(123)
    for epoch in range(2):
        d_values, g_values = [], []  # the trackers are reset at each epoch's start
        for start in range(0, N, 16):
            d_loss, make_g_loss = _gan_losses(
                generator, discriminator, torch.from_numpy(real[start : start + 16])
            )
            d_optimizer.zero_grad()
            d_loss.backward()
            d_optimizer.step()
            g_loss = make_g_loss()
            g_optimizer.zero_grad()
            g_loss.backward()
            g_optimizer.step()
            d_values.append(d_loss.item())
            g_values.append(g_loss.item())
        assert history.history["d_loss"][epoch] == pytest.approx(np.mean(d_values), rel=1e-5)
        assert history.history["g_loss"][epoch] == pytest.approx(np.mean(g_values), rel=1e-5)
    assert list(history.history) == ["d_loss", "g_loss"]
    assert seen_logs == [
        {"d_loss": history.history["d_loss"][e], "g_loss": history.history["g_loss"][e]}
        for e in range(2)
    ]
    for got, expected in zip(model.generator.parameters(), generator.parameters(), strict=True):
        torch.testing.assert_close(got, expected)


def test_custom_step_values_are_printed_in_the_log(capsys):
    model = GAN()
    model.compile(d_lr=0.05, g_lr=0.02)
    model.fit(_real_samples(), epochs=1, batch_size=16, verbose=2)
    out = capsys.readouterr().out
    assert "d_loss: " in out
    assert "g_loss: " in out


def test_attribute_trackers_are_logged_when_the_step_returns_none():
    class TrackedGAN(GAN):
        def train_step(self, batch):
            super().train_step(batch)  # updates the trackers; the return value is dropped
            return None

    model = TrackedGAN()
    model.compile(d_lr=0.05, g_lr=0.02)
    history = model.fit(_real_samples(), epochs=1, batch_size=16, verbose=0)
    assert sorted(history.history) == ["d_loss", "g_loss"]


class HelperStep(kfit.Model):
    """The default step rewritten from the public helpers."""

    def train_step(self, batch):
        x, y, sample_weight = kfit.utils.unpack_x_y_sample_weight(batch)
        y_pred = self.call_forward(x)
        loss = self.compute_loss(x, y, y_pred, sample_weight)
        self.apply_gradients(loss)
        self.update_metrics(loss, y, y_pred, sample_weight, x.shape[0])


def test_public_helpers_reproduce_the_default_step():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x.sum(1, keepdims=True) > 0).astype("float32")
    histories = []
    for cls in (kfit.Model, HelperStep):
        torch.manual_seed(0)
        model = cls(nn.Sequential(nn.Linear(4, 1), nn.Sigmoid()))
        model.compile(
            optimizer=kfit.optimizers.Adam(0.01, clipnorm=0.5),
            loss="binary_crossentropy",
            metrics=["accuracy"],
            device="cpu",
        )
        torch.manual_seed(1)
        histories.append(model.fit(x, y, epochs=2, validation_split=0.25, verbose=0).history)
    assert histories[0] == histories[1]


def test_custom_test_step_returning_a_dict_is_what_evaluate_and_validation_log():
    class Scored(kfit.Model):
        def test_step(self, batch):
            x, y, _ = kfit.utils.unpack_x_y_sample_weight(batch)
            error = (self(x) - y).abs().max()
            return {"max_error": error}

    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = x.sum(1, keepdims=True)
    model = Scored(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    history = model.fit(x, y, epochs=1, validation_data=(x, y), batch_size=32, verbose=0)
    assert list(history.history) == ["loss", "val_max_error"]
    logs = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    with torch.no_grad():
        expected = (model(torch.from_numpy(x)) - torch.from_numpy(y)).abs().max().item()
    assert logs == {"max_error": pytest.approx(expected)}


def test_a_step_returning_something_else_is_a_type_error():
    class Wrong(kfit.Model):
        def train_step(self, batch):
            return [1.0]

    model = Wrong(nn.Linear(2, 1))
    model.compile(loss="mse", device="cpu")
    with pytest.raises(TypeError, match="must return None or a dict"):
        model.fit(np.zeros((4, 2), "float32"), np.zeros((4, 1), "float32"), verbose=0)
