"""Steps-table columns as numpy arrays, in step ``index`` order: what reward models read."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rrm_data.errors import RrmError
from rrm_data.reader import DatasetDir


def to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A column as numpy; fixed-size lists become 2-D arrays (N, width)."""
    array = column.combine_chunks()
    if pa.types.is_fixed_size_list(array.type):
        width = array.type.list_size
        return array.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    return array.to_numpy(zero_copy_only=False)


def step_columns(dataset: DatasetDir, names: Sequence[str],
                 split: str = "train") -> dict[str, np.ndarray]:
    """The named steps columns for every step, row ``i`` holding step ``index == i``."""
    files = dataset.files("steps", split)
    if not files:
        raise RrmError(f"{dataset.root}: no 'steps' table for split '{split}'")
    available = pq.read_schema(files[0]).names
    missing = [n for n in names if n not in available]
    if missing:
        raise RrmError(f"{dataset.root}: steps table has no column {', '.join(missing)}; "
                       f"it has: {', '.join(available)}")
    table = dataset.table("steps", split, columns=list(dict.fromkeys(["index", *names])))
    index = table.column("index").to_numpy()
    expected = np.arange(len(index))
    if np.array_equal(index, expected):
        return {name: to_numpy(table.column(name)) for name in names}
    order = np.argsort(index, kind="stable")
    if not np.array_equal(index[order], expected):
        raise RrmError(f"{dataset.root}: step 'index' is not 0..{len(index) - 1} without gaps")
    return {name: to_numpy(table.column(name))[order] for name in names}
