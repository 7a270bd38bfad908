"""Steps-table columns as numpy arrays, in step ``index`` order: what reward models read."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from rrm_data.dataset import format as fmt
from rrm_data.dataset.snapshot import DatasetFiles
from rrm_data.errors import RrmError


def to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A column as numpy; fixed-size lists become 2-D arrays (N, width)."""
    array = column.combine_chunks()
    if pa.types.is_fixed_size_list(array.type):
        width = array.type.list_size
        return array.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    return array.to_numpy(zero_copy_only=False)


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def decode_column(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An image column as one uint8 array (N, H, W, 3)."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return np.stack([decode_png(b) for b in column.field("bytes").to_pylist()])


def positions(keys: Any, values: Any) -> np.ndarray:
    """Row position of each value among the distinct ``keys`` (-1 where it is absent)."""
    keys, values = np.asarray(keys), np.asarray(values)
    if len(keys) == 0:
        return np.full(len(values), -1)
    order = np.argsort(keys, kind="stable")
    found = order[np.clip(np.searchsorted(keys, values, sorter=order), 0, len(keys) - 1)]
    return np.where(keys[found] == values, found, -1)


def pair_keys(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One int per unordered pair {a, b}, so (a, b) and (b, a) are the same pair."""
    lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    return lo * (1 << 31) + hi


def segment_first_steps(segments: pa.Table, episodes: pa.Table) -> np.ndarray:
    """Global step row of each segment's first step: its episode's ``index_from`` + ``start``."""
    at = positions(episodes.column("episode_index"), segments.column("episode_index"))
    if (at < 0).any():
        raise RrmError("a segment points at an episode that does not exist")
    return episodes.column("index_from").to_numpy()[at] + segments.column("start").to_numpy()


EMBEDDINGS_PREFIX = "embeddings/"


def is_embedding_column(name: str) -> bool:
    """``embeddings/<encoder>``: the cached features table of that encoder, read as a column."""
    return name.startswith(EMBEDDINGS_PREFIX)


def embedding_column(dataset: DatasetFiles, table: str, split: str = "train") -> np.ndarray:
    """The ``features`` of an embeddings table as (N, D) float32, row ``i`` for step ``i``."""
    if not dataset.files(table, split):
        encoder = table.removeprefix(EMBEDDINGS_PREFIX)
        embed = f"rrm-data embed data={dataset.root} encoder={encoder}"
        frames = fmt.image_column("")
        if not any(c.startswith(frames) for c in dataset.info.features.get("steps", {})):
            # embed refuses a dataset without frames: the frames come first
            raise RrmError(f"{dataset.root}: no '{table}' table and no camera frames to build it "
                           f"from; render them, then embed: rrm-data render data={dataset.root} "
                           f"camera=corner, then {embed}")
        raise RrmError(f"{dataset.root}: no '{table}' table; build it with: {embed}")
    features = dataset.table(table, split, columns=["index", "features"])
    index = features.column("index").to_numpy()
    values = to_numpy(features.column("features")).astype(np.float32, copy=False)
    order = np.argsort(index, kind="stable")
    if not np.array_equal(index[order], np.arange(dataset.info.counts.steps)):
        raise RrmError(f"{dataset.root}: '{table}' does not hold every step exactly once")
    return values[order]


def step_columns(dataset: DatasetFiles, names: Sequence[str], split: str = "train",
                 rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The named steps columns, row ``i`` holding step ``index == i`` (or ``rows[i]``).

    ``rows`` (step indices) keeps only those steps, so scoring a split converts only the
    steps it needs. A name ``embeddings/<encoder>`` reads that table's cached features; a
    camera's frames (``observation.images.<camera>``) come decoded, uint8 (N, H, W, 3).
    """
    embedded = {n: embedding_column(dataset, n, split) for n in names if is_embedding_column(n)}
    if embedded:
        plain = step_columns(dataset, [n for n in names if n not in embedded], split, rows)
        if rows is not None:
            embedded = {n: values[rows] for n, values in embedded.items()}
        return {n: plain[n] if n in plain else embedded[n] for n in names}
    files = dataset.files("steps", split)
    if not files:
        raise RrmError(f"{dataset.root}: no 'steps' table for split '{split}'")
    available = dataset.parquet_file(files[0]).schema_arrow.names
    missing = [n for n in names if n not in available]
    if missing:
        raise RrmError(f"{dataset.root}: steps table has no column {', '.join(missing)}; "
                       f"it has: {', '.join(available)}")
    table = dataset.table("steps", split, columns=list(dict.fromkeys(["index", *names])))
    index = table.column("index").to_numpy()
    expected = np.arange(len(index))
    order = np.argsort(index, kind="stable")
    if not np.array_equal(index[order], expected):
        raise RrmError(f"{dataset.root}: step 'index' is not 0..{len(index) - 1} without gaps")
    if rows is not None:
        order = order[rows]
    keep = None if np.array_equal(order, expected) else order  # numpy indexing beats take()
    return {name: _values(table.column(name), fmt.is_image_column(name), keep) for name in names}


def _values(column: pa.ChunkedArray, frames: bool, keep: np.ndarray | None) -> np.ndarray:
    """A column's rows ``keep`` (all when None) as numpy; frames decoded, only those kept."""
    if frames:
        return decode_column(column if keep is None else column.take(keep))
    values = to_numpy(column)
    return values if keep is None else values[keep]
