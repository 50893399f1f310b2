"""`Model.lr_find`: the learning-rate range test, its suggestion, and the state it restores."""

from __future__ import annotations

import copy
import math
import random

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

import kfit
from kfit.training.lr_finder import LRFinderResult, smooth_losses

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _problem(n: int = 256, seed: int = 0):
    """A smooth regression a small MLP learns well: y = tanh(x . w) + a little noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    w = rng.normal(size=(8, 1)).astype(np.float32)
    return x, (np.tanh(x @ w) + 0.05 * rng.normal(size=(n, 1))).astype(np.float32)


def _mlp(optimizer, dropout: float = 0.0) -> kfit.Model:
    torch.manual_seed(0)
    model = kfit.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 1))
    model.compile(optimizer=optimizer, loss="mse", device="cpu")
    return model


def _state(model: kfit.Model):
    return copy.deepcopy(model.state_dict()), copy.deepcopy(model.optimizer.state_dict())


def _assert_same_tree(a, b, path="") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_same_tree(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_tree(x, y, f"{path}/{i}")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype, path
        assert torch.equal(a, b), path
    else:
        assert a == b, path


# --------------------------------------------------------------------------- restoring


def test_lr_find_leaves_weights_and_optimizer_state_bit_identical():
    x, y = _problem(n=128)
    model = _mlp(kfit.optimizers.Adam(learning_rate=1e-3), dropout=0.2)
    model.fit(x, y, epochs=1, verbose=0)  # Adam now has moments and a step count
    model.module[2].eval()  # one submodule in eval mode, the rest in train mode
    history, epochs = model.history, model.epochs_completed
    weights, optimizer_state = _state(model)

    result = model.lr_find(x, y, num_steps=30, plot=False, verbose=0)

    assert len(result.lrs) > 1  # it trained
    _assert_same_tree(model.state_dict(), weights)
    _assert_same_tree(model.optimizer.state_dict(), optimizer_state)
    assert model.optimizer.param_groups[0]["lr"] == 1e-3
    assert model.training
    assert model.module[0].training
    assert not model.module[2].training
    assert model.history is history
    assert model.epochs_completed == epochs


def test_lr_find_restores_the_random_generators():
    x, y = _problem(n=64)
    model = _mlp("sgd", dropout=0.5)
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    expected = (torch.rand(3), np.random.rand(), random.random())

    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    model.lr_find(x, y, num_steps=10, plot=False, verbose=0)  # shuffles and draws dropout masks

    assert torch.equal(torch.rand(3), expected[0])
    assert np.random.rand() == expected[1]
    assert random.random() == expected[2]


def test_training_after_lr_find_is_as_without_it():
    x, y = _problem(n=128)
    plain = _mlp("adam")
    torch.manual_seed(1)
    expected = plain.fit(x, y, epochs=2, verbose=0).history["loss"]

    model = _mlp("adam")
    torch.manual_seed(1)
    model.lr_find(x, y, num_steps=20, plot=False, verbose=0)

    assert model.fit(x, y, epochs=2, verbose=0).history["loss"] == expected


def test_lr_find_restores_the_state_when_a_step_raises():
    x, y = _problem(n=64)

    class Failing(kfit.Model):
        def __init__(self):
            super().__init__(nn.Linear(8, 1))
            self.steps = 0

        def train_step(self, batch):
            self.steps += 1
            if self.steps == 4:
                raise RuntimeError("boom")
            super().train_step(batch)

    torch.manual_seed(0)
    model = Failing()
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    weights, optimizer_state = _state(model)

    with pytest.raises(RuntimeError, match="boom"):
        model.lr_find(x, y, num_steps=10, plot=False, verbose=0)

    _assert_same_tree(model.state_dict(), weights)
    _assert_same_tree(model.optimizer.state_dict(), optimizer_state)


# --------------------------------------------------------------------------- the suggestion


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda lr: kfit.optimizers.SGD(learning_rate=lr),
        lambda lr: kfit.optimizers.Adam(learning_rate=lr),
    ],
    ids=["sgd", "adam"],
)
def test_suggestion_is_within_a_decade_of_the_best_rate_and_trains_well(make_optimizer):
    x, y = _problem()
    result = _mlp(make_optimizer(1e-3)).lr_find(x, y, plot=False, verbose=0)
    assert result.suggested_lr is not None

    def final_loss(lr: float) -> float:
        history = _mlp(make_optimizer(lr)).fit(x, y, epochs=4, batch_size=32, verbose=0)
        return history.history["loss"][-1]

    grid = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]
    losses = [final_loss(lr) for lr in grid]
    best = grid[int(np.nanargmin(losses))]
    assert abs(math.log10(result.suggested_lr / best)) <= 1.0

    initial = _mlp(make_optimizer(1e-3)).evaluate(x, y, verbose=0)
    assert final_loss(result.suggested_lr) < 0.25 * initial


# --------------------------------------------------------------------------- seeds


def _linear_regression(seed: int):
    """Issue 18's case: a linear regression of 1,213 samples of 8 features, trained by SGD."""
    rng = np.random.default_rng(123)
    x = rng.normal(size=(1213, 8)) * rng.uniform(0.5, 3.0, size=8)
    y = x @ rng.normal(size=(8, 1)) + 0.5 * rng.normal(size=(1213, 1)) + 2.0
    torch.manual_seed(seed)
    model = kfit.Sequential(nn.Linear(8, 1))
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    return model, x.astype(np.float32), y.astype(np.float32)


def _classifier(seed: int):
    """A small MLP classifying 1,000 samples into 3 classes, trained by Adam."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1000, 10)).astype(np.float32)
    y = (x[:, :3].sum(1) + 0.5 * x[:, 3] * x[:, 4] > 0).astype(np.int64) + (x[:, 5] > 1)
    torch.manual_seed(seed)
    model = kfit.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    loss = kfit.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="adam", loss=loss, device="cpu")
    return model, x, y


@pytest.mark.parametrize("make", [_linear_regression, _classifier], ids=["sgd", "adam"])
def test_runs_with_different_seeds_agree_within_a_factor_of_3(make):
    suggestions = []
    for seed in range(5):  # a different initialisation, shuffling and seed each run
        model, x, y = make(seed)
        suggestions.append(model.lr_find(x, y, seed=seed, plot=False, verbose=0).suggested_lr)

    assert None not in suggestions
    assert max(suggestions) / min(suggestions) < 3.0


def test_the_same_seed_gives_the_same_curve_and_other_seeds_do_not():
    model, x, y = _linear_regression(0)
    first = model.lr_find(x, y, plot=False, verbose=0)
    torch.manual_seed(99)  # the generators' state before the call does not matter
    again = model.lr_find(x, y, plot=False, verbose=0)
    other = model.lr_find(x, y, seed=1, plot=False, verbose=0)

    assert again.raw_losses == first.raw_losses
    assert again.suggested_lr == first.suggested_lr
    assert other.raw_losses != first.raw_losses


def test_seed_none_follows_the_global_generators():
    model, x, y = _linear_regression(0)
    torch.manual_seed(5)
    first = model.lr_find(x, y, seed=None, num_steps=10, plot=False, verbose=0)
    torch.manual_seed(5)
    again = model.lr_find(x, y, seed=None, num_steps=10, plot=False, verbose=0)
    torch.manual_seed(6)
    other = model.lr_find(x, y, seed=None, num_steps=10, plot=False, verbose=0)

    assert again.raw_losses == first.raw_losses
    assert other.raw_losses != first.raw_losses


def test_linear_regression_suggestion_trains_well():
    model, x, y = _linear_regression(0)
    suggested = model.lr_find(x, y, plot=False, verbose=0).suggested_lr
    initial = model.evaluate(x, y, verbose=0)

    model.compile(optimizer=kfit.optimizers.SGD(learning_rate=suggested), loss="mse")
    history = model.fit(x, y, epochs=5, verbose=0).history["loss"]

    assert history[-1] < 0.05 * initial
    assert all(math.isfinite(v) for v in history)


def test_a_model_that_cannot_learn_gets_no_suggestion_and_a_warning():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = rng.normal(size=(256, 1)).astype(np.float32)  # unrelated to x
    torch.manual_seed(0)
    layer = nn.Linear(8, 1)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)  # already the best constant: nothing to learn
    model = kfit.Sequential(layer)
    model.compile(optimizer="sgd", loss="mse", device="cpu")

    with pytest.warns(UserWarning, match="lr_find: no suggestion: the curve is too"):
        result = model.lr_find(x, y, plot=False, verbose=0)

    assert result.suggested_lr is None
    assert result.reason.startswith("the curve is too")


def test_verbose_prints_the_reason_when_there_is_no_suggestion(capsys):
    x, y = _problem(n=64)
    with pytest.warns(UserWarning, match="too few steps"):
        _mlp("sgd").lr_find(x, y, num_steps=3, plot=False, verbose=2)
    assert "no suggestion: too few steps" in capsys.readouterr().out


# --------------------------------------------------------------------------- the curve


def test_learning_rates_grow_exponentially_from_start_to_end():
    x, y = _problem(n=64)
    result = _mlp("sgd").lr_find(
        x, y, start_lr=1e-5, end_lr=1e-2, num_steps=16, diverge_threshold=None, plot=False,
        verbose=0,
    )  # fmt: skip

    assert len(result.lrs) == 16  # 2 batches of 32, cycled
    assert result.lrs[0] == pytest.approx(1e-5)
    assert result.lrs[-1] == pytest.approx(1e-2)
    np.testing.assert_allclose(np.diff(np.log(result.lrs)), math.log(1e3) / 15)
    assert result.diverged is False


def test_smoothing_zero_keeps_the_raw_losses():
    x, y = _problem(n=64)
    result = _mlp("sgd").lr_find(x, y, num_steps=12, smoothing=0.0, plot=False, verbose=0)
    assert result.losses == result.raw_losses


def test_smoothed_curve_does_not_lag_behind_the_raw_one():
    # A loss that falls from 1 to 0.01 around lr = 1e-2, with 30% multiplicative noise.
    rng = np.random.default_rng(0)
    log_lrs = np.linspace(-7, 1, 100)
    clean = np.exp(-np.log(100) / (1 + np.exp(-3 * (log_lrs + 2))))
    raw = list(clean * np.exp(0.3 * rng.normal(size=100)))

    smoothed = np.log(smooth_losses(raw, smoothing=0.8, window=6))
    one_way = np.log(_running_average(raw, 0.8))

    def half_way(curve):
        return log_lrs[np.argmax(curve <= np.log(0.1))]  # half the fall, in log scale

    assert abs(half_way(smoothed) - (-2.0)) <= 0.2  # within a fifth of a decade
    assert half_way(one_way) - (-2.0) > 0.3  # a one-way average lags to larger rates
    flat = slice(0, 40)  # before the fall: the noise alone
    assert np.std(smoothed[flat]) < 0.3 * np.std(np.log(raw)[flat])


def test_raw_losses_are_each_steps_own_loss():
    x, y = _problem(n=32)
    model = _mlp("sgd")
    expected = model.evaluate(x, y, batch_size=32, verbose=0)  # weights before any step
    result = model.lr_find(x, y, batch_size=32, num_steps=3, plot=False, verbose=0)

    assert result.raw_losses[0] == pytest.approx(expected, rel=1e-6)


def test_the_test_stops_when_the_loss_diverges():
    x, y = _problem()
    result = _mlp("sgd").lr_find(x, y, end_lr=100.0, plot=False, verbose=0)

    assert result.diverged is True
    assert len(result.lrs) < 100
    running = _running_average(result.raw_losses, 0.8)  # the running average that stops it
    last = running[-1]
    assert not math.isfinite(last) or last > 4.0 * min(running[:-1])
    assert all(v <= 4.0 * min(running[: i + 1]) for i, v in enumerate(running[:-1]))


def test_the_update_goes_through_train_step_with_clipping():
    x, y = _problem(n=64)
    seen = []

    class Recording(kfit.Model):
        def train_step(self, batch):
            seen.append(self.optimizer.param_groups[0]["lr"])
            super().train_step(batch)

    torch.manual_seed(0)
    model = Recording(nn.Linear(8, 1))
    model.compile(optimizer=kfit.optimizers.SGD(learning_rate=0.1, clipnorm=1e-3), loss="mse")
    result = model.lr_find(x, y, num_steps=8, end_lr=1.0, plot=False, verbose=0)

    assert seen == result.lrs
    # Clipped to 1e-3 per tensor, each step moves a weight by at most lr * 1e-3: no divergence.
    assert result.diverged is False


def test_parameter_groups_keep_their_ratio():
    x, y = _problem(n=64)
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 1))
    optimizer = torch.optim.SGD(
        [{"params": module[0].parameters(), "lr": 0.1}, {"params": module[2].parameters()}],
        lr=0.01,
    )
    seen = []

    class Recording(kfit.Model):
        def train_step(self, batch):
            seen.append([group["lr"] for group in self.optimizer.param_groups])
            super().train_step(batch)

    model = Recording(module)
    model.compile(optimizer=optimizer, loss="mse")
    model.lr_find(x, y, num_steps=5, plot=False, verbose=0)

    assert all(first == pytest.approx(10 * second) for first, second in seen)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.01]


def test_verbose_prints_the_suggestion(capsys):
    x, y = _problem(n=64)
    result = _mlp("sgd").lr_find(x, y, num_steps=30, plot=False, verbose=2)

    out = capsys.readouterr().out
    assert out.startswith("lr_find: ")
    assert f"suggested learning rate: {result.suggested_lr:.3g}." in out


# --------------------------------------------------------------------------- suggestion rules


def _result(losses, lrs=None, raw=None) -> LRFinderResult:
    lrs = lrs or [10.0 ** (-6 + i * 0.25) for i in range(len(losses))]
    return LRFinderResult(lrs, list(losses), list(raw or losses), diverged=False)


def _running_average(values, beta: float) -> list[float]:
    average, out = 0.0, []
    for step, value in enumerate(values):
        average = beta * average + (1 - beta) * value
        out.append(average / (1 - beta ** (step + 1)))
    return out


def test_suggestion_is_half_way_down_the_valley_in_log_scale():
    # Level at 1, a fall to 0.01 between points 20 and 28, then a rise (divergence).
    losses = [1.0] * 20 + [10.0 ** (-i / 4) for i in range(1, 9)] + [0.02, 0.1, 1.0]
    result = _result(losses)

    # Half the fall in log scale is the level 0.1, reached at point 23.
    assert result.suggested_lr == pytest.approx(result.lrs[23])
    assert result.reason is None


def test_suggestion_is_interpolated_between_steps():
    losses = [1.0] * 10 + [0.5, 0.2, 0.05, 0.01, 0.5]
    result = _result(losses)
    # log(0.1) lies 0.57 of the way from log(0.2) (point 11) to log(0.05) (point 12).
    share = (math.log(0.2) - math.log(0.1)) / (math.log(0.2) - math.log(0.05))
    expected = 10 ** (math.log10(result.lrs[11]) + share * 0.25)
    assert result.suggested_lr == pytest.approx(expected)


def test_suggestion_is_never_before_the_loss_starts_to_fall():
    # A long, slow drift down (a longest-descent rule would start its valley here), then the
    # real fall at points 30 to 34.
    losses = [1.0 - 0.001 * i for i in range(30)] + [0.5, 0.2, 0.1, 0.05, 0.04, 0.3, 3.0]
    result = _result(losses)
    assert result.suggested_lr >= result.lrs[29]


def test_no_suggestion_when_the_loss_never_falls():
    result = _result([1.0 + 0.01 * i for i in range(30)])
    assert result.suggested_lr is None
    assert "too flat" in result.reason


def test_no_suggestion_when_the_curve_is_pure_noise():
    rng = np.random.default_rng(0)
    raw = list(np.exp(0.3 * rng.normal(size=100)))
    result = _result(smooth_losses(raw, 0.8, 6), raw=raw)
    assert result.suggested_lr is None
    assert "too noisy" in result.reason


def test_no_suggestion_from_too_few_points():
    result = _result([1.0, 0.9, 0.5, 0.2])
    assert result.suggested_lr is None
    assert "too few steps" in result.reason
    assert _result([1.0, 0.9, 0.5, 0.2, 0.1, 0.5]).suggestion() is not None
    assert _result([1.0, 0.9, 0.5, 0.2, 0.1, 0.5]).suggestion(skip_begin=2) is None


def test_non_finite_points_are_left_out():
    losses = [1.0] * 12 + [0.9, 0.8, math.nan, 0.3, 0.25, 0.2, 1.0]
    result = _result(losses)

    # Half-way (in log scale) from 1 to 0.2 is 0.45: between point 13 (0.8) and 15 (0.3).
    assert result.lrs[13] < result.suggested_lr < result.lrs[15]


# --------------------------------------------------------------------------- plot


def test_plot_draws_the_curve_and_marks_the_suggestion():
    x, y = _problem(n=64)
    before = plt.get_fignums()
    result = _mlp("sgd").lr_find(x, y, num_steps=40, verbose=0)  # plot=True by default

    (new,) = set(plt.get_fignums()) - set(before)
    ax = plt.figure(new).axes[0]
    curve, marker = ax.lines
    assert list(curve.get_xdata()) == result.lrs
    assert list(marker.get_xdata()) == [result.suggested_lr]
    assert ax.get_xscale() == "log"
    plt.close("all")


def test_plot_on_given_axes():
    figure, ax = plt.subplots()
    result = _result([1.0] * 12 + [0.9, 0.5, 0.4, 0.39, 1.0])
    assert result.plot(ax=ax, suggest=False) is ax
    assert len(ax.lines) == 1
    plt.close(figure)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start_lr": 0}, r"`start_lr` must be a positive number; got 0"),
        ({"end_lr": -1.0}, r"`end_lr` must be a positive number; got -1.0"),
        ({"start_lr": 1.0, "end_lr": 0.1}, r"`end_lr` must be greater than `start_lr`"),
        ({"num_steps": 1}, r"`num_steps` must be an integer >= 2; got 1"),
        ({"num_steps": 10.0}, r"`num_steps` must be an integer >= 2; got 10.0"),
        ({"batch_size": 0}, r"`batch_size` must be an integer >= 1; got 0"),
        ({"smoothing": 1.0}, r"`smoothing` must be in \[0, 1\); got 1.0"),
        ({"diverge_threshold": 1.0}, r"`diverge_threshold` must be > 1 \(or None\); got 1.0"),
        ({"verbose": 3}, r"`verbose` must be 'auto', 0, 1 or 2; got 3"),
        ({"seed": -1}, r"`seed` must be a non-negative integer or None; got -1"),
        ({"seed": 1.5}, r"`seed` must be a non-negative integer or None; got 1.5"),
    ],
)
def test_bad_arguments_raise_before_any_change(kwargs, message):
    x, y = _problem(n=32)
    model = _mlp("sgd")
    weights, optimizer_state = _state(model)

    with pytest.raises(ValueError, match=message):
        model.lr_find(x, y, plot=False, **kwargs)

    _assert_same_tree(model.state_dict(), weights)
    _assert_same_tree(model.optimizer.state_dict(), optimizer_state)


def test_lr_find_needs_compile():
    model = kfit.Sequential(nn.Linear(8, 1))
    x, y = _problem(n=8)
    with pytest.raises(ValueError, match=r"You must call compile\(\) before lr_find\(\)"):
        model.lr_find(x, y)


def test_mismatched_shapes_fail_before_any_step():
    x, y = _problem(n=32)
    model = _mlp("sgd")
    weights, _ = _state(model)

    with pytest.raises(ValueError, match="shape"):
        model.lr_find(x, np.zeros((32, 3), np.float32), plot=False, verbose=0)

    _assert_same_tree(model.state_dict(), weights)


def test_lr_find_takes_a_data_loader():
    x, y = _problem(n=64)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=16
    )
    model = _mlp("sgd")
    weights, _ = _state(model)
    result = model.lr_find(loader, num_steps=10, end_lr=1e-2, plot=False, verbose=0)

    assert len(result.lrs) == 10  # 4 batches, cycled
    _assert_same_tree(model.state_dict(), weights)


def test_lr_find_on_lazy_modules_builds_them_and_restores_the_rest():
    x, y = _problem(n=64)
    torch.manual_seed(0)
    model = kfit.Sequential(nn.LazyLinear(16), nn.ReLU(), nn.Linear(16, 1))
    model.compile(optimizer="adam", loss="mse", device="cpu")
    result = model.lr_find(x, y, num_steps=10, plot=False, verbose=0)
    weights, optimizer_state = _state(model)

    assert len(result.lrs) == 10
    assert optimizer_state["state"] == {}  # as fresh as before: no step counted
    model.lr_find(x, y, num_steps=10, plot=False, verbose=0)
    _assert_same_tree(model.state_dict(), weights)
    _assert_same_tree(model.optimizer.state_dict(), optimizer_state)


def test_a_scheduled_optimizer_sweeps_the_rates_and_keeps_its_schedule():
    """The schedule would overwrite the swept rate at each step (a flat, useless curve)."""
    x, y = _problem()
    plain = _mlp("adam").lr_find(x, y, verbose=0)
    schedule = kfit.schedules.ExponentialDecay(1e-3, decay_steps=10, decay_rate=0.5)
    model = _mlp(kfit.optimizers.Adam(learning_rate=schedule))
    scheduled = model.lr_find(x, y, verbose=0)
    assert scheduled.raw_losses == pytest.approx(plain.raw_losses)
    assert scheduled.suggested_lr == plain.suggested_lr
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # 8 updates: the schedule still runs
    assert model.optimizer.learning_rate == pytest.approx(schedule(8))
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(schedule(7))


def test_a_non_finite_first_loss_is_named_as_such():
    """NaN in the data: not "too few steps", which sends the user to num_steps."""
    x, y = _problem()
    x[3, 2] = np.nan
    with pytest.warns(UserWarning, match=r"first step .* is nan: check the data"):
        result = _mlp("sgd").lr_find(x, y, batch_size=len(x), verbose=0)
    assert result.suggested_lr is None
    assert "NaN or inf" in result.reason
