"""Turning `x`, `y`, `sample_weight` and data sets into batches on the model's device.

`make_data` wraps the user's data in a `DataSource` (`source.py`), the one interface the
training loops use: `ArrayData` for in-memory arrays (`arrays.py`: batched by slicing a
permutation, moved to the GPU once when it fits, else copied batch by batch from pinned memory,
`prefetch.py`), `IterableData` for data sets, DataLoaders and other iterables (`iterables.py`:
their batches as they are). `sharded.py` says which samples each torchrun process takes;
`trees.py`, `convert.py` and `batch.py` hold the helpers on nested tensors, conversion from
the user's arrays, and the `(x, y, sample_weight)` batch.
"""

from kfit.data.arrays import ArrayData
from kfit.data.batch import LABEL_KEYS, Batch, as_yielded, batch_size_of, unpack
from kfit.data.convert import standardize_dtypes, to_tensor, to_tensor_tree
from kfit.data.iterables import IterableData
from kfit.data.make import is_data_source, make_data
from kfit.data.prefetch import prefetch_to_cuda
from kfit.data.sharded import Processes
from kfit.data.source import DataSource, warn_ran_out
from kfit.data.trees import Tree, index_tree, leaves, map_tree, move_tree
from kfit.data.weights import class_weight_to_sample_weight

__all__ = [
    "LABEL_KEYS",
    "ArrayData",
    "Batch",
    "DataSource",
    "IterableData",
    "Processes",
    "Tree",
    "as_yielded",
    "batch_size_of",
    "class_weight_to_sample_weight",
    "index_tree",
    "is_data_source",
    "leaves",
    "make_data",
    "map_tree",
    "move_tree",
    "prefetch_to_cuda",
    "standardize_dtypes",
    "to_tensor",
    "to_tensor_tree",
    "unpack",
    "warn_ran_out",
]
