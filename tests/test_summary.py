"""`kfit.summary.summary`: Keras's layer table for any module."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import kfit
from kfit.summary import summary


def rows(text: str) -> dict[str, tuple[str, str]]:
    """`{'name (Type)': (output shape, param #)}` from the table's one-line rows."""
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"="}]
    found = {}
    for line in lines[rules[0] + 1 : rules[-1]]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 3:
            found[cells[0]] = (cells[1], cells[2])
    return found


def totals(text: str) -> dict[str, str]:
    return {
        line.split(":")[0].strip(): line.split(":")[1].strip()
        for line in text.splitlines()
        if "params:" in line
    }


def test_sequential_rows_shapes_and_totals_match_keras():
    model = kfit.Sequential(nn.Linear(100, 64), nn.ReLU(), nn.Linear(64, 10))
    text = summary(model, input_size=(32, 100), print_fn=None)
    assert text.splitlines()[0] == 'Model: "Sequential"'
    assert text.splitlines()[2].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#"]
    assert rows(text) == {
        "module.0 (Linear)": ("(None, 64)", "6,464"),
        "module.1 (ReLU)": ("(None, 64)", "0"),
        "module.2 (Linear)": ("(None, 10)", "650"),
    }
    # Keras prints the same model as 7,114 (27.79 KB).
    assert totals(text) == {
        "Total params": "7,114 (27.79 KB)",
        "Trainable params": "7,114 (27.79 KB)",
        "Non-trainable params": "0 (0.00 B)",
    }


def test_cnn_output_shapes():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),
    )
    found = rows(summary(model, input_data=torch.randn(2, 3, 8, 8), print_fn=None))
    assert {name: shape for name, (shape, _) in found.items()} == {
        "0 (Conv2d)": "(None, 8, 8, 8)",
        "1 (BatchNorm2d)": "(None, 8, 8, 8)",
        "2 (ReLU)": "(None, 8, 8, 8)",
        "3 (MaxPool2d)": "(None, 8, 4, 4)",
        "4 (Flatten)": "(None, 128)",
        "5 (Linear)": "(None, 10)",
    }


def test_counts_equal_parameter_numel_trainable_and_frozen():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(5))
    summary(model, input_size=(1, 3, 6, 6), print_fn=None)  # builds the lazy layer
    model[0].requires_grad_(False)
    text = summary(model, print_fn=None)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    found = totals(text)
    assert found["Total params"].split()[0] == f"{trainable + frozen:,}"
    assert found["Trainable params"].split()[0] == f"{trainable:,}"
    assert found["Non-trainable params"].split()[0] == f"{frozen:,}" == "112"
    assert found["Non-trainable params"] == "112 (448.00 B)"
    counts = [int(count.replace(",", "")) for _, count in rows(text).values()]
    assert sum(counts) == trainable + frozen


def test_shared_parameters_are_counted_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(4, 4, bias=False)
            self.decoder = nn.Linear(4, 4, bias=False)
            self.decoder.weight = self.encoder.weight

        def forward(self, x):
            return self.decoder(self.encoder(x))

    text = summary(Tied(), input_size=(2, 4), print_fn=None)
    assert totals(text)["Total params"] == "16 (64.00 B)"
    assert rows(text)["encoder (Linear)"][1] == "16"
    assert rows(text)["decoder (Linear)"][1] == "0"


def test_without_input_shapes_are_unknown_and_counts_given():
    text = summary(nn.Sequential(nn.Linear(3, 2)), print_fn=None)
    assert rows(text) == {"0 (Linear)": ("unknown", "8")}
    assert totals(text)["Total params"] == "8 (32.00 B)"


def test_unbuilt_lazy_layer_without_input():
    assert rows(summary(nn.Sequential(nn.LazyLinear(2)), print_fn=None)) == {
        "0 (LazyLinear)": ("unknown", "0 (unbuilt)")
    }


def test_tuple_and_dict_outputs_show_every_shape():
    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 5, batch_first=True)

        def forward(self, x):
            out, (h, c) = self.lstm(x)
            return {"out": out, "h": h}

    text = summary(Heads(), input_size=(3, 7, 4), print_fn=None, line_length=120)
    assert rows(text)["lstm (LSTM)"][0] == "((None, 7, 5), ((1, 3, 5), (1, 3, 5)))"


def test_input_data_dict_is_passed_by_keyword():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 3)
            self.b = nn.Linear(4, 3)

        def forward(self, left, right):
            return self.a(left) + self.b(right)

    data = {"right": torch.zeros(5, 4), "left": torch.zeros(5, 2)}
    found = rows(summary(TwoInputs(), input_data=data, print_fn=None))
    assert found["a (Linear)"][0] == found["b (Linear)"][0] == "(None, 3)"


def test_prints_the_returned_text_once():
    printed = []
    text = summary(nn.Linear(2, 2), input_size=(1, 2), print_fn=printed.append)
    assert printed == [text]
    assert rows(text) == {"Linear": ("(None, 2)", "6")}


def test_runs_in_eval_mode_and_restores_each_modules_mode():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append((self.training, torch.is_grad_enabled()))
            return x

    model = nn.Sequential(Probe(), nn.BatchNorm1d(2))
    model.train()
    model[1].eval()  # a frozen BatchNorm stays in eval
    summary(model, input_size=(3, 2), print_fn=None)
    assert seen == [(False, False)]
    assert model.training
    assert model[0].training
    assert not model[1].training


def test_forward_error_removes_hooks_and_restores_training_mode():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)

        def forward(self, x):
            self.linear(x)
            raise RuntimeError("boom")

    model = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        summary(model, input_size=(1, 2), print_fn=None)
    assert model.training
    assert model.linear.training
    assert all(not module._forward_hooks for module in model.modules())


def test_rejects_both_inputs():
    with pytest.raises(ValueError, match="`input_size` or `input_data`"):
        summary(nn.Linear(2, 2), input_size=(1, 2), input_data=torch.zeros(1, 2))


def test_rejects_too_small_line_length():
    with pytest.raises(ValueError, match="`line_length`.*got 5"):
        summary(nn.Linear(2, 2), line_length=5)


def test_long_cells_wrap_within_their_column():
    text = summary(nn.LSTM(4, 5, batch_first=True), input_size=(3, 7, 4), print_fn=None)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 88
    first = next(i for i, line in enumerate(lines) if line.startswith(" LSTM"))
    # Columns end at 45% and 80% of the line, as in Keras: the shape column is [39, 70).
    shape = " ".join(line[39:70].strip() for line in lines[first : first + 2])
    assert shape == "((None, 7, 5), ((1, 3, 5), (1, 3, 5)))"
    assert lines[first].endswith(" 220")


def test_long_layer_names_are_never_cut_mid_word():
    embeddings = nn.Module()
    embeddings.position_embeddings = nn.Embedding(4, 2)
    embeddings.a_very_long_layer_name_that_cannot_fit_in_its_column_at_all = nn.Linear(2, 2)
    model = nn.Module()
    model.embeddings = embeddings

    text = summary(model, print_fn=None)

    lines = [line.strip() for line in text.splitlines()]
    assert any(line.startswith("embeddings.position_embeddings ") for line in lines)
    assert "(Embedding)" in lines
    elided = [line for line in text.splitlines() if "…" in line]
    assert len(elided) == 1
    name = elided[0].split()[0]
    assert name.startswith("embeddings.a_very_l")
    assert name.endswith("at_all")
    assert len(name) == int(0.45 * 88) - 1
