"""The script `tests/test_distributed.py` starts under torchrun: unchanged single-process kfit code.

Run as `python -m torch.distributed.run --nproc_per_node=2 tests/ddp_worker.py OUT_DIR`. Each
process writes what it saw to OUT_DIR (weights, History, evaluate/predict results, the samples
each training step used, and its own stdout) for the test to compare with one process.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import kfit

N_TRAIN, N_EVAL = 37, 23  # odd: the processes' parts differ, and nothing may be padded


def data() -> dict[str, np.ndarray]:
    """The same arrays in every process (and in the test), from a fixed seed."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_TRAIN + N_EVAL, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0], np.float32) > 0).astype(np.float32)[:, None]
    weights = rng.uniform(0.5, 2.0, size=N_EVAL).astype(np.float32)
    return {
        "x": x[:N_TRAIN],
        "y": y[:N_TRAIN],
        "x_eval": x[N_TRAIN:],
        "y_eval": y[N_TRAIN:],
        "w_eval": weights,
    }


def network(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1), nn.Sigmoid())


class IdRecorder(nn.Module):
    """Records the sample ids (column 0 of x) of every training batch; predicts from the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.seen: list[list[int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(x[:, 0].long().tolist())
        return self.linear(x[:, 1:])


class ReadBatchLogsOnRankZero(kfit.callbacks.Callback):
    """Reads the batch logs in one process only, as the progress bar does by the clock."""

    def on_train_batch_end(self, batch, logs=None):
        if kfit.distributed.rank() == 0:
            self.last = logs["loss"]

    def on_test_batch_end(self, batch, logs=None):
        if kfit.distributed.rank() == 0:
            self.last = logs["loss"]


class FailAtEpoch(kfit.callbacks.Callback):
    """Raises once an epoch has ended (and was backed up), in every process: a run that dies
    and is started again."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch + 1:
            raise RuntimeError("killed")


class StopOneProcess(kfit.callbacks.Callback):
    """Stops training in rank 1 only, after its third step."""

    def on_train_batch_end(self, batch, logs=None):
        if kfit.distributed.rank() == 1 and batch == 2:
            self.model.stop_training = True


def count_writes(results: dict[str, object]) -> None:
    """Counts, in `results["writes"]`, the files this process writes through kfit.saving."""
    write = kfit.saving.save_tensors
    results["writes"] = []

    def counted(state, filepath):
        results["writes"].append(Path(filepath).name)
        write(state, filepath)

    kfit.saving.save_tensors = counted


def main(out: Path) -> None:
    rank = int(os.environ["RANK"])
    stdout_file = open(out / f"stdout-{rank}.txt", "w")  # noqa: SIM115 - this process's stdout
    sys.stdout = stdout_file
    arrays = data()
    results: dict[str, object] = {}
    count_writes(results)

    # 1. fit with validation_split, callbacks and the log; a different initialisation in each
    #    process: DDP starts every process from rank 0's weights.
    model = kfit.Model(network(seed=100 + rank))
    if rank == 0:
        torch.save(model.state_dict(), out / "init.pt")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", "mae"])
    history = model.fit(
        arrays["x"],
        arrays["y"],
        batch_size=4,
        epochs=40,
        validation_split=0.3,
        verbose=2,
        callbacks=[
            kfit.callbacks.EarlyStopping(monitor="val_loss", patience=2, min_delta=0.02),
            kfit.callbacks.ReduceLROnPlateau(patience=1, min_delta=0.02, factor=0.5, verbose=1),
            kfit.callbacks.ModelCheckpoint(str(out / "ckpt-{epoch:02d}.pt")),
            kfit.callbacks.CSVLogger(str(out / "log.csv")),
            ReadBatchLogsOnRankZero(),
        ],
    )
    torch.save(model.state_dict(), out / f"weights-{rank}.pt")
    results["history"] = history.history
    results["epochs"] = history.epoch
    results["evaluate"] = model.evaluate(
        arrays["x_eval"],
        arrays["y_eval"],
        sample_weight=arrays["w_eval"],
        batch_size=5,
        return_dict=True,
        verbose=1,
        callbacks=[ReadBatchLogsOnRankZero()],
    )
    results["evaluate_steps"] = model.evaluate(
        arrays["x_eval"], arrays["y_eval"], batch_size=4, steps=3, return_dict=True, verbose=0
    )
    np.save(out / f"predict-{rank}.npy", model.predict(arrays["x_eval"], batch_size=4, verbose=0))
    results["test_on_batch"] = model.test_on_batch(
        arrays["x_eval"][rank::2], arrays["y_eval"][rank::2], return_dict=True
    )

    # 2. save in every process, load at once in every process: rank 0 writes, the others wait.
    model.save(out / "model.pt")
    restored = kfit.Model(network(seed=7))
    restored.load(out / "model.pt")
    results["restored_equal"] = all(
        torch.equal(a, b)
        for a, b in zip(restored.state_dict().values(), model.state_dict().values(), strict=True)
    )

    # 3. two processes with batch 3 take the steps of one process with batch 6 (no shuffle).
    same = kfit.Model(network(seed=5))
    same.compile(optimizer=kfit.optimizers.SGD(learning_rate=0.3), loss="mse")
    same.fit(arrays["x"][:36], arrays["y"][:36], batch_size=3, epochs=2, shuffle=False, verbose=0)
    torch.save(same.state_dict(), out / f"same-{rank}.pt")

    # 4. which samples each process trains on: arrays, a Dataset, a DataLoader.
    ids = np.concatenate([np.arange(N_TRAIN, dtype=np.float32)[:, None], arrays["x"][:, :3]], 1)
    dataset = TensorDataset(torch.from_numpy(ids), torch.from_numpy(arrays["y"]))
    eval_ids = np.concatenate([np.zeros((N_EVAL, 1), np.float32), arrays["x_eval"][:, :3]], 1)
    eval_set = TensorDataset(torch.from_numpy(eval_ids), torch.from_numpy(arrays["y_eval"]))
    for name, source in (
        ("arrays", (ids, arrays["y"])),
        ("dataset", (dataset,)),
        ("loader", (DataLoader(dataset, batch_size=4, shuffle=True),)),
    ):
        recorder = IdRecorder()
        recorded = kfit.Model(recorder)
        recorded.compile(optimizer="sgd", loss="mse")
        fitted = recorded.fit(
            *source,
            batch_size=4,
            epochs=2,
            verbose=0,
            validation_data=DataLoader(eval_set, batch_size=5) if name == "loader" else None,
        )
        results[f"seen_{name}"] = recorder.seen
    results["loader_val_loss"] = fitted.history["val_loss"][-1]
    torch.save(recorded.state_dict(), out / f"loader-{rank}.pt")
    inputs = TensorDataset(torch.from_numpy(eval_ids))
    np.save(out / f"predict-loader-{rank}.npy", recorded.predict(DataLoader(inputs, batch_size=5)))

    # 5. a callback that stops one process stops both, at the same step.
    stopped = kfit.Model(network(seed=3))
    stopped.compile(optimizer="sgd", loss="mse")
    stop_history = stopped.fit(
        arrays["x"], arrays["y"], batch_size=4, epochs=3, verbose=0, callbacks=[StopOneProcess()]
    )
    results["stop_epochs"] = stop_history.epoch
    torch.save(stopped.state_dict(), out / f"stopped-{rank}.pt")

    # 6. a run killed after its second epoch resumes from the backup in every process.
    backup_dir = out / "backup"
    resumed = kfit.Model(network(seed=9 + rank))
    resumed.compile(optimizer="adam", loss="mse")
    with contextlib.suppress(RuntimeError):
        resumed.fit(
            arrays["x"],
            arrays["y"],
            epochs=4,
            verbose=0,
            callbacks=[kfit.callbacks.BackupAndRestore(backup_dir), FailAtEpoch(1)],
        )
    resumed_history = resumed.fit(
        arrays["x"],
        arrays["y"],
        epochs=4,
        verbose=0,
        callbacks=[kfit.callbacks.BackupAndRestore(backup_dir)],
    )
    results["resumed_epochs"] = resumed_history.epoch
    results["backup_left"] = backup_dir.exists()
    torch.save(resumed.state_dict(), out / f"resumed-{rank}.pt")

    # 7. lazy modules take their shapes before DDP wraps the model (here from a DataLoader).
    torch.manual_seed(rank)
    lazy = kfit.Model(nn.Sequential(nn.LazyLinear(3), nn.Tanh(), nn.LazyLinear(1)))
    lazy.compile(optimizer="adam", loss="mse")
    lazy.fit(DataLoader(dataset, batch_size=4, shuffle=True), epochs=2, verbose=0)
    torch.save(lazy.state_dict(), out / f"lazy-{rank}.pt")

    # 8. processes that hold different data get the same clear error, and none waits forever.
    try:
        stopped.fit(arrays["x"][: 20 + rank], arrays["y"][: 20 + rank], verbose=0)
    except ValueError as err:
        results["size_error"] = str(err)

    sys.stdout = sys.__stdout__
    stdout_file.close()
    (out / f"results-{rank}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
