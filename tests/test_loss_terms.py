"""`add_loss`: extra loss terms, optimised with the compiled loss and logged under their names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import kfit

N, FEATURES = 40, 5


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, FEATURES)).astype("float32")
    y = (x @ rng.normal(size=(FEATURES, 1))).astype("float32")
    return x, y


def _linear_model(seed: int = 0) -> kfit.Model:
    torch.manual_seed(seed)
    return kfit.Model(nn.Linear(FEATURES, 1))


def test_penalty_function_is_added_to_the_loss_and_logged_as_computed_by_hand():
    x, y = _data()
    model = _linear_model()
    initial = {k: v.clone() for k, v in model.module.state_dict().items()}
    model.add_loss(lambda: 0.01 * model.module.weight.pow(2).sum(), name="l2")
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    history = model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)

    # The same training by hand: per step, loss = mse + l2; epoch values are means of the
    # per-step values weighted by batch size.
    reference = nn.Linear(FEATURES, 1)
    reference.load_state_dict(initial)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for epoch in range(2):
        totals = {"loss": 0.0, "l2": 0.0}
        for start in range(0, N, 16):
            xb, yb = xt[start : start + 16], yt[start : start + 16]
            penalty = 0.01 * reference.weight.pow(2).sum()
            loss = ((reference(xb) - yb) ** 2).mean() + penalty
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            totals["loss"] += loss.item() * len(xb)
            totals["l2"] += penalty.item() * len(xb)
        for key, total in totals.items():
            assert history.history[key][epoch] == pytest.approx(total / N, rel=1e-5), key
    assert torch.allclose(model.module.weight, reference.weight, atol=1e-6)


def test_term_added_in_forward_counts_for_that_step_in_training_and_validation():
    class WithAuxiliary(kfit.Model):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(FEATURES, 1)

        def forward(self, x):
            out = self.layer(x)
            self.add_loss(0.1 * out.abs().mean(), name="aux")
            self.add_loss(0.2 * out.abs().mean(), name="aux")  # same name: summed
            return out

    x, y = _data()
    torch.manual_seed(0)
    model = WithAuxiliary()
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    history = model.fit(x, y, epochs=1, batch_size=8, validation_split=0.25, verbose=0)
    assert list(history.history) == ["loss", "aux", "val_loss", "val_aux"]

    logs = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    with torch.no_grad():
        out = model.layer(torch.from_numpy(x))
    per_batch = [0.3 * out[i : i + 8].abs().mean().item() for i in range(0, N, 8)]
    assert logs["aux"] == pytest.approx(np.mean(per_batch), rel=1e-5)
    mse = ((out - torch.from_numpy(y)) ** 2).mean().item()
    assert logs["loss"] == pytest.approx(mse + logs["aux"], rel=1e-5)


def test_term_added_only_in_training_is_missing_from_validation_logs():
    class TrainOnlyPenalty(kfit.Model):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(FEATURES, 1)

        def forward(self, x):
            out = self.layer(x)
            if self.training:
                self.add_loss(out.pow(2).mean(), name="activity")
            return out

    x, y = _data()
    model = TrainOnlyPenalty()
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    history = model.fit(x, y, epochs=1, validation_split=0.25, verbose=0)
    assert list(history.history) == ["loss", "activity", "val_loss"]


def test_add_loss_alone_trains_without_a_compiled_loss_or_targets():
    x, _ = _data()
    model = _linear_model()
    model.add_loss(lambda: model.module.weight.pow(2).sum() + model.module.bias.pow(2).sum())
    model.compile(optimizer=kfit.optimizers.SGD(0.2), device="cpu")
    history = model.fit(x, epochs=3, verbose=0)
    assert list(history.history) == ["loss", "added_loss"]
    assert history.history["loss"] == history.history["added_loss"]
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_no_loss_at_all_is_a_clear_error_before_training():
    x, y = _data()
    model = _linear_model()
    model.compile(optimizer="sgd", device="cpu")
    before = model.module.weight.detach().clone()
    with pytest.raises(ValueError, match="There is no loss to minimise"):
        model.fit(x, y, verbose=0)
    assert torch.equal(model.module.weight, before)


def test_default_names_and_name_clashes():
    model = _linear_model()

    def weight_penalty():
        return model.module.weight.pow(2).sum()

    model.add_loss(weight_penalty)
    assert list(model._loss_terms.functions) == ["weight_penalty"]
    with pytest.raises(ValueError, match="'weight_penalty' already exists"):
        model.add_loss(weight_penalty)
    with pytest.raises(ValueError, match="'loss' already exists"):
        model.add_loss(weight_penalty, name="loss")
    with pytest.raises(TypeError, match="got int"):
        model.add_loss(3)
    with pytest.raises(ValueError, match="non-empty string"):
        model.add_loss(weight_penalty, name="")


def test_term_named_like_a_metric_fails_before_training():
    class Clash(kfit.Model):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(FEATURES, 1)

        def forward(self, x):
            out = self.layer(x)
            self.add_loss(out.mean(), name="mae")
            return out

    x, y = _data()
    model = Clash()
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"], device="cpu")
    before = model.layer.weight.detach().clone()
    with pytest.raises(ValueError, match=r"terms \['mae'\] have the names of metrics"):
        model.fit(x, y, verbose=0)
    assert torch.equal(model.layer.weight, before)


def test_function_returning_a_non_tensor_fails_before_training():
    x, y = _data()
    model = _linear_model()
    model.add_loss(lambda: 0.5, name="constant")
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    with pytest.raises(TypeError, match="'constant' must return a tensor"):
        model.fit(x, y, verbose=0)


@pytest.mark.keras_compat
@pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")
def test_l2_penalty_term_gives_keras_kernel_regularizer_losses(keras):
    x, y = _data()
    keras_model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(0.05)),
        ]
    )
    model = kfit.Model(nn.Linear(FEATURES, 1))
    kernel, bias = keras_model.get_weights()
    with torch.no_grad():
        model.module.weight.copy_(torch.from_numpy(kernel.T))
        model.module.bias.copy_(torch.from_numpy(bias))
    model.add_loss(lambda: 0.05 * model.module.weight.pow(2).sum(), name="l2")
    keras_model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    model.compile(optimizer=kfit.optimizers.SGD(0.05), loss="mse", device="cpu")
    settings = {"epochs": 3, "batch_size": 8, "shuffle": False, "verbose": 0}
    settings["validation_split"] = 0.25
    expected = keras_model.fit(x, y, **settings).history
    got = model.fit(x, y, **settings).history
    for key in ("loss", "val_loss"):  # Keras counts regularisation in both
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, err_msg=key)
