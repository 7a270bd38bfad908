"""The Hugging Face Hub: dataset ids, tokens, local snapshots, and the tree a publish uploads.

Reading: ``org/name[@revision]`` or ``hf://datasets/org/name[@revision]`` resolves to a
local snapshot through ``huggingface_hub.snapshot_download``, so the Hugging Face cache
and ``HF_HUB_OFFLINE`` work as everywhere else in the ecosystem.

Publishing: the dataset is laid out as the exact tree the Hub will hold (tables resharded
under the Hub's file-size and files-per-folder limits, the card re-rendered), and that
tree becomes one commit. The token is only ever handed to ``huggingface_hub``.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from rrm_data.dataset.format import parquet_options, shard_name, shard_split
from rrm_data.errors import RrmError, first_line
from rrm_data.io import remove_owned

HF_PREFIX = "hf://datasets/"
MB = 1_000_000
LOGIN_HINT = "run `hf auth login` (or `huggingface-cli login`), or set the HF_TOKEN variable"


# --- dataset ids ------------------------------------------------------------------------------

@dataclass(frozen=True)
class HubRef:
    """A dataset repository on the Hub, optionally at a revision (branch, tag or commit)."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id


def parse_hub_ref(ref: str) -> HubRef | None:
    """``org/name[@rev]`` or ``hf://datasets/org/name[@rev]`` as a HubRef; None if it is not one."""
    text = str(ref)
    explicit = text.startswith(HF_PREFIX)
    if explicit:
        text = text[len(HF_PREFIX):].rstrip("/")
    repo_id, _, revision = text.partition("@")
    try:
        check_repo_id(repo_id)
    except RrmError:
        if explicit:
            raise
        return None
    return HubRef(repo_id, revision or None)


def check_repo_id(repo_id: str) -> str:
    """Accept only ``namespace/name`` ids the Hub would accept; one clear line otherwise."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise RrmError(f"invalid repo id '{repo_id}': {first_line(exc)}") from None
    if repo_id.count("/") != 1:
        raise RrmError(f"invalid repo id '{repo_id}': expected namespace/name, "
                       "e.g. my-org/bp-prefs")
    return repo_id


# --- reading ----------------------------------------------------------------------------------

def snapshot(ref: HubRef) -> Path:
    """The local snapshot folder of a Hub dataset (downloaded, or from the cache when offline)."""
    where = str(ref)
    try:
        folder = huggingface_hub.snapshot_download(ref.repo_id, repo_type="dataset",
                                                   revision=ref.revision)
    except RevisionNotFoundError:
        raise RrmError(f"dataset {ref.repo_id} on the Hub has no revision "
                       f"'{ref.revision}'") from None
    except RepositoryNotFoundError:
        raise RrmError(f"no dataset {ref.repo_id} on the Hub (or it is private/gated: "
                       f"{LOGIN_HINT})") from None
    except LocalEntryNotFoundError:
        offline = huggingface_hub.constants.HF_HUB_OFFLINE
        why = "HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached"
        raise RrmError(f"dataset {where} is not in the local Hugging Face cache "
                       f"({huggingface_hub.constants.HF_HUB_CACHE}) and {why}") from None
    except HfHubHTTPError as exc:
        raise RrmError(f"cannot download dataset {where}: {first_line(exc)}") from None
    return Path(folder)


# --- token ------------------------------------------------------------------------------------

def upload_token() -> str:
    """The user's token from HF_TOKEN or the Hub login; never stored or printed by rrm-data."""
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise RrmError("HF_HUB_OFFLINE is set: unset it to publish, or pass dry_run=true")
    token = huggingface_hub.get_token()
    if not token:
        raise RrmError(f"no Hugging Face token: {LOGIN_HINT}")
    return token


# --- the tree a publish uploads ---------------------------------------------------------------

@dataclass(frozen=True)
class HubLimits:
    """The Hub's per-file size and per-folder file count (smaller values are useful in tests)."""

    max_file_bytes: int = 500 * MB
    max_files_per_folder: int = 10_000


def build_tree(root: Path, out: Path, limits: HubLimits,
               render_readme: Callable[[dict[str, list[str]]], str]) -> dict[str, list[str]]:
    """Lay out ``root`` under ``out`` as the Hub will hold it; returns the tables and splits.

    Hidden files and the old card are left out; Parquet shards within the size limit are
    copied as they are, larger table splits are rewritten in smaller shards; the card is
    rendered last from the tables actually present (``render_readme(splits)``).
    """
    tables: dict[str, dict[str, list[Path]]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        split = shard_split(path.name)
        if split and rel.parent != Path("."):
            tables.setdefault(rel.parent.as_posix(), {}).setdefault(split, []).append(path)
        elif rel != Path("README.md"):
            _check_size(rel.as_posix(), path.stat().st_size, limits)
            _copy(path, out / rel)
    for table, by_split in tables.items():
        for split, files in by_split.items():
            if max(f.stat().st_size for f in files) <= limits.max_file_bytes:
                for f in files:
                    _copy(f, out / table / f.name)
            else:
                reshard(files, out / table, split, limits.max_file_bytes)
    splits = {table: sorted(s) for table, s in tables.items()}
    (out / "README.md").write_text(render_readme(splits))
    _check_size("README.md", (out / "README.md").stat().st_size, limits)
    _check_folders(out, limits)
    return splits


def tree_files(tree: Path) -> list[tuple[str, int]]:
    """``(path in repo, size in bytes)`` of every file of a built tree, sorted by path."""
    return sorted((p.relative_to(tree).as_posix(), p.stat().st_size)
                  for p in tree.rglob("*")
                  if p.is_file() and not p.relative_to(tree).as_posix().startswith("."))


def reshard(files: list[Path], folder: Path, split: str, max_bytes: int) -> list[Path]:
    """Rewrite one table split as ``<split>-i-of-n`` shards of at most ``max_bytes`` each."""
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    size = sum(f.stat().st_size for f in files)
    per_shard = max(1, int(rows * max_bytes * 0.9 // max(size, 1)))
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        written = _write_shards(files, folder, split, per_shard, rows)
        largest = max(p.stat().st_size for p in written)
        if largest <= max_bytes:
            return written
        for p in written:
            remove_owned(p)
        if per_shard == 1:
            raise RrmError(f"{folder.name}/{split}: one row takes {largest / MB:.3g} MB, over the "
                           f"file-size limit of {max_bytes / MB:.3g} MB (max_file_mb)")
        per_shard = max(1, int(per_shard * max_bytes * 0.9 // largest))


def _write_shards(files: list[Path], folder: Path, split: str, per_shard: int,
                  rows: int) -> list[Path]:
    n = max(1, -(-rows // per_shard))
    paths = [folder / shard_name(split, i, n) for i in range(n)]
    schema = pq.read_schema(files[0])
    batches = _batches(files, per_shard)
    for path in paths:
        with pq.ParquetWriter(path, schema, **parquet_options(schema)) as writer:
            writer.write_table(pa.Table.from_batches(next(batches), schema))
    return paths


def _batches(files: list[Path], rows: int) -> Iterator[list[pa.RecordBatch]]:
    """The rows of ``files`` in order, regrouped into lists of batches of ``rows`` rows."""
    group: list[pa.RecordBatch] = []
    have = 0
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=min(rows, 65_536)):
            while batch.num_rows:
                take = batch.slice(0, rows - have)
                group.append(take)
                have += take.num_rows
                batch = batch.slice(take.num_rows)
                if have == rows:
                    yield group
                    group, have = [], 0
    if group:
        yield group


def _copy(src: Path, dst: Path) -> None:
    """Copy a file into the tree: never a link, so editing the tree cannot edit the dataset."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src.resolve(), dst)  # snapshots in the HF cache are symlinks into blobs/


def _check_size(path: str, size: int, limits: HubLimits) -> None:
    if size > limits.max_file_bytes:
        raise RrmError(f"{path} is {size / MB:.3g} MB, over the Hub's file-size limit of "
                       f"{limits.max_file_bytes / MB:.3g} MB (max_file_mb)")


def _check_folders(tree: Path, limits: HubLimits) -> None:
    counts = Counter(p.parent.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
    for folder, count in sorted(counts.items()):
        if count > limits.max_files_per_folder:
            raise RrmError(f"{folder}/ would hold {count} files, over the Hub's limit of "
                           f"{limits.max_files_per_folder} per folder (max_files_per_folder)")


# --- upload -----------------------------------------------------------------------------------

def commit_operations(tree: Path) -> list[CommitOperationAdd]:
    """One ``CommitOperationAdd`` per file of the tree, streamed from disk."""
    return [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(tree / path))
            for path, _ in tree_files(tree)]


def upload_tree(tree: Path, repo_id: str, token: str, private: bool, revision: str,
                message: str) -> str:
    """Create the dataset repo if needed and upload the whole tree as ONE commit; its URL."""
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision != huggingface_hub.constants.DEFAULT_REVISION:
            api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
        info = api.create_commit(repo_id, commit_operations(tree), commit_message=message,
                                 repo_type="dataset", revision=revision)
    except HfHubHTTPError as exc:
        raise RrmError(f"the Hub refused the upload to {repo_id}: {first_line(exc)}") from exc
    except Exception as exc:  # the transport's own errors differ across huggingface_hub versions
        raise RrmError(f"upload to {api.endpoint} failed: {type(exc).__name__}: "
                       f"{first_line(exc)}") from exc
    return info.commit_url

