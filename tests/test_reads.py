"""Each command reads each Parquet file of its dataset once: the check before work and the
work itself share what was read (a spy counts real reads on a real dataset)."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from helpers import TINY_TRAIN

from rrm_data.cli import main
from rrm_data.dataset import snapshot
from rrm_data.dataset.reader import open_dataset
from rrm_data.io import Kind, atomic_directory


@pytest.fixture
def parquet_reads(monkeypatch: pytest.MonkeyPatch) -> tuple[Counter[Path], Counter[Path]]:
    """(opens, reads) per file: ParquetFile opens (footer reads, as read_metadata and
    read_schema do too) and reads of values; the real read happens each time."""
    opens: Counter[Path] = Counter()
    reads: Counter[Path] = Counter()

    def path_of(source: Any) -> Path | None:
        return Path(source).resolve() if isinstance(source, str | Path) else None

    init = pq.ParquetFile.__init__

    def spy_init(self: pq.ParquetFile, source: Any, *args: Any, **kwargs: Any) -> None:
        init(self, source, *args, **kwargs)
        self._spied = path_of(source)
        if self._spied is not None:
            opens[self._spied] += 1

    def spy_method(name: str) -> Callable[..., Any]:
        method = getattr(pq.ParquetFile, name)

        def spy(self: pq.ParquetFile, *args: Any, **kwargs: Any) -> Any:
            if getattr(self, "_spied", None) is not None:
                reads[self._spied] += 1
            return method(self, *args, **kwargs)
        return spy

    def spy_footer(read: Callable[..., Any]) -> Callable[..., Any]:
        def spy(source: Any, *args: Any, **kwargs: Any) -> Any:
            if path_of(source) is not None:
                opens[path_of(source)] += 1  # type: ignore[index]
            return read(source, *args, **kwargs)
        return spy

    read_table = pq.read_table

    def spy_read_table(source: Any, *args: Any, **kwargs: Any) -> Any:
        for item in source if isinstance(source, list) else [source]:
            if path_of(item) is not None:
                reads[path_of(item)] += 1  # type: ignore[index]
        return read_table(source, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "__init__", spy_init)
    for name in ("read", "iter_batches", "read_row_group", "read_row_groups"):
        monkeypatch.setattr(pq.ParquetFile, name, spy_method(name))
    monkeypatch.setattr(pq, "read_table", spy_read_table)
    for name in ("read_metadata", "read_schema"):  # they open the file as a stream
        monkeypatch.setattr(pq, name, spy_footer(getattr(pq, name)))
    return opens, reads


def _of(counts: Counter[Path], root: Path) -> dict[str, int]:
    root = root.resolve()
    return {p.relative_to(root).as_posix(): n for p, n in sorted(counts.items())
            if p.is_relative_to(root)}


def test_evaluate_reads_each_file_once(small_dataset: Path, trained_reward: Path,
                                       tmp_path: Path, parquet_reads) -> None:
    opens, reads = parquet_reads
    assert main(["evaluate", f"reward={trained_reward}", f"data={small_dataset}",
                 f"out={tmp_path / 'eval'}"]) == 0
    print("evaluate opens", _of(opens, small_dataset), "reads", _of(reads, small_dataset))
    assert _of(reads, small_dataset)
    assert max(_of(reads, small_dataset).values()) == 1, _of(reads, small_dataset)
    assert max(_of(opens, small_dataset).values()) == 1, _of(opens, small_dataset)


def test_train_reward_reads_each_file_once(small_dataset: Path, tmp_path: Path,
                                           parquet_reads) -> None:
    opens, reads = parquet_reads
    assert main(["train-reward", "recipe=state_residual", f"data={small_dataset}",
                 f"out={tmp_path / 'run'}", *TINY_TRAIN]) == 0
    print("train-reward opens", _of(opens, small_dataset), "reads", _of(reads, small_dataset))
    assert _of(reads, small_dataset)
    assert max(_of(reads, small_dataset).values()) == 1, _of(reads, small_dataset)
    assert max(_of(opens, small_dataset).values()) == 1, _of(opens, small_dataset)


def _publish_fewer_pairs(root: Path, rows: int) -> None:
    """Publish, in place and as one atomic step, a version of ``root`` whose train
    preferences keep their first ``rows`` rows (what another writer's publish looks like)."""
    with atomic_directory(root, Kind.DATASET, overwrite=True) as tmp:
        shutil.copytree(root, tmp, dirs_exist_ok=True)
        path = tmp / "preferences" / "train-00000-of-00001.parquet"
        pq.write_table(pq.read_table(path).slice(0, rows), path)


def test_a_dataset_is_read_from_one_version(small_dataset: Path, tmp_path: Path) -> None:
    """Tables opened with the description stay that version's while a writer publishes a new
    one in place; a fresh open sees the new version."""
    root = tmp_path / "data"
    shutil.copytree(small_dataset, root)
    dataset = open_dataset(root)
    pairs = dataset.info.counts.labels["train"]
    _publish_fewer_pairs(root, 10)
    assert dataset.preferences().num_rows == sum(pairs.values()) > 10
    assert open_dataset(root).preferences().num_rows == 10


def test_a_version_published_while_opening_is_opened_again(small_dataset: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """A publish between reading meta/info.json and opening the tables is noticed: the
    snapshot is taken again, so the description and the tables are of the same version."""
    root = tmp_path / "data"
    shutil.copytree(small_dataset, root)
    read = snapshot.read_info_json
    calls = []

    def read_then_publish(at: Path) -> object:
        info = read(at)
        calls.append(at)
        if len(calls) == 1:
            _publish_fewer_pairs(root, 10)
        return info

    monkeypatch.setattr(snapshot, "read_info_json", read_then_publish)
    dataset = open_dataset(root)
    assert len(calls) == 2
    assert dataset.preferences().num_rows == 10
