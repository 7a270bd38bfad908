"""Read a dataset directory of format rrm-data/1 (tables as Arrow, meta as dicts)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from rrm_data.dataset import format as fmt
from rrm_data.dataset.info import DatasetInfo
from rrm_data.errors import RrmError, first_line
from rrm_data.io import check_write_access, in_hf_cache

if TYPE_CHECKING:
    from rrm_data.dataset.hub import HubRef


@dataclass(frozen=True)
class DatasetDir:
    """A dataset on local disk. Tables are read on demand, optionally only some columns."""

    root: Path
    hub: HubRef | None = None  # set when ``root`` is a snapshot in the Hugging Face cache

    def check_writable(self) -> None:
        """Refuse to change a Hub dataset in place: its files are the shared HF cache (also
        when it is reached through its snapshot path); or one whose folder is not writable."""
        if self.hub is not None or in_hf_cache(self.root):
            repo = self.hub.repo_id if self.hub else "ORG/NAME"
            raise RrmError(f"{self.hub or self.root} is a Hub dataset read from the Hugging Face "
                           "cache, which rrm-data never modifies; copy it first (hf download "
                           f"{repo} --repo-type dataset --local-dir DIR) and pass data=DIR")
        check_write_access(self.root, "data")  # the new version is built next to it

    @cached_property
    def info(self) -> DatasetInfo:
        path = self.root / fmt.INFO_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise RrmError(f"{self.root} is not an rrm-data dataset (no {fmt.INFO_FILE})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RrmError(f"{path}: invalid JSON ({first_line(exc)})") from None
        return DatasetInfo.from_json(data, str(path))

    def splits(self, table: str) -> list[str]:
        splits = {fmt.shard_split(p.name) for p in (self.root / table).glob("*.parquet")}
        return sorted(s for s in splits if s is not None)

    def files(self, table: str, split: str = "train") -> list[Path]:
        return sorted(self.root.glob(fmt.table_files_glob(table, split)))

    def table(self, table: str, split: str = "train", columns: list[str] | None = None) -> pa.Table:
        """One table split, read from its Parquet shards in order."""
        files = self.files(table, split)
        if not files:
            have = ", ".join(self.splits(table)) or "none"
            raise RrmError(f"{self.root}: no '{table}' table for split '{split}' "
                           f"(its splits: {have})")
        try:
            # ParquetFile reads a known file without read_table's dataset discovery (~1 ms).
            return pa.concat_tables([pq.ParquetFile(f).read(columns=columns) for f in files])
        except (pa.ArrowInvalid, OSError) as exc:
            raise RrmError(f"{files[0].parent}: unreadable Parquet ({first_line(exc)})") from None

    def tables(self) -> dict[str, dict[str, pa.Table]]:
        """Every table and split, e.g. to write a new version of the dataset."""
        return {name: {split: self.table(name, split) for split in splits}
                for name, splits in self.info.splits.items()}

    def preferences(self, split: str = "train", columns: list[str] | None = None) -> pa.Table:
        return self.table("preferences", split, columns)


def open_dataset(ref: str | Path) -> DatasetDir:
    """Open a dataset from a local directory or, failing that, a Hub id (``org/name[@rev]``,
    ``hf://datasets/org/name``) through its local snapshot in the Hugging Face cache."""
    path, hub_ref = Path(ref).expanduser(), None
    if not path.is_dir():
        from rrm_data.dataset import hub  # imported only for Hub ids: keeps local reads light

        hub_ref = hub.parse_hub_ref(str(ref))
        if hub_ref is None:
            raise RrmError(f"no dataset at '{ref}' (not a directory)")
        try:
            path = hub.snapshot(hub_ref)
        except RrmError as exc:
            if str(ref).startswith(hub.HF_PREFIX):
                raise
            raise RrmError(f"no dataset at '{ref}': not a local directory; as a Hub id: "
                           f"{exc}") from None
    dataset = DatasetDir(path, hub_ref)
    _ = dataset.info
    return dataset
