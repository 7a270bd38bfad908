"""Write a dataset directory in format rrm-data/1, atomically.

Everything is written into a hidden temporary sibling of the final path and renamed
into place at the end, so a reader never sees a half-written dataset.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from rrm_data.dataset import format as fmt
from rrm_data.dataset.card import render_card
from rrm_data.dataset.format import table_features
from rrm_data.dataset.info import DatasetInfo
from rrm_data.dataset.reader import DatasetDir, open_dataset
from rrm_data.dataset.stats import feature_stats
from rrm_data.dataset.validate import check_dataset
from rrm_data.io import Inputs, Kind, atomic_directory, check_out, output_lock, write_json

ROWS_PER_FILE = 100_000


def with_image_features(table: pa.Table) -> pa.Table:
    """Declare image (struct of PNG bytes and path) columns as `datasets` ``Image`` features.

    `datasets` reads features from the Parquet schema's ``huggingface`` metadata; without
    it an image column would load as a plain dict of bytes.
    """
    images = {f.name: {"_type": "Image"} for f in table.schema if pa.types.is_struct(f.type)}
    if not images:
        return table
    metadata = {**(table.schema.metadata or {}),
                b"huggingface": json.dumps({"info": {"features": images}}).encode()}
    return table.replace_schema_metadata(metadata)


def write_tables(root: Path, tables: dict[str, dict[str, pa.Table]]) -> None:
    """Write every (table, split) as ``<table>/<split>-NNNNN-of-NNNNN.parquet`` shards."""
    for name, splits in tables.items():
        for split, table in splits.items():
            table = with_image_features(table)
            n_files = max(1, -(-table.num_rows // ROWS_PER_FILE))
            (root / name).mkdir(parents=True, exist_ok=True)
            for i in range(n_files):
                part = table.slice(i * ROWS_PER_FILE, ROWS_PER_FILE)
                pq.write_table(part, root / name / fmt.shard_name(split, i, n_files),
                               **fmt.parquet_options(part.schema))


class NewVersion(NamedTuple):
    """Where a new version of a dataset goes, and the version it is built from."""

    dataset: DatasetDir  # as read under the lock
    out: Path
    overwrite: bool  # write_dataset's overwrite=: in place, or out= with overwrite=true


@contextmanager
def new_version(dataset: DatasetDir, out: str | None = None, overwrite: bool = False,
                inputs: Inputs | None = None) -> Iterator[NewVersion]:
    """Hold the lock of where a new version of ``dataset`` goes (in place, never a Hub
    snapshot; or ``out`` under the output rule, outside ``dataset`` and the command's
    other ``inputs``) from before the dataset is read until the
    version is published, and yield the dataset as read under it.

    Why: two writers in place would each build on the version they read and the later one
    would silently drop the other's tables; so a second writer is refused at once, and the
    new version is built from the version read while holding the lock. ``write_dataset``
    inside the block takes the same (re-entrant) lock to publish.
    """
    if out is None or Path(out).resolve() == dataset.root.resolve():
        dataset.check_writable()
        with output_lock(dataset.root):
            yield NewVersion(open_dataset(dataset.root), dataset.root, True)
        return
    check_out(Path(out), Kind.DATASET, overwrite, inputs={"data": dataset.root, **(inputs or {})})
    with output_lock(Path(out)):  # the source is not locked: an in-place publish is one step
        yield NewVersion(dataset, Path(out), overwrite)


def feature_names(info: DatasetInfo) -> dict[str, list[str]]:
    """The element names the dataset's features already declare (kept by a new version)."""
    return {column: feature["names"] for table in info.features.values()
            for column, feature in table.items() if feature.get("names")}


def write_dataset(out: Path, tables: dict[str, dict[str, pa.Table]], info: DatasetInfo,
                  overwrite: bool = False, names: dict[str, list[str]] | None = None) -> Path:
    """Write tables, meta/info.json, meta/stats.json and the card, validate, then publish.

    ``names`` are the element names of vector columns (default: those ``info`` declares).
    Validation runs on the temporary copy, so an invalid dataset never appears at ``out``;
    camera frames it has just encoded are checked by their schema, not decoded again.
    """
    names = feature_names(info) if names is None else names
    info = info.replace(
        features={name: table_features(next(iter(splits.values())), names)
                  for name, splits in tables.items()},
        splits={name: sorted(splits) for name, splits in tables.items()})
    with atomic_directory(out, Kind.DATASET, overwrite) as tmp:
        write_tables(tmp, tables)
        write_json(tmp / fmt.INFO_FILE, info.to_json())
        write_json(tmp / fmt.STATS_FILE, feature_stats(tables["steps"]["train"]))
        (tmp / "README.md").write_text(render_card(info))
        check_dataset(tmp, frames=False)
    return out
