"""HuggingFace transformers models, wrapped unchanged (tiny configs built here; no downloads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import kfit

transformers = pytest.importorskip("transformers")

VOCAB, LENGTH, N, CLASSES = 100, 8, 32, 3


def _bert(seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        vocab_size=VOCAB,
        max_position_embeddings=LENGTH,
        num_labels=CLASSES,
    )
    return transformers.BertForSequenceClassification(config)


def _data():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (N, LENGTH), generator=generator)
    return ids, torch.ones_like(ids), ids[:, 0] % CLASSES


def _collated_batches():
    ids, mask, labels = _data()
    rows = [{"input_ids": ids[i], "attention_mask": mask[i], "labels": labels[i]} for i in range(N)]
    return DataLoader(rows, batch_size=8)


def test_bert_trains_with_a_compiled_loss_and_metrics_on_its_logits():
    ids, mask, labels = _data()
    model = kfit.Model(_bert())
    model.compile(
        "adam",
        kfit.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    x = {"input_ids": ids, "attention_mask": mask}
    history = model.fit(x, labels.numpy().astype("uint8"), epochs=2, batch_size=8, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    logits = model.predict(x, verbose=0)["logits"]
    assert logits.shape == (N, CLASSES)


def test_bert_trains_on_its_own_loss_from_collated_dict_batches():
    model = kfit.Model(_bert())
    model.compile("adam", loss=None, metrics=["accuracy"])
    batches = _collated_batches()
    history = model.fit(batches, epochs=3, verbose=0, validation_data=batches).history
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history["loss"][-1] < history["loss"][0]
    model.eval()
    ids, mask, labels = _data()
    with torch.no_grad():
        reference = model.module(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert model.evaluate(batches, verbose=0)[0] == pytest.approx(float(reference), rel=1e-4)


def test_bert_weights_round_trip_through_plain_pytorch(tmp_path):
    model = kfit.Model(_bert())
    model.compile("adam", loss=None)
    model.fit(_collated_batches(), verbose=0)
    model.save_weights(tmp_path / "bert.pt")
    bare = _bert(seed=1)
    bare.load_state_dict(torch.load(tmp_path / "bert.pt"))
    torch.save(bare.state_dict(), tmp_path / "raw.pt")
    again = kfit.Model(_bert(seed=2))
    again.load_weights(tmp_path / "raw.pt")
    ids, mask, _ = _data()
    x = {"input_ids": ids, "attention_mask": mask}
    np.testing.assert_allclose(
        again.predict(x, verbose=0)["logits"], model.predict(x, verbose=0)["logits"], rtol=1e-5
    )
