"""Nested dicts in HDF5: a dict becomes a group, an array or number a dataset, a string or None an attribute.

:func:`write_tree` and :func:`read_tree` round-trip trees whose leaves are numbers, strings, None,
or numeric arrays (lists, numpy arrays, tensors) exactly; run results, metric results and
simulation reports are stored this way.
"""

from __future__ import annotations

from typing import Any, Dict

import h5py
import numpy as np

__all__ = ["write_tree", "read_tree"]


def write_tree(group: h5py.Group, tree: Dict[str, Any]) -> None:
    """Write a nested dict into an HDF5 group (dict -> group, array/number -> dataset, str/None -> attribute)."""
    for key, value in tree.items():
        if not isinstance(key, str) or not key or "/" in key or key.startswith("."):
            raise ValueError(f"result key {key!r} must be a non-empty string without '/' or leading '.'")
        if hasattr(value, "detach"):  # torch tensor
            value = value.detach().cpu().numpy()
        if isinstance(value, dict):
            write_tree(group.create_group(key), value)
        elif value is None:
            group.attrs[key] = h5py.Empty("f")
        elif isinstance(value, str):
            group.attrs[key] = str(value)  # also numpy str_, which h5py cannot store as is
        else:
            try:
                array = np.asarray(value)
            except ValueError:  # numpy refuses ragged nested lists
                array = np.empty(0, dtype=object)
            if array.dtype == object:
                raise ValueError(f"result {key!r} is not a numeric array (ragged or mixed values): {value!r}")
            if array.dtype.kind == "U":
                array = array.astype(h5py.string_dtype())
            group.create_dataset(key, data=array)


def read_tree(group: h5py.Group) -> Dict[str, Any]:
    """Inverse of :func:`write_tree`: 0-d datasets become Python scalars, others numpy arrays."""
    tree: Dict[str, Any] = {}
    for key, value in group.attrs.items():
        if isinstance(value, h5py.Empty):
            tree[key] = None
        else:
            tree[key] = value.decode() if isinstance(value, bytes) else str(value)
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            tree[key] = read_tree(item)
        elif item.dtype.kind == "O":  # variable-length strings
            tree[key] = np.array(item.asstr()[()], dtype=str)
        else:
            data = item[()]
            tree[key] = data.item() if item.ndim == 0 else data
    return tree
