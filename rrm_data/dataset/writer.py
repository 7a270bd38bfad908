"""Write a dataset directory in format rrm-data/1, atomically.

Everything is written into a hidden temporary sibling of the final path and renamed
into place at the end, so a reader never sees a half-written dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rrm_data.dataset import format as fmt
from rrm_data.dataset.card import render_card
from rrm_data.dataset.format import table_features
from rrm_data.dataset.info import DatasetInfo
from rrm_data.dataset.reader import DatasetDir
from rrm_data.dataset.stats import feature_stats
from rrm_data.dataset.validate import check_dataset
from rrm_data.io import Inputs, Kind, atomic_directory, check_out, write_json

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


def new_version_target(dataset: DatasetDir, out: str | None, overwrite: bool,
                       inputs: Inputs | None = None) -> tuple[Path, bool]:
    """Where a command that writes a new version of ``dataset`` writes it: in place (never a
    Hub snapshot), or ``out`` under the output rule (outside ``dataset`` and the command's
    other ``inputs``). Returns (path, in place)."""
    if out is None or Path(out).resolve() == dataset.root.resolve():
        dataset.check_writable()
        return dataset.root, True
    check_out(Path(out), Kind.DATASET, overwrite, inputs={"data": dataset.root, **(inputs or {})})
    return Path(out), False


def feature_names(info: DatasetInfo) -> dict[str, list[str]]:
    """The element names the dataset's features already declare (kept by a new version)."""
    return {column: feature["names"] for table in info.features.values()
            for column, feature in table.items() if feature.get("names")}


def write_dataset(out: Path, tables: dict[str, dict[str, pa.Table]], info: DatasetInfo,
                  overwrite: bool = False, names: dict[str, list[str]] | None = None) -> Path:
    """Write tables, meta/info.json, meta/stats.json and the card, validate, then publish.

    ``names`` are the element names of vector columns (default: those ``info`` declares).
    Validation runs on the temporary copy, so an invalid dataset never appears at ``out``.
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
        check_dataset(tmp)
    return out
