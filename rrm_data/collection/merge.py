"""Merging collection shards: check they form one collection, and read their episodes back.

Episodes are planned and seeded one by one over the whole collection, and segments are
seeded by their episode, so the shards' steps and episode rows are those of a single run;
``collector.finish_dataset`` then draws pairs and labels over all episodes as collect does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from rrm_data.collection import collector
from rrm_data.dataset.reader import DatasetDir
from rrm_data.errors import RrmError


def check_shards(shards: list[DatasetDir]) -> dict[str, Any]:
    """The shards' common collection config; fails unless they are shards 0..N-1, once each."""
    collection = shards[0].info.collection
    if not collection:
        raise RrmError(f"{shards[0].root} was not written by 'rrm-data collect'")
    seen: dict[int, Path] = {}
    total = collector.parse_shard(shards[0].info.shard)[1]
    for shard in shards:
        other = shard.info.collection
        if other != collection:
            different = sorted(k for k in collection.keys() | other.keys()
                               if collection.get(k) != other.get(k))
            raise RrmError(f"{shard.root} was collected with other settings than "
                           f"{shards[0].root} (differs in: {', '.join(different)})")
        i, n = collector.parse_shard(shard.info.shard)
        if n != total:
            raise RrmError(f"{shard.root} is shard {i}/{n} but {shards[0].root} is one of {total}")
        if i in seen:
            raise RrmError(f"{shard.root} and {seen[i]} are both shard {i}/{n}")
        seen[i] = shard.root
    missing = [f"{i}/{total}" for i in range(total) if i not in seen]
    if missing:
        raise RrmError(f"shards missing: {', '.join(missing)}")
    return collection


def episode_records(shard: DatasetDir) -> Iterator[tuple[pa.Table, dict]]:
    """(steps, episode row) of each episode of a shard, as collect's rollouts produce them."""
    steps = shard.table("steps").drop_columns(["index"])
    episodes = shard.table("episodes")
    bounds = zip(episodes.column("index_from").to_pylist(), episodes.column("index_to").to_pylist(),
                 strict=True)
    rows = episodes.drop_columns(["index_from", "index_to"]).to_pylist()
    for row, (start, stop) in zip(rows, bounds, strict=True):
        yield steps.slice(start, stop - start), row
