"""`TensorBoard`: writes the logged values, weight histograms and images for TensorBoard."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch

from kfit.callbacks.callback import Callback
from kfit.optimizers import get_learning_rate


def _summary_writer_class() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError(
            "The TensorBoard callback needs the tensorboard package: pip install tensorboard "
            "(or pip install 'kfit[tensorboard]')."
        ) from err
    return SummaryWriter


class TensorBoard(Callback):
    """Writes event files for TensorBoard with Keras's layout and tag names.

    `log_dir/train` gets `epoch_<key>` for every training value of the epoch, plus
    `epoch_learning_rate` (read from the optimizer) and, when asked, weight histograms and
    images; `log_dir/validation` gets `epoch_<key>` for every `val_<key>`, and
    `evaluation_<key>_vs_iterations` after each validation or `evaluate` (step: training
    batches run so far). With `update_freq='batch'` or N, `batch_<key>` running epoch values
    go to `log_dir/train` every N batches (each one a host read). The step of epoch values is
    the 0-based epoch, as in Keras. Writing uses `torch.utils.tensorboard.SummaryWriter`.

    View with `tensorboard --logdir logs`.

    Differences from Keras, whose torch backend imports TensorFlow for this callback:
    `write_graph` writes the module's structure (`repr(model)`) as a text summary under the
    tag `model` (Keras's torch backend writes no graph); `write_images` scales each weight to
    [0, 1] so that it is visible; embeddings are every `nn.Embedding`'s weight in the
    projector, named by module path; profiling (`profile_batch`) is not supported, as in
    Keras's torch backend: use `torch.profiler` with `tensorboard_trace_handler`.

    Args:
        log_dir: the folder for the event files; do not share it with other runs.
        histogram_freq: write weight histograms every this many epochs (0: never).
        write_graph: write the module's structure as a text summary.
        write_images: with `histogram_freq`, also write each weight as an image.
        write_steps_per_second: also write training steps per second (per epoch, and per
            batch with `update_freq`).
        update_freq: `'epoch'`, `'batch'` (every batch) or an integer N (every N batches).
        profile_batch: must be 0.
        embeddings_freq: write embedding weights for the projector every this many epochs.
        embeddings_metadata: a metadata file (one label per line, or a TSV with a header)
            for all embeddings, or `{module_name: file}`.

    Raises:
        ImportError: if tensorboard is not installed.
        ValueError: for invalid `update_freq`, frequencies or a non-zero `profile_batch`.

    Example:
        >>> tensorboard = kfit.callbacks.TensorBoard(log_dir="logs", histogram_freq=1)
        >>> model.fit(x, y, epochs=10, validation_split=0.2, callbacks=[tensorboard])
    """

    rank_zero_only = True  # torchrun: one process prints / writes

    def __init__(
        self,
        log_dir: str | os.PathLike = "logs",
        histogram_freq: int = 0,
        write_graph: bool = True,
        write_images: bool = False,
        write_steps_per_second: bool = False,
        update_freq: Literal["epoch", "batch"] | int = "epoch",
        profile_batch: int = 0,
        embeddings_freq: int = 0,
        embeddings_metadata: str | os.PathLike | dict[str, str | os.PathLike] | None = None,
    ):
        super().__init__()
        self._writer_class = _summary_writer_class()
        for name, value in (
            ("histogram_freq", histogram_freq),
            ("embeddings_freq", embeddings_freq),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be an integer >= 0; got {value!r}.")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (
            isinstance(update_freq, bool) or not isinstance(update_freq, int) or update_freq < 1
        ):
            raise ValueError(
                f"`update_freq` must be 'epoch', 'batch' or an integer >= 1; got {update_freq!r}."
            )
        if profile_batch:
            raise ValueError(
                "Profiling is not available in kfit's TensorBoard callback (nor with Keras's "
                "torch backend); use torch.profiler.profile(on_trace_ready="
                "torch.profiler.tensorboard_trace_handler(log_dir)). Received: "
                f"profile_batch={profile_batch!r} (must be 0)."
            )
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph = write_graph
        self.write_images = write_images
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = update_freq
        self.embeddings_freq = embeddings_freq
        self.embeddings_metadata = embeddings_metadata
        self._writers: dict[str, Any] = {}
        self._global_train_batch = 0
        self._iterations = 0  # training batches while attached (Keras: optimizer.iterations)
        self._epoch_start = 0.0
        self._epoch_batches = 0
        self._batch_start = 0.0

    def _writer(self, name: Literal["train", "validation"]) -> Any:
        # Created on first use, so that no empty event files appear.
        if name not in self._writers:
            self._writers[name] = self._writer_class(log_dir=os.path.join(self.log_dir, name))
        return self._writers[name]

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0
        if self.embeddings_freq:
            self._embedding_metadata()  # fail before training on unknown module names
        if self.write_graph:
            self._writer("train").add_text("model", f"```\n{self.model!r}\n```", 0)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._epoch_batches = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1
        self._iterations += 1
        self._epoch_batches += 1
        if self.write_steps_per_second:
            self._batch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch" or self._global_train_batch % self.update_freq:
            return
        writer, step = self._writer("train"), self._global_train_batch
        for name, value in (logs or {}).items():  # the host read of the running values
            writer.add_scalar(f"batch_{name}", value, step)
        if self.write_steps_per_second:  # timed after that read, which waited for the step
            seconds = time.perf_counter() - self._batch_start
            writer.add_scalar("batch_steps_per_second", 1.0 / seconds, step)

    def on_test_end(self, logs=None):
        writer = self._writer("validation")
        for name, value in (logs or {}).items():
            writer.add_scalar(f"evaluation_{name}_vs_iterations", value, self._iterations)
        writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        self._write_epoch_values(epoch, logs or {})
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._write_weights(epoch)
        if self.embeddings_freq and epoch % self.embeddings_freq == 0:
            self._write_embeddings(epoch)

    def _write_epoch_values(self, epoch: int, logs: Mapping[str, Any]) -> None:
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        validation = {k.removeprefix("val_"): v for k, v in logs.items() if k.startswith("val_")}
        if self.model.optimizer is not None:
            train["learning_rate"] = get_learning_rate(self.model.optimizer)
        if self.write_steps_per_second:
            seconds = time.perf_counter() - self._epoch_start
            train["steps_per_second"] = self._epoch_batches / seconds
        runs: tuple[tuple[Literal["train", "validation"], dict[str, Any]], ...] = (
            ("train", train),
            ("validation", validation),
        )
        for name, values in runs:
            if values:
                writer = self._writer(name)
                for key, value in values.items():
                    writer.add_scalar(f"epoch_{key}", value, epoch)
                writer.flush()

    def _weights(self) -> list[tuple[str, torch.Tensor]]:
        """Parameters and floating-point buffers (Keras logs non-trainable weights too)."""
        buffers = [(n, b) for n, b in self.model.named_buffers() if b.is_floating_point()]
        return [*self.model.named_parameters(), *buffers]

    def _write_weights(self, epoch: int) -> None:
        writer = self._writer("train")
        for name, weight in self._weights():
            values = weight.detach().float().cpu()  # sync point: once per histogram epoch
            writer.add_histogram(f"{name}/histogram", values, epoch)
            image = _weight_image(values) if self.write_images else None
            if image is not None:
                writer.add_images(f"{name}/image", image, epoch, dataformats="NHWC")
        writer.flush()

    def _embedding_metadata(self) -> dict[str, str | os.PathLike | None]:
        names = [n for n, m in self.model.named_modules() if isinstance(m, torch.nn.Embedding)]
        metadata = self.embeddings_metadata
        if metadata is None or isinstance(metadata, str | os.PathLike):
            return dict.fromkeys(names, metadata)
        unknown = sorted(set(metadata) - set(names))
        if unknown:
            raise ValueError(
                f"`embeddings_metadata` names modules that are not nn.Embedding layers of the "
                f"model: {unknown}; the embedding layers are {names}."
            )
        return {name: metadata.get(name) for name in names}

    def _write_embeddings(self, epoch: int) -> None:
        writer = self._writer("train")
        for name, path in self._embedding_metadata().items():
            labels, header = _read_metadata(path) if path is not None else (None, None)
            weight = self.model.get_submodule(name).weight.detach().float().cpu()
            writer.add_embedding(
                weight, metadata=labels, metadata_header=header, global_step=epoch, tag=name
            )


def _weight_image(weight: torch.Tensor) -> torch.Tensor | None:
    """A weight as NHWC images in [0, 1], in Keras's layouts; None for 4-D and larger."""
    image = weight.squeeze()
    if image.dim() == 1:
        image = image.reshape(1, 1, -1)
    elif image.dim() == 2:
        image = (image.T if image.shape[0] > image.shape[1] else image).unsqueeze(0)
    elif image.dim() != 3:
        return None
    low, high = image.min(), image.max()
    image = (image - low) / (high - low) if high > low else torch.zeros_like(image)
    return image.unsqueeze(-1)


def _read_metadata(path: str | os.PathLike) -> tuple[list[Any], list[str] | None]:
    """The projector's metadata file: one label per line, or a TSV whose first row is a header."""
    rows = [line.split("\t") for line in Path(path).read_text().splitlines()]
    if rows and len(rows[0]) > 1:
        return rows[1:], rows[0]
    return [row[0] for row in rows], None
