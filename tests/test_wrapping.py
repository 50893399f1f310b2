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
