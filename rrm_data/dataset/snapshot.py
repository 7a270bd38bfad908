"""One version of a dataset directory, opened once: its description and its Parquet files.

A :class:`DatasetFiles` reads meta/info.json and opens every Parquet file together (a file
stays readable once open, even when an in-place writer publishes a new version meanwhile), and
reads each column of a group of files from disk once, then shares it with everyone who asks
for it: the check before work (validate) and the work itself (the reader's tables).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rrm_data.dataset import format as fmt
from rrm_data.dataset.info import DatasetInfo, InfoUnreadable, read_info_json
from rrm_data.errors import RrmError, first_line

_ATTEMPTS = 3  # snapshots tried while a writer keeps publishing new versions


class UnreadableParquet(RrmError):
    """A Parquet file of the dataset cannot be read; ``path`` and ``reason`` locate it."""

    def __init__(self, path: Path, exc: Exception) -> None:
        self.path, self.reason = path, f"unreadable Parquet ({first_line(exc)})"
        super().__init__(f"{path}: {self.reason}")


@dataclass(frozen=True)
class Snapshot:
    """One version of a dataset directory: its parsed meta/info.json (or why it is not) and
    every Parquet file (not hidden), opened, in path order (or why it cannot be)."""

    info: Any | InfoUnreadable
    files: dict[Path, pq.ParquetFile | UnreadableParquet]


def _version(root: Path) -> tuple[int, ...] | None:
    """What changes when a new version is published at ``root`` (an atomic directory exchange
    gives it a new inode)."""
    try:
        stat, info = os.stat(root), os.stat(root / fmt.INFO_FILE)
    except OSError:
        return None
    return stat.st_ino, stat.st_dev, info.st_ino, info.st_mtime_ns


def _open(path: Path) -> pq.ParquetFile | UnreadableParquet:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        return UnreadableParquet(path, exc)


def take_snapshot(root: Path) -> Snapshot:
    """Read meta/info.json and open every Parquet file of one version of ``root``: taken again
    when a new version was published in between, so the description matches the tables."""
    for _ in range(_ATTEMPTS):
        version = _version(root)
        try:
            info: Any = read_info_json(root)
        except InfoUnreadable as exc:
            info = exc
        files = {path: _open(path) for path in sorted(root.rglob("*.parquet"))
                 if not any(p.startswith(".") for p in path.relative_to(root).parts)}
        if _version(root) == version:
            return Snapshot(info, files)
    raise RrmError(f"{root} kept changing while it was read (another command publishes new "
                   "versions of it); run again when it is done")


def on_request(column: str) -> bool:
    """Columns read only when asked for, not with the rest of their table: camera frames and
    simulator state are large and only some commands use them."""
    return column.startswith(fmt.image_column("")) or column in fmt.SIM_COLUMNS


@dataclass(frozen=True)
class DatasetFiles:
    """One version of the dataset at ``root`` (opened on first use): its description and its
    tables, read on demand, optionally only some columns."""

    root: Path

    def __reduce__(self) -> tuple[type[DatasetFiles], tuple[Any, ...]]:
        """A copy in another process opens the dataset afresh (open files do not travel)."""
        return type(self), tuple(getattr(self, f.name) for f in dataclasses.fields(self))

    @cached_property
    def snapshot(self) -> Snapshot:
        return take_snapshot(self.root)

    @cached_property
    def info(self) -> DatasetInfo:
        if isinstance(self.snapshot.info, InfoUnreadable):
            raise self.snapshot.info
        return DatasetInfo.from_json(self.snapshot.info, str(self.root / fmt.INFO_FILE))

    def splits(self, table: str) -> list[str]:
        splits = {fmt.shard_split(p.name) for p in self.snapshot.files
                  if p.parent == self.root / table}
        return sorted(s for s in splits if s is not None)

    def files(self, table: str, split: str = "train") -> list[Path]:
        pattern = Path(fmt.table_files_glob(table, split))
        return [p for p in self.snapshot.files
                if p.parent == self.root / pattern.parent and fnmatchcase(p.name, pattern.name)]

    def parquet_file(self, path: Path) -> pq.ParquetFile:
        """The open file ``path`` of this version (UnreadableParquet if it cannot be read)."""
        handle = self.snapshot.files[path]
        if isinstance(handle, UnreadableParquet):
            raise handle
        return handle

    @cached_property
    def _columns(self) -> dict[tuple[Path, ...], dict[str, pa.ChunkedArray]]:
        """Columns read so far, by the files they were read from."""
        return {}

    @cached_property
    def _with_first_read(self) -> set[str]:
        return set()

    def read_with_first(self, columns: Iterable[str]) -> None:
        """Read these columns (camera frames, simulator state) with the first read of their
        table instead of on request: a command that will need them says so up front, and
        each file is then read once."""
        self._with_first_read.update(columns)

    def read(self, files: list[Path], columns: list[str] | None = None) -> pa.Table:
        """Columns (default all) of the rows of ``files``, one after the other. The first read
        of a group of files reads all its columns but those read on request, so each file is
        read once however many parts of a command ask for which of them."""
        handles = [self.parquet_file(f) for f in files]
        schema = handles[0].schema_arrow
        wanted = schema.names if columns is None else columns
        unknown = [c for c in wanted if c not in schema.names]
        if unknown:
            raise RrmError(f"{files[0].parent}: no column {', '.join(unknown)}")
        cache = self._columns.setdefault(tuple(files), {})
        missing = [c for c in schema.names if c not in cache
                   and (c in wanted or (not cache and (c in self._with_first_read
                                                           or not on_request(c))))]
        if missing:
            parts = []
            for path, handle in zip(files, handles, strict=True):
                try:
                    parts.append(handle.read(columns=missing))
                except (pa.ArrowException, OSError) as exc:
                    raise UnreadableParquet(path, exc) from None
            read = pa.concat_tables(parts)
            cache.update(zip(missing, read.columns, strict=True))
        fields = [schema.field(c) for c in wanted]
        return pa.Table.from_arrays([cache[c] for c in wanted],
                                    schema=pa.schema(fields, metadata=schema.metadata))

    def table(self, table: str, split: str = "train", columns: list[str] | None = None) -> pa.Table:
        """One table split, read from its Parquet shards in order."""
        files = self.files(table, split)
        if not files:
            have = ", ".join(self.splits(table)) or "none"
            raise RrmError(f"{self.root}: no '{table}' table for split '{split}' "
                           f"(its splits: {have})")
        try:
            return self.read(files, columns)
        except UnreadableParquet as exc:
            raise RrmError(f"{files[0].parent}: {exc.reason}") from None

    def tables(self) -> dict[str, dict[str, pa.Table]]:
        """Every table and split, e.g. to write a new version of the dataset."""
        return {name: {split: self.table(name, split) for split in splits}
                for name, splits in self.info.splits.items()}

    def preferences(self, split: str = "train", columns: list[str] | None = None) -> pa.Table:
        return self.table("preferences", split, columns)
