"""Many processes: the same script under torchrun (2 CPU processes, gloo) against one process.

`tests/ddp_worker.py` runs once under `torchrun --standalone --nproc_per_node=2` (module-scoped
fixture); each test checks one behaviour of what it recorded against one process running the
same code here. The sharding helpers and the single-process path are tested in this process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import kfit
from kfit import distributed
from kfit.callbacks.callback_list import CallbackList
from kfit.data import ArrayData
from kfit.data.arrays import EvaluationShard, TrainingShard
from kfit.data.iterables import ShardSampler, default_sampling, rebuilt_loader

sys.path.insert(0, str(Path(__file__).parent))
import ddp_worker  # noqa: E402 - the script the processes run, for its data and network

ROOT = Path(__file__).resolve().parents[1]
WORLD = 2

needs_gloo = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo"
)


@dataclass
class Run:
    out: Path
    results: list[dict]

    def tensors(self, name: str) -> list[dict[str, torch.Tensor]]:
        return [torch.load(self.out / f"{name}-{rank}.pt") for rank in range(WORLD)]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("ddp")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
    }
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a free port on this machine
        f"--nproc_per_node={WORLD}",
        str(ROOT / "tests" / "ddp_worker.py"),
        str(out),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    results = [json.loads((out / f"results-{rank}.json").read_text()) for rank in range(WORLD)]
    return Run(out, results)


def _one_process_model(state: dict[str, torch.Tensor], **compile_args) -> kfit.Model:
    model = kfit.Model(ddp_worker.network(seed=0))
    model.load_state_dict(state)
    model.compile(
        **(compile_args or {"loss": "binary_crossentropy", "metrics": ["accuracy", "mae"]})
    )
    return model


def _assert_close_dicts(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), key


# --------------------------------------------------------------------------- under torchrun


@needs_gloo
def test_processes_start_from_rank_zero_and_end_with_identical_weights(run):
    # Each process built its network from another seed: DDP copied rank 0's weights.
    for name in ("weights", "same", "stopped", "loader", "resumed", "lazy"):
        first, second = run.tensors(name)
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first), name


@needs_gloo
def test_history_is_identical_and_early_stopping_stops_both_at_the_same_epoch(run):
    first, second = run.results
    assert first["history"] == second["history"]
    assert first["epochs"] == second["epochs"]
    assert len(first["epochs"]) < 40  # EarlyStopping stopped both


@needs_gloo
def test_reduce_lr_on_plateau_reduces_alike_everywhere(run):
    rates = run.results[0]["history"]["learning_rate"]
    assert rates == run.results[1]["history"]["learning_rate"]
    assert rates[-1] < rates[0]


@needs_gloo
def test_backup_and_restore_resumes_every_process_from_the_same_epoch(run):
    # Epochs 0 and 1 come from the backup: the History holds every epoch.
    assert [result["resumed_epochs"] for result in run.results] == [[0, 1, 2, 3], [0, 1, 2, 3]]
    assert not run.results[0]["backup_left"]


@needs_gloo
def test_validation_split_is_the_same_samples_evaluated_over_both_processes(run):
    arrays = ddp_worker.data()
    split_at = ArrayData(arrays["x"], None, None, ddp_worker.N_TRAIN).split(0.3)[0].size
    model = _one_process_model(run.tensors("weights")[0])
    expected = model.evaluate(
        arrays["x"][split_at:], arrays["y"][split_at:], batch_size=4, verbose=0, return_dict=True
    )
    history = run.results[0]["history"]
    got = {key: history[f"val_{key}"][-1] for key in expected}  # the last epoch's weights
    _assert_close_dicts(got, expected)


@needs_gloo
def test_evaluate_under_two_processes_equals_one_process_evaluate(run):
    arrays = ddp_worker.data()
    model = _one_process_model(run.tensors("weights")[0])
    expected = model.evaluate(
        arrays["x_eval"],
        arrays["y_eval"],
        sample_weight=arrays["w_eval"],
        batch_size=5,
        verbose=0,
        return_dict=True,
    )
    for result in run.results:
        _assert_close_dicts(result["evaluate"], expected)


@needs_gloo
def test_evaluate_with_steps_covers_the_same_first_batches(run):
    arrays = ddp_worker.data()
    model = _one_process_model(run.tensors("weights")[0])
    expected = model.evaluate(
        arrays["x_eval"], arrays["y_eval"], batch_size=4, steps=3, verbose=0, return_dict=True
    )
    for result in run.results:
        _assert_close_dicts(result["evaluate_steps"], expected)


@needs_gloo
def test_test_on_batch_values_cover_every_process_batch(run):
    arrays = ddp_worker.data()
    model = _one_process_model(run.tensors("weights")[0])
    # Each process passed every second sample; together they are the whole set.
    expected = model.test_on_batch(arrays["x_eval"], arrays["y_eval"], return_dict=True)
    for result in run.results:
        _assert_close_dicts(result["test_on_batch"], expected)


@needs_gloo
def test_predict_returns_every_output_once_in_input_order_on_every_process(run):
    arrays = ddp_worker.data()
    model = _one_process_model(run.tensors("weights")[0])
    expected = model.predict(arrays["x_eval"], batch_size=4, verbose=0)
    for rank in range(WORLD):
        got = np.load(run.out / f"predict-{rank}.npy")
        assert got.shape == expected.shape == (ddp_worker.N_EVAL, 1)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


@needs_gloo
def test_two_processes_with_batch_b_take_the_steps_of_one_process_with_batch_2b(run):
    arrays = ddp_worker.data()
    model = kfit.Model(ddp_worker.network(seed=5))
    model.compile(optimizer=kfit.optimizers.SGD(learning_rate=0.3), loss="mse")
    model.fit(arrays["x"][:36], arrays["y"][:36], batch_size=6, epochs=2, shuffle=False, verbose=0)
    got = run.tensors("same")[0]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-6)


@needs_gloo
@pytest.mark.parametrize("source", ["arrays", "dataset", "loader"])
def test_each_process_trains_on_its_own_part_of_a_shared_shuffle(run, source):
    seen = [result[f"seen_{source}"] for result in run.results]
    per_rank, batch_size = ddp_worker.N_TRAIN // WORLD, 4
    steps = -(-per_rank // batch_size)
    assert [len(batch) for batch in seen[0]] == [len(batch) for batch in seen[1]]
    epochs = []
    for epoch in range(2):
        parts = [sum(s[epoch * steps : (epoch + 1) * steps], []) for s in seen]
        assert [len(part) for part in parts] == [per_rank, per_rank]
        assert not set(parts[0]) & set(parts[1])  # disjoint
        assert len(set(parts[0]) | set(parts[1])) == per_rank * WORLD
        epochs.append(parts[0] + parts[1])
    assert epochs[0] != epochs[1]  # a new shared order every epoch


@needs_gloo
def test_a_data_loader_is_split_for_validation_and_predict(run):
    arrays = ddp_worker.data()
    eval_ids = np.concatenate(
        [np.zeros((ddp_worker.N_EVAL, 1), np.float32), arrays["x_eval"][:, :3]], 1
    )
    model = kfit.Model(ddp_worker.IdRecorder())
    model.load_state_dict(run.tensors("loader")[0])
    model.compile(optimizer="sgd", loss="mse")
    evaluation = TensorDataset(torch.from_numpy(eval_ids), torch.from_numpy(arrays["y_eval"]))
    expected_loss = model.evaluate(DataLoader(evaluation, batch_size=5), verbose=0)
    inputs = TensorDataset(torch.from_numpy(eval_ids))
    expected = model.predict(DataLoader(inputs, batch_size=5), verbose=0)
    for rank, result in enumerate(run.results):
        assert result["loader_val_loss"] == pytest.approx(expected_loss, rel=1e-5)
        got = np.load(run.out / f"predict-loader-{rank}.npy")
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


@needs_gloo
def test_only_rank_zero_prints_the_log(run):
    first = (run.out / "stdout-0.txt").read_text()
    assert (run.out / "stdout-1.txt").read_text() == ""
    assert first.count("Epoch 1/40") == 1
    assert first.count(f"Epoch {len(run.results[0]['epochs'])}/40") == 1
    assert "3/3 [" in first  # evaluate's bar: rank 0's 12 of 23 samples in batches of 5
    assert "ReduceLROnPlateau reducing learning rate" in first


@needs_gloo
def test_only_rank_zero_writes_checkpoints_csv_and_saves(run):
    epochs = len(run.results[0]["epochs"])
    checkpoints = [f"ckpt-{epoch:02d}.pt" for epoch in range(1, epochs + 1)]
    assert run.results[0]["writes"][: epochs + 1] == [*checkpoints, "model.pt"]
    assert "latest.pt" in run.results[0]["writes"]  # BackupAndRestore's, later
    assert run.results[1]["writes"] == []
    rows = (run.out / "log.csv").read_text().splitlines()
    assert len(rows) == 1 + epochs
    assert [row.split(",")[0] for row in rows[1:]] == [str(e) for e in range(epochs)]


@needs_gloo
def test_load_right_after_save_reads_what_rank_zero_wrote(run):
    assert [result["restored_equal"] for result in run.results] == [True, True]


@needs_gloo
def test_a_callback_stopping_one_process_stops_every_process_at_the_same_step(run):
    assert [result["stop_epochs"] for result in run.results] == [[0], [0]]


@needs_gloo
def test_processes_holding_different_data_all_raise_the_same_error(run):
    errors = [result["size_error"] for result in run.results]
    assert errors[0] == errors[1]
    assert "[20, 21]" in errors[0]


# --------------------------------------------------------------------------- the helpers


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(1, 200), batch_size=st.integers(1, 12), world=st.integers(1, 6), data=st.data()
)
def test_training_positions_split_the_order_into_equal_disjoint_step_blocks(
    size, batch_size, world, data
):
    world = min(world, size)
    parts = [distributed.training_positions(size, batch_size, r, world) for r in range(world)]
    per_rank = size // world
    assert all(len(part) == per_rank for part in parts)
    everything = torch.cat(parts)
    assert sorted(everything.tolist()) == list(range(per_rank * world))
    # Step s of all processes together is one consecutive block of the order, in rank order:
    # what one process with `world * batch_size` would take.
    step = data.draw(st.integers(0, -(-per_rank // batch_size) - 1)) if per_rank else 0
    block = torch.cat([part[step * batch_size : (step + 1) * batch_size] for part in parts])
    start = step * batch_size * world
    assert block.tolist() == list(range(start, start + len(block)))


@pytest.mark.parametrize(("size", "world"), [(23, 2), (24, 2), (7, 3), (5, 5), (100, 7)])
def test_evaluation_parts_cover_every_sample_once_in_order(size, world):
    x = torch.arange(size, dtype=torch.float32)[:, None]
    whole = ArrayData(x, x.clone(), None, size)
    parts = [EvaluationShard(whole, r, world) for r in range(world)]
    counts = distributed.evaluation_counts(size, world)
    assert [part.size for part in parts] == counts
    assert max(counts) - min(counts) <= 1
    assert torch.cat([part.x for part in parts]).flatten().tolist() == list(range(size))


def _ids(batches) -> list[list[int]]:
    return [batch[0].flatten().long().tolist() for batch in batches]


def test_training_shards_share_a_new_order_each_pass_and_take_disjoint_parts():
    size, world, batch_size = 23, 2, 4
    x = torch.arange(size, dtype=torch.float32)[:, None]
    data = ArrayData(x, x.clone(), None, size)
    shards = [TrainingShard(data, seed=11, rank=r, world=world) for r in range(2)]
    cpu = torch.device("cpu")
    passes = [[sum(_ids(s.batches(batch_size, True, cpu)), []) for s in shards] for _ in range(2)]
    for first, second in passes:
        assert len(first) == len(second) == size // world
        assert not set(first) & set(second)
    assert passes[0] != passes[1]
    assert shards[0].num_batches(batch_size) == 3


def test_a_rebuilt_loader_yields_what_the_array_shard_yields():
    size, world, batch_size = 19, 2, 3
    x = torch.arange(size, dtype=torch.float32)[:, None]
    array_shard = TrainingShard(ArrayData(x, None, None, size), 5, 1, world)
    sampler = ShardSampler(size, batch_size, True, 5, True, rank=1, world=world)
    loader = rebuilt_loader(DataLoader(TensorDataset(x), batch_size=batch_size), sampler)
    assert loader.batch_size == batch_size
    for _ in range(2):  # the same order every pass, passes differ
        expected = _ids(array_shard.batches(batch_size, True, torch.device("cpu")))
        assert [b[0].flatten().long().tolist() for b in loader] == expected


def test_only_default_sampling_loaders_are_rebuilt():
    dataset = TensorDataset(torch.zeros(8, 1))
    assert default_sampling(DataLoader(dataset, batch_size=2, shuffle=True))
    assert default_sampling(DataLoader(dataset, batch_size=2))
    weighted = torch.utils.data.WeightedRandomSampler([1.0] * 8, 8)
    assert not default_sampling(DataLoader(dataset, sampler=weighted))
    assert not default_sampling(DataLoader(dataset, batch_size=None))


# --------------------------------------------------------------------------- one process


def test_without_torchrun_nothing_changes(xy):
    assert not distributed.launched()
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.local_rank()) == (0, 1, 0)
    x, y = xy
    data = ArrayData(torch.from_numpy(x), torch.from_numpy(y), None, len(x))
    assert distributed.shard_for_training(data) is data
    assert distributed.shard_for_evaluation(data, 4, 2) is data
    assert distributed.gather_outputs(data.x, data) is data.x
    assert distributed.any_process(True) is True
    distributed.barrier()
    model = kfit.Model(nn.Linear(3, 1))
    model.compile(loss="mse")
    read = model.get_metrics_result
    assert distributed.local_reads(read, model) is read
    model.fit(x, y, epochs=1, verbose=0)
    assert model.ddp_forward is None
    assert not dist.is_initialized()
    progress = kfit.callbacks.ProgbarLogger()
    assert CallbackList([progress], model, {}).callbacks == [progress]


def test_on_another_rank_printing_and_writing_callbacks_and_save_are_skipped(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("RANK", "1")
    model = kfit.Model(nn.Linear(3, 1))
    model.compile(loss="mse")
    csv_logger = kfit.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    stopper = kfit.callbacks.EarlyStopping()
    callbacks = CallbackList([kfit.callbacks.ProgbarLogger(), csv_logger, stopper], model, {})
    assert callbacks.callbacks == [stopper]
    model.save(tmp_path / "model.pt")
    model.save_weights(tmp_path / "weights.pt")
    assert list(tmp_path.iterdir()) == []
    model.summary(input_size=(2, 3))
    assert capsys.readouterr().out == ""


def test_steps_agree_on_stopping_only_for_callbacks_that_may_stop(tmp_path, monkeypatch):
    class Stopper(kfit.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    model = kfit.Model(nn.Linear(3, 1))
    savers = [
        kfit.callbacks.ModelCheckpoint(str(tmp_path / "m.pt"), save_freq=1),
        kfit.callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=1),
    ]
    assert all(not saver.may_stop_training for saver in savers)
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    assert not distributed.agrees_each_step(CallbackList(savers, model, {}), "train")
    assert distributed.agrees_each_step(CallbackList([*savers, Stopper()], model, {}), "train")
    assert not distributed.agrees_each_step(CallbackList([Stopper()], model, {}), "test")


def test_distributed_reads_callbacks_by_their_flags_and_imports_none():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("kfit")
    callbacks = [m for m in graph.modules if m.startswith("kfit.callbacks")]
    assert not [m for m in callbacks if graph.chain_exists("kfit.distributed", m)]


def test_the_metrics_read_locally_are_every_accumulator_of_the_model(xy):
    x, y = xy
    model = kfit.Model(nn.Linear(3, 1))
    model.compile(loss="mse", metrics=["mae", kfit.metrics.RootMeanSquaredError()])
    model.fit(x, y, epochs=1, verbose=0)
    found = distributed._metrics_of(model)
    expected = [
        model.compile_state.loss_tracker,
        *(metric for _, metric, _ in model.compile_state.metrics.entries),
    ]
    assert {id(m) for m in found} == {id(m) for m in expected}


def test_the_metrics_read_locally_include_per_output_losses_and_loss_terms():
    class TwoOutputs(kfit.Model):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(3, 2)
            self.tracker = kfit.metrics.Mean(name="extra")

        def forward(self, x):
            out = self.layer(x)
            self.add_loss(out.pow(2).mean(), name="activity")
            return out[:, :1], out[:, 1:]

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    model = TwoOutputs()
    model.compile(loss=["mse", "mae"], metrics=[["mae"], None])
    model.fit(x, (y, y), epochs=1, verbose=0)
    found = {id(m) for m in distributed._metrics_of(model)}
    expected = [
        model.compile_state.loss_tracker,
        *model.compile_state.loss.trackers.values(),
        *model._loss_terms.trackers.values(),
        *(metric for _, metric, _ in model.compile_state.metrics.entries),
        model.tracker,
    ]
    assert len(expected) == 6
    assert found == {id(m) for m in expected}


def test_set_ddp_options_refuses_what_ddp_does_not_take_or_kfit_sets():
    with pytest.raises(ValueError, match="find_unused_parameters"):
        distributed.set_ddp_options(find_unused_parametres=True)
    with pytest.raises(ValueError, match="device_ids"):
        distributed.set_ddp_options(device_ids=[0])
    distributed.set_ddp_options(find_unused_parameters=True)
    assert distributed._ddp_options == {"find_unused_parameters": True}
    distributed.set_ddp_options()
    assert distributed._ddp_options == {}


# --------------------------------------------------------------------------- at exit


@pytest.fixture
def torchrun_env(monkeypatch) -> Iterator[None]:
    """torchrun's variables for a group of one process on a free local port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name, value in {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }.items():
        monkeypatch.setenv(name, value)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


@needs_gloo
def test_a_process_group_kfit_started_is_destroyed_at_exit(torchrun_env):
    distributed.setup(torch.device("cpu"))
    assert dist.is_initialized()
    distributed.release_at_exit()
    assert not dist.is_initialized()


@needs_gloo
def test_a_process_group_the_script_started_is_left_to_the_script(torchrun_env):
    dist.init_process_group("gloo")
    distributed.setup(torch.device("cpu"))
    distributed.release_at_exit()
    assert dist.is_initialized()


@needs_gloo
def test_releasing_at_exit_frees_the_ddp_wrapper_and_its_model_without_a_gc(torchrun_env):
    # The wrapper holds the model and the model holds the wrapper: freed during interpreter
    # teardown, after the group's threads, that cycle aborted torchrun workers at exit.
    distributed.setup(torch.device("cpu"))
    model = kfit.Model(nn.Linear(3, 1))
    model.compile(loss="mse", device="cpu")
    forward = distributed._DDPForward(model, ())
    forward(torch.ones(2, 3)).sum().backward()
    wrapper = weakref.ref(forward._forward)
    assert wrapper() is not None
    distributed.release_at_exit()
    assert wrapper() is None
    assert not dist.is_initialized()
