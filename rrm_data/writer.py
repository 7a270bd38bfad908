"""Write a dataset directory in format rrm-data/1, atomically.

Everything is written into a hidden temporary sibling of the final path and renamed
into place at the end, so a reader never sees a half-written dataset.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rrm_data import format as fmt
from rrm_data.card import render_card
from rrm_data.format import table_features
from rrm_data.validate import check_dataset

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


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


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


def publish_directory(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move a finished temporary directory to ``out``, replacing it only if allowed."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        if not overwrite:
            raise FileExistsError(out)
        os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def temporary_sibling(out: Path, tag: str = "tmp") -> Path:
    """A fresh hidden directory next to ``out`` (same filesystem, so rename is atomic)."""
    tmp = out.with_name(f".{out.name}.{tag}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


@contextmanager
def atomic_directory(out: Path, overwrite: bool = True, tag: str = "tmp") -> Iterator[Path]:
    """Yield a temporary sibling of ``out`` to fill; move it to ``out`` only if all went well.

    On any failure (or interrupt) the temporary folder is removed and ``out`` is untouched.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(out, tag)
    try:
        yield tmp
        publish_directory(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
