"""Write a dataset directory in format rrm-data/1, atomically.

Everything is written into a hidden temporary sibling of the final path and renamed
into place at the end, so a reader never sees a half-written dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rrm_data.dataset import format as fmt
from rrm_data.dataset.card import render_card
from rrm_data.dataset.format import table_features
from rrm_data.dataset.validate import check_dataset
from rrm_data.io import atomic_directory, write_json

ROWS_PER_FILE = 100_000


def feature_stats(table: pa.Table) -> dict[str, dict[str, list[float]]]:
    """Per-feature mean / std / min / max of numeric step columns (LeRobot's meta/stats.json)."""
    stats = {}
    for f in table.schema:
        if f.name in fmt.SIM_COLUMNS or f.name == "index":
            continue
        if pa.types.is_fixed_size_list(f.type):
            values = np.asarray(table.column(f.name).combine_chunks().flatten()).reshape(
                table.num_rows, f.type.list_size)
        elif pa.types.is_floating(f.type) or pa.types.is_boolean(f.type):
            values = table.column(f.name).to_numpy().astype(np.float64)[:, None]
        else:
            continue
        values = values.astype(np.float64)
        stats[f.name] = {k: getattr(np, k)(values, axis=0).tolist()
                         for k in ("mean", "std", "min", "max")}
    return stats


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
                pq.write_table(part, root / name / f"{split}-{i:05d}-of-{n_files:05d}.parquet",
                               **fmt.parquet_options(part.schema))


def write_dataset(out: Path, tables: dict[str, dict[str, pa.Table]], info: dict,
                  overwrite: bool = False) -> Path:
    """Write tables, meta/info.json, meta/stats.json and the card, validate, then publish.

    Validation runs on the temporary copy, so an invalid dataset never appears at ``out``.
    """
    with atomic_directory(out, overwrite) as tmp:
        write_tables(tmp, tables)
        info = dict(info)
        names = {fmt.STATE: fmt.STATE_NAMES, fmt.ACTION: fmt.ACTION_NAMES}
        info["features"] = {name: table_features(next(iter(splits.values())), names)
                            for name, splits in tables.items()}
        info["splits"] = {name: sorted(splits) for name, splits in tables.items()}
        write_json(tmp / "meta" / "info.json", info)
        write_json(tmp / "meta" / "stats.json", feature_stats(tables["steps"]["train"]))
        (tmp / "README.md").write_text(render_card(info))
        check_dataset(tmp)
    return out
