"""Trees: a tensor, or a tuple/list/dict/namedtuple of trees, as `x`, `y` and outputs are.

Functions here walk such structures leaf by leaf: map, list, index and move them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

Tree = Any  # a tensor, or a tuple/list/dict of trees


def map_tree(fn: Callable[[Any], Any], tree: Tree) -> Tree:
    """Applies `fn` to every leaf of a tuple/list/dict/namedtuple structure; None stays None.

    (A None leaf is an output without a target: `fit(x, [y, None])` with `loss=[fn, None]`.)

    Args:
        fn: the function applied to each leaf.
        tree: a tensor, or a tuple/list/dict/namedtuple of trees.

    Returns:
        A tree of the same structure holding `fn`'s results.
    """
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if tree is None:
        return None
    if isinstance(tree, Mapping):
        return {key: map_tree(fn, value) for key, value in tree.items()}
    if isinstance(tree, tuple | list):
        mapped = [map_tree(fn, value) for value in tree]
        return type(tree)(*mapped) if hasattr(tree, "_fields") else type(tree)(mapped)
    return fn(tree)


def leaves(tree: Tree) -> list[Any]:
    """Returns the leaves of a tuple/list/dict structure in order."""
    if isinstance(tree, Mapping):
        return [leaf for value in tree.values() for leaf in leaves(value)]
    if isinstance(tree, tuple | list):
        return [leaf for value in tree for leaf in leaves(value)]
    return [tree]


def index_tree(tree: Tree, index: torch.Tensor | slice) -> Tree:
    """Selects the samples `index` (a slice or an index tensor) from every leaf."""
    if tree is None:
        return None
    if isinstance(tree, torch.Tensor):
        return tree[index] if isinstance(index, slice) else tree.index_select(0, index)
    if isinstance(index, slice):
        return map_tree(lambda t: t[index], tree)
    return map_tree(lambda t: t.index_select(0, index), tree)


def move_tree(tree: Tree, device: torch.device) -> Tree:
    """Moves every tensor leaf to `device` without blocking the host."""
    if tree is None:
        return None
    return map_tree(
        lambda t: t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t, tree
    )
