"""Wrapping models as people already have them: dict, ModelOutput-like and namedtuple outputs,
the model's own loss, dict batches, targetless outputs."""

from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

import kfit

N, FEATURES, CLASSES = 48, 5, 3
Pair = namedtuple("Pair", ["logits", "pooled"])


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, FEATURES)).astype("float32")
    y = (x @ rng.normal(size=(FEATURES, CLASSES))).argmax(1)
    return x, y


class Structured(nn.Module):
    """Returns its logits inside a structure, beside a non-trained extra entry."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.linear = nn.Linear(FEATURES, CLASSES)

    def forward(self, x, labels=None):
        logits = self.linear(x)
        hidden = logits.detach() * 2
        if self.kind == "dict_only":
            return {"scores": logits}
        if self.kind == "dict":
            out = {"hidden": hidden, "logits": logits}
        elif self.kind == "ordered":
            out = OrderedDict(hidden=hidden, logits=logits)
        else:
            return Pair(logits, hidden.sum(-1))
        if labels is not None:
            out = {"loss": nn.functional.cross_entropy(logits, labels), **out}
        return out


@pytest.mark.parametrize("kind", ["dict_only", "dict", "ordered", "namedtuple"])
def test_structured_output_trains_with_one_loss_and_plain_y(kind):
    x, y = _data()
    model = kfit.Model(Structured(kind))
    model.compile(
        "adam", kfit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, validation_split=0.25)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.history["loss"][1] < history.history["loss"][0]


def test_chosen_output_gets_the_same_loss_as_the_bare_tensor():
    x, y = _data()
    structured = Structured("dict")
    plain = nn.Sequential()
    plain.add_module("linear", structured.linear)
    values = []
    for module in (structured, plain):
        model = kfit.Model(module)
        model.compile("sgd", kfit.losses.SparseCategoricalCrossentropy(from_logits=True))
        values.append(model.evaluate(x, y, verbose=0))
    assert values[0] == pytest.approx(values[1])


def test_predict_returns_every_entry():
    x, _ = _data()
    model = kfit.Model(Structured("dict"))
    model.compile("adam", "sparse_categorical_crossentropy")
    out = model.predict(x, verbose=0)
    assert {k: v.shape for k, v in out.items()} == {"hidden": (N, 3), "logits": (N, 3)}
    pair = kfit.Model(Structured("namedtuple")).predict(x, verbose=0)
    assert isinstance(pair, Pair)
    assert pair.pooled.shape == (N,)


def test_ambiguous_dict_output_error_lists_the_entries():
    class TwoScores(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(FEATURES, CLASSES)

        def forward(self, x):
            return {"start": self.linear(x), "end": self.linear(x)}

    x, y = _data()
    model = kfit.Model(TwoScores())
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"entries \('start', 'end'\).*loss=\{'start'"):
        model.fit(x, y, verbose=0)


def test_loss_and_metrics_dicts_keyed_by_output_name_take_a_plain_y():
    x, y = _data()
    model = kfit.Model(Structured("dict"))
    loss = kfit.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("adam", {"logits": loss}, metrics={"logits": ["accuracy"]})
    logs = model.fit(x, y, epochs=1, verbose=0).history
    assert set(logs) == {"loss", "logits_accuracy"}


def test_list_metrics_follow_the_output_a_loss_dict_names():
    x, y = _data()
    model = kfit.Model(Structured("dict"))
    loss = kfit.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("adam", {"logits": loss}, metrics=["accuracy"])
    loss_value, accuracy = model.evaluate(x, y, verbose=0)
    predicted = model.predict(x, verbose=0)["logits"].argmax(1)
    assert accuracy == pytest.approx(float((predicted == y).mean()))


def _dict_batches(label_key: str = "labels"):
    x, y = _data()
    samples = [{"x": torch.tensor(x[i]), label_key: torch.tensor(y[i])} for i in range(N)]
    return DataLoader(samples, batch_size=16)


def test_model_own_loss_trains_and_logs_loss_and_val_loss_with_metrics():
    model = kfit.Model(Structured("dict"))
    model.compile("adam", loss=None, metrics=["accuracy"])
    batches = _dict_batches()
    history = model.fit(batches, epochs=2, verbose=0, validation_data=batches).history
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history["loss"][1] < history["loss"][0]
    _, y = _data()
    expected = nn.functional.cross_entropy(
        torch.tensor(model.predict(_data()[0], verbose=0)["logits"]), torch.tensor(y)
    )
    assert model.evaluate(batches, verbose=0)[0] == pytest.approx(float(expected), rel=1e-5)


def test_dict_batch_label_key_is_the_target_and_dropped_when_forward_lacks_it():
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(FEATURES, CLASSES)

        def forward(self, x):
            return self.linear(x)

    model = kfit.Model(Plain())
    model.compile(
        "adam", kfit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["acc"]
    )
    history = model.fit(_dict_batches("label"), epochs=1, verbose=0).history
    assert set(history) == {"loss", "acc"}


def test_in_memory_dict_with_labels_trains_a_compiled_loss_and_splits_for_validation():
    x, y = _data()
    inputs = {"features": x, "labels": y}

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(FEATURES, CLASSES)

        def forward(self, features):
            return self.linear(features)

    model = kfit.Model(Classifier())
    model.compile(
        "sgd", kfit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    history = model.fit(inputs, validation_split=0.25, epochs=2, batch_size=8, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    held_out = {"features": x[-len(x) // 4 :], "labels": y[-len(y) // 4 :]}
    expected = model.evaluate(x[-len(x) // 4 :], y[-len(y) // 4 :], verbose=0)
    assert model.evaluate(held_out, verbose=0) == pytest.approx(expected)
    assert history.history["val_loss"][-1] == pytest.approx(expected[0], rel=1e-6)


def test_dict_batch_with_both_label_keys_fails():
    x, y = _data()
    batch = {"x": torch.tensor(x), "label": torch.tensor(y), "labels": torch.tensor(y)}
    model = kfit.Model(Structured("dict"))
    model.compile("adam", loss=None)
    with pytest.raises(ValueError, match="both 'labels' and 'label'"):
        model.fit(iter([batch]), verbose=0)


def test_no_compiled_loss_and_no_own_loss_names_the_labels_key():
    model = kfit.Model(Structured("dict"))
    model.compile("adam", loss=None)
    with pytest.raises(ValueError, match="no `loss` entry"):
        model.fit(*_data(), verbose=0)


def test_output_without_a_loss_takes_none_as_target():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(FEATURES, CLASSES)

        def forward(self, x):
            logits = self.linear(x)
            return logits, logits.sum(-1)

    x, y = _data()
    model = kfit.Model(Two())
    model.compile("adam", [nn.CrossEntropyLoss(), None])
    history = model.fit(x, [y, None], epochs=1, verbose=0, validation_split=0.25).history
    assert set(history) == {"loss", "val_loss"}


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "int64"])
@pytest.mark.parametrize(
    "loss",
    [
        "sparse_categorical_crossentropy",
        kfit.losses.SparseCategoricalCrossentropy(from_logits=True),
        nn.CrossEntropyLoss(),
    ],
    ids=["id", "kfit_logits", "torch"],
)
def test_every_integer_label_dtype_trains_sparse_losses_and_metrics(dtype, loss):
    x, y = _data()
    layers = [nn.Linear(FEATURES, CLASSES)]
    if loss == "sparse_categorical_crossentropy":
        layers.append(nn.Softmax(-1))
    model = kfit.Sequential(*layers)
    metrics = ["accuracy", kfit.metrics.SparseTopKCategoricalAccuracy(k=2)]
    model.compile("sgd", loss, metrics=metrics)
    logs = model.fit(x, y.astype(dtype), verbose=0).history
    assert np.isfinite(logs["loss"][0])
    assert set(logs) == {"loss", "accuracy", "sparse_top_k_categorical_accuracy"}


def _bad_labels():
    x, y = _data()
    y[37] = CLASSES + 4
    return x, y


@pytest.mark.parametrize(
    "loss", ["sparse_categorical_crossentropy", nn.CrossEntropyLoss()], ids=["kfit", "torch"]
)
def test_out_of_range_label_fails_before_any_weight_moves(loss):
    x, y = _bad_labels()
    model = kfit.Sequential(nn.Linear(FEATURES, CLASSES), nn.Softmax(-1))
    model.compile("sgd", loss)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"class id 7 at position 37.* 3 classes"):
        model.fit(x, y, batch_size=8, verbose=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_negative_label_in_a_stream_fails_with_its_position_before_the_copy():
    x, y = _data()
    y[29] = -2
    stream = DataLoader(list(zip(torch.tensor(x), torch.tensor(y), strict=True)), batch_size=8)
    model = kfit.Sequential(nn.Linear(FEATURES, CLASSES))
    model.compile("sgd", kfit.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match=r"class id -2 at position 29"):
        model.fit(stream, verbose=0)


def test_evaluate_checks_class_ids_up_front_and_in_a_stream():
    x, y = _data()
    model = kfit.Sequential(nn.Linear(FEATURES, CLASSES))
    model.compile("sgd", kfit.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=8, verbose=0)
    bad_x, bad_y = _bad_labels()
    with pytest.raises(ValueError, match=r"class id 7 at position 37"):
        model.evaluate(bad_x, bad_y, batch_size=8, verbose=0)
    stream = DataLoader(
        list(zip(torch.tensor(bad_x), torch.tensor(bad_y), strict=True)), batch_size=8
    )
    with pytest.raises(ValueError, match=r"class id 7 at position 37"):
        model.evaluate(stream, verbose=0)


def test_ignore_class_is_not_out_of_range():
    x, y = _data()
    y[5] = -1
    model = kfit.Sequential(nn.Linear(FEATURES, CLASSES))
    model.compile(
        "sgd", kfit.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    )
    assert np.isfinite(model.fit(x, y, verbose=0).history["loss"][0])


@pytest.mark.parametrize(
    "loss",
    [kfit.losses.BinaryCrossentropy(from_logits=True), nn.BCEWithLogitsLoss()],
    ids=["kfit", "torch"],
)
def test_accuracy_with_a_from_logits_binary_loss_thresholds_at_logit_zero(loss):
    x, _ = _data()
    y = (x[:, :1] > 0.3).astype("float32")
    model = kfit.Sequential(nn.Linear(FEATURES, 1))
    model.compile("sgd", loss, metrics=["accuracy", "binary_accuracy"])
    _, accuracy, binary_accuracy = model.evaluate(x, y, verbose=0)
    expected = float(((model.predict(x, verbose=0) > 0) == (y > 0.5)).mean())
    assert accuracy == pytest.approx(expected)
    assert binary_accuracy == pytest.approx(expected)


def test_integer_labels_under_categorical_crossentropy_suggest_the_sparse_loss():
    x, y = _data()
    model = kfit.Sequential(nn.Linear(FEATURES, CLASSES), nn.Softmax(-1))
    model.compile("sgd", "categorical_crossentropy")
    with pytest.raises(ValueError, match="use `sparse_categorical_crossentropy`"):
        model.fit(x, y, verbose=0)


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(FEATURES, 4), nn.ReLU(), nn.Linear(4, CLASSES))


@pytest.mark.parametrize("prefix", ["", "module."], ids=["plain", "ddp_prefixed"])
def test_load_weights_reads_a_plain_module_state_dict(tmp_path, prefix):
    source = _net()
    torch.save({prefix + k: v for k, v in source.state_dict().items()}, tmp_path / "raw.pt")
    model = kfit.Model(_net())
    model.load_weights(tmp_path / "raw.pt")
    for key, value in source.state_dict().items():
        assert torch.equal(model.module.state_dict()[key], value)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_save_weights_writes_a_file_the_bare_module_loads(tmp_path, suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    model = kfit.Model(_net())
    model.save_weights(tmp_path / f"w{suffix}")
    bare = _net()
    if suffix == ".pt":
        bare.load_state_dict(torch.load(tmp_path / "w.pt"))
    else:
        from safetensors.torch import load_file

        bare.load_state_dict(load_file(tmp_path / "w.safetensors"))
    for key, value in model.module.state_dict().items():
        assert torch.equal(bare.state_dict()[key], value)


def test_mismatch_error_is_short_and_suggests_skip_mismatch(tmp_path):
    big = nn.Sequential(*[nn.Linear(4, 4) for _ in range(40)])
    torch.save(big.state_dict(), tmp_path / "big.pt")
    model = kfit.Model(_net())
    with pytest.raises(ValueError, match="skip_mismatch=True") as error:
        model.load_weights(tmp_path / "big.pt")
    message = str(error.value)
    assert "76 unexpected keys" in message  # 0.* and 2.* exist in both
    assert "and 71 more" in message
    assert len(message) < 700


def test_skip_mismatch_loads_what_matches_and_warns_about_the_rest(tmp_path):
    source = nn.Sequential(nn.Linear(FEATURES, 4), nn.ReLU(), nn.Linear(4, CLASSES + 2))
    torch.save(source.state_dict(), tmp_path / "other_head.pt")
    model = kfit.Model(_net())
    head_before = model.module[2].weight.detach().clone()
    with pytest.warns(UserWarning, match=r"2 weights of other shapes or dtypes \['module.2.bias'"):
        model.load_weights(tmp_path / "other_head.pt", skip_mismatch=True)
    assert torch.equal(model.module[0].weight, source[0].weight)
    assert torch.equal(model.module[2].weight, head_before)


def _vision(name: str):
    """Imports torchvision or timm, or skips: their PyPI wheels need a CUDA torch build."""
    try:
        return __import__(name)
    except (ImportError, RuntimeError) as error:  # torchvision::nms missing on CPU torch
        pytest.skip(f"{name} does not import beside this torch build: {error}")


def test_torchvision_resnet_trains_and_saves_plain_weights(tmp_path):
    torchvision = _vision("torchvision")
    model = kfit.Model(torchvision.models.resnet18(weights=None, num_classes=CLASSES))
    model.compile("adam", kfit.losses.SparseCategoricalCrossentropy(from_logits=True))
    images = np.random.default_rng(0).normal(size=(8, 3, 32, 32)).astype("float32")
    model.fit(images, np.arange(8) % CLASSES, verbose=0)
    model.save_weights(tmp_path / "resnet.pt")
    bare = torchvision.models.resnet18(weights=None, num_classes=CLASSES)
    bare.load_state_dict(torch.load(tmp_path / "resnet.pt"))


def test_timm_model_trains():
    timm = _vision("timm")
    model = kfit.Model(timm.create_model("resnet18", pretrained=False, num_classes=CLASSES))
    model.compile("adam", kfit.losses.SparseCategoricalCrossentropy(from_logits=True))
    images = np.random.default_rng(0).normal(size=(8, 3, 32, 32)).astype("float32")
    assert np.isfinite(model.fit(images, np.arange(8) % CLASSES, verbose=0).history["loss"][0])
