"""`compile(precision=...)` (autocast, gradient scaling) and `channels_last`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import kfit


def _data(n: int = 128):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x @ rng.normal(size=(6, 1))).astype("float32")
    return x, y


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 1))


@pytest.mark.parametrize(
    ("precision", "dtype"), [("bf16-mixed", torch.bfloat16), ("16-mixed", torch.float16)]
)
def test_mixed_precision_runs_forward_in_half_and_keeps_weights_and_logs_float32(precision, dtype):
    x, y = _data()
    model = kfit.Model(_mlp())
    seen_dtypes = []
    model.module[0].register_forward_hook(lambda m, i, out: seen_dtypes.append(out.dtype))
    model.compile(optimizer="adam", loss="mse", metrics=["mae"], precision=precision, device="cpu")
    history = model.fit(x, y, epochs=4, batch_size=32, verbose=0)

    assert set(seen_dtypes) == {dtype}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.predict(x, verbose=0).dtype == np.float32
    assert (model.compile_state.precision.scaler is not None) == (precision == "16-mixed")


def test_mixed_precision_trains_like_float32_within_half_precision_error():
    x, y = _data()
    histories = {}
    for precision in ("32", "bf16-mixed"):
        model = kfit.Model(_mlp())
        model.compile(optimizer="sgd", loss="mse", precision=precision, device="cpu")
        histories[precision] = model.fit(x, y, epochs=3, shuffle=False, verbose=0).history
    np.testing.assert_allclose(histories["bf16-mixed"]["loss"], histories["32"]["loss"], rtol=0.05)


def test_16_mixed_clips_the_unscaled_gradients():
    x, y = _data(32)
    y = 0.01 * y  # small gradients: no overflow at the scaler's first scale, 2**16
    weights = {}
    for precision in ("32", "16-mixed"):
        model = kfit.Model(_mlp())
        model.compile(
            optimizer=kfit.optimizers.SGD(0.1, clipnorm=0.05),
            loss="mse",
            precision=precision,
            device="cpu",
        )
        model.train_on_batch(x, y)
        weights[precision] = model.module[2].weight.detach().clone()
    # Clipping the *scaled* gradients (scale 65536) would leave the float16 step ~1e4 times
    # too small; on the unscaled ones both steps agree to float16 precision.
    before = _mlp().state_dict()["2.weight"]
    step_32, step_16 = weights["32"] - before, weights["16-mixed"] - before
    torch.testing.assert_close(step_16, step_32, rtol=2e-2, atol=2e-4)


def test_16_mixed_skips_a_step_whose_gradients_overflow():
    model = kfit.Model(_mlp())
    model.compile(optimizer="sgd", loss="mse", precision="16-mixed", device="cpu")
    before = [p.detach().clone() for p in model.parameters()]
    huge = np.full((8, 6), 6e4, dtype="float32")  # float16 overflows in the forward pass
    model.train_on_batch(huge, np.zeros((8, 1), "float32"))
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    assert model.compile_state.precision.scaler.get_scale() < 65536.0  # the scale was lowered


def test_grad_scaler_state_is_saved_and_restored(tmp_path):
    x, y = _data()
    model = kfit.Model(_mlp())
    model.compile(optimizer="adam", loss="mse", precision="16-mixed", device="cpu")
    model.fit(x, y, epochs=1, verbose=0)
    model.compile_state.precision.scaler.update(new_scale=1024.0)
    model.save(tmp_path / "state.pt")
    restored = kfit.Model(_mlp(1))
    restored.load(tmp_path / "state.pt")
    assert restored.compile_state.precision.name == "16-mixed"
    assert restored.compile_state.precision.scaler.get_scale() == 1024.0


@pytest.mark.parametrize(
    ("precision", "message"),
    [
        ("bf16-mixd", "Did you mean 'bf16-mixed'"),
        ("16-true", "cast the model yourself"),
        (True, "`precision` must be one of"),
        (8, "`precision` must be one of"),
    ],
)
def test_bad_precision_fails_at_compile_naming_the_choices(precision, message):
    model = kfit.Model(_mlp())
    with pytest.raises(ValueError, match=message):
        model.compile(loss="mse", precision=precision, device="cpu")
    assert model.compile_state is None  # nothing changed


@pytest.mark.parametrize("alias", [16, "16", "bf16", 32, None])
def test_precision_aliases(alias):
    model = kfit.Model(_mlp())
    model.compile(loss="mse", precision=alias, device="cpu")
    expected = {16: "16-mixed", "16": "16-mixed", "bf16": "bf16-mixed", 32: "32", None: "32"}
    assert model.compile_state.precision.name == expected[alias]


def test_channels_last_converts_weights_and_inputs_and_trains_like_the_default_layout():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 3, 8, 8)).astype("float32")
    y = rng.integers(0, 2, size=24)

    def conv_net() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))

    seen_layouts = []
    histories = {}
    for channels_last in (False, True):
        model = kfit.Model(conv_net())
        model.module[0].register_forward_pre_hook(
            lambda m, args: seen_layouts.append(
                args[0].is_contiguous(memory_format=torch.channels_last)
            )
        )
        model.compile(
            optimizer="sgd",
            loss=nn.CrossEntropyLoss(),
            channels_last=channels_last,
            device="cpu",
        )
        assert (
            model.module[0].weight.is_contiguous(memory_format=torch.channels_last) == channels_last
        )
        histories[channels_last] = model.fit(x, y, epochs=2, shuffle=False, verbose=0).history
    assert seen_layouts[-1] is True
    np.testing.assert_allclose(histories[True]["loss"], histories[False]["loss"], rtol=1e-5)


def test_channels_last_must_be_a_bool():
    with pytest.raises(TypeError, match="`channels_last` must be True or False"):
        kfit.Model(_mlp()).compile(loss="mse", channels_last="yes")


def test_metrics_of_half_precision_outputs_are_accumulated_in_float32():
    x, y = _data(256)
    model = kfit.Model(_mlp())
    model.compile(loss="mse", metrics=["mae"], precision="bf16-mixed", device="cpu")
    logs = model.evaluate(x, y, batch_size=256, verbose=0, return_dict=True)
    predictions = model.predict(x, batch_size=256, verbose=0)  # bf16 outputs, as float32
    expected = np.abs(predictions.astype(np.float64) - y).mean()
    assert logs["mae"] == pytest.approx(expected, rel=1e-6)  # bf16 sums would be ~1e-2 off
