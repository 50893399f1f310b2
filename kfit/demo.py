"""`python -m kfit.demo`: the classic Keras example, trained with kfit.

A 10-class classifier on 1,000 random 100-feature samples, compiled and fitted exactly as the
Keras guide does it:

    model.compile(optimizer='rmsprop', loss='categorical_crossentropy', metrics=['accuracy'])
    model.fit(data, labels, epochs=10, batch_size=32, validation_split=0.2)

The labels come from a fixed random linear rule, so there is something to learn.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

import kfit


def make_data(
    num_samples: int = 1000, num_features: int = 100, num_classes: int = 10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs and one-hot labels given by a hidden linear rule."""
    rng = np.random.default_rng(seed)
    data = rng.random((num_samples, num_features), dtype=np.float32)
    rule = rng.normal(size=(num_features, num_classes)).astype(np.float32)
    classes = (data @ rule).argmax(axis=1)
    labels = np.eye(num_classes, dtype=np.float32)[classes]
    return data, labels


def main(argv: list[str] | None = None) -> kfit.History:
    """Trains the classic example and prints the Keras log."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--verbose", default="auto")
    args = parser.parse_args(argv)
    verbose = args.verbose if args.verbose == "auto" else int(args.verbose)

    torch.manual_seed(0)
    data, labels = make_data()
    model = kfit.Sequential(
        nn.Linear(100, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
        nn.Softmax(dim=-1),
    )
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(
        data, labels, epochs=args.epochs, batch_size=32, validation_split=0.2, verbose=verbose
    )
    results = model.evaluate(data[-200:], labels[-200:], verbose=0)
    if not isinstance(results, list):  # with one metric, `evaluate` gives [loss, accuracy]
        raise TypeError(f"`evaluate` gave {results!r}; expected [loss, accuracy].")
    loss, accuracy = results
    print(f"\nValidation after training: loss {loss:.4f}, accuracy {accuracy:.4f}")
    return history


if __name__ == "__main__":
    main()
