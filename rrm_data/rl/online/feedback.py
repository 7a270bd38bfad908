"""Every query the online loop asked, written as an ``rrm-data/1`` dataset.

The train split holds the teacher's answers (skipped queries are counted, not stored);
the test split holds oracle labels of windows of episodes that no query touched (held out,
as ``collect`` holds them out), drawn at the end and never shown to the learner nor counted
in the budget, so ``train-reward`` and ``evaluate`` can measure agreement on it as on any
collected dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from rrm_data.collection.meta import make_info
from rrm_data.dataset import format as fmt
from rrm_data.dataset.observation import ACTION_NAMES, STATE_NAMES
from rrm_data.dataset.writer import write_dataset
from rrm_data.labels.tables import BuiltTables, episodes_table, segments_table
from rrm_data.labels.teachers import Oracle, PairRewards
from rrm_data.rl.online.episodes import EpisodeStore
from rrm_data.rl.online.queries import Queries, random_pairs
from rrm_data.streams import Stream, stream


@dataclass
class LabelLog:
    """Queries asked so far and their answers (NaN: skipped), in the order asked."""

    episode_a: list[int] = field(default_factory=list)
    start_a: list[int] = field(default_factory=list)
    episode_b: list[int] = field(default_factory=list)
    start_b: list[int] = field(default_factory=list)
    label: list[float] = field(default_factory=list)

    def add(self, queries: Queries, labels: np.ndarray) -> None:
        self.episode_a += queries.episode_a.tolist()
        self.start_a += queries.start_a.tolist()
        self.episode_b += queries.episode_b.tolist()
        self.start_b += queries.start_b.tolist()
        self.label += [float(x) for x in labels]

    def __len__(self) -> int:
        return len(self.label)

    def answered(self) -> np.ndarray:
        return np.flatnonzero(~np.isnan(np.asarray(self.label, np.float64)))

    def queries(self, rows: np.ndarray, length: int) -> Queries:
        """The answered queries ``rows`` (true rewards left empty: not needed to train)."""
        def column(values: list[int]) -> np.ndarray:
            return np.asarray(values, np.int64)[rows]

        empty = np.zeros((len(rows), 0))
        return Queries(episode_a=column(self.episode_a), start_a=column(self.start_a),
                       episode_b=column(self.episode_b), start_b=column(self.start_b),
                       length=length, rewards_a=empty, rewards_b=empty)

    def episodes(self) -> set[int]:
        return set(self.episode_a) | set(self.episode_b)

    def to_dict(self) -> dict[str, list]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, list]) -> LabelLog:
        return cls(**{k: list(v) for k, v in data.items()})


def write_feedback(out: Path, store: EpisodeStore, log: LabelLog, *, length: int, teacher: str,
                   teacher_params: Mapping[str, float], test_pairs: int, seed: int,
                   collection: Mapping[str, Any], fps: float) -> None:
    """Write the queries of ``log`` as a dataset, with ``test_pairs`` oracle test pairs of
    the stored episodes no query touched (none when fewer than two are left)."""
    keep = log.answered()
    asked = log.queries(keep, length)
    queried = log.episodes()
    held_out = [e for e in store.on_disk() if e not in queried]
    rng = stream(seed, Stream.FEEDBACK_TEST)
    test = (random_pairs(store.episode, held_out, count=test_pairs, length=length, rng=rng)
            if test_pairs and len(held_out) >= 2 else None)
    tested = set[int]() if test is None else {int(e) for e in (*test.episode_a, *test.episode_b)}
    used = sorted(queried | tested)
    number = {e: i for i, e in enumerate(used)}
    records = [store.read(e) for e in used]
    steps_parts, rows = [], []
    for (steps, row), e in zip(records, used, strict=True):
        steps_parts.append(steps.set_column(
            steps.schema.get_field_index("episode_index"), "episode_index",
            pa.array(np.full(steps.num_rows, number[e], np.int64))))
        rows.append({**row, "episode_index": number[e]})
    steps = pa.concat_tables(steps_parts)
    steps = steps.add_column(0, "index", pa.array(np.arange(steps.num_rows, dtype=np.int64)))
    lengths = np.array([r["length"] for r in rows], np.int64)
    index_to = np.cumsum(lengths)
    index_from = index_to - lengths

    sides = [(asked.episode_a, asked.start_a), (asked.episode_b, asked.start_b)]
    if test is not None:
        sides += [(test.episode_a, test.start_a), (test.episode_b, test.start_b)]
    # Segments: train a, train b, test a, test b (each block in pair order).
    seg_episode = np.concatenate([np.array([number[int(e)] for e in eps], np.int64)
                                  for eps, _ in sides])
    seg_start = np.concatenate([np.asarray(s, np.int64) for _, s in sides])
    rewards = steps.column(fmt.REWARD).to_numpy().astype(np.float64)
    segments, seg_rewards = segments_table(seg_episode, seg_start,
                                           index_from[seg_episode] + seg_start, length,
                                           rewards, steps)
    n_train, n_test = len(asked), 0 if test is None else len(test)
    ids = np.arange(len(seg_episode), dtype=np.int64)
    preferences = {"train": _preferences(np.arange(len(log), dtype=np.int64)[keep],
                                         ids[:n_train], ids[n_train:2 * n_train],
                                         np.asarray(log.label, np.float64)[keep], teacher)}
    if test is not None:
        a, b = ids[2 * n_train:2 * n_train + n_test], ids[2 * n_train + n_test:]
        oracle = Oracle().label(PairRewards(seg_rewards[a], seg_rewards[b], 0.0), rng)
        preferences["test"] = _preferences(np.arange(len(log), len(log) + n_test), a, b,
                                           oracle, "oracle")
    teachers = {teacher: dict(teacher_params), "oracle": {}}
    built = BuiltTables(
        tables={"steps": {"train": steps},
                "episodes": {"train": episodes_table(rows, index_from, index_to)},
                "segments": {"train": segments}, "preferences": preferences},
        labelling={
            "mean_segment_return": float(seg_rewards.sum(axis=1).mean()),
            "teachers": teachers,
            "test_episodes": sorted({int(x) for x in seg_episode[2 * n_train:]}),
            "pairs": {"train": len(log), "test": n_test},
            "skipped": {"train": {teacher: len(log) - len(keep)},
                        "test": {"oracle": 0} if test is not None else {}},
        })
    info = make_info(out.name, built, dict(collection), fps=fps, cameras=[])
    write_dataset(out, built.tables, info, overwrite=True,
                  names={fmt.STATE: STATE_NAMES, fmt.ACTION: ACTION_NAMES})


def _preferences(pair_index: np.ndarray, a: np.ndarray, b: np.ndarray, labels: np.ndarray,
                 teacher: str) -> pa.Table:
    return pa.table({
        "pair_index": pa.array(np.asarray(pair_index, np.int64)),
        "segment_a": pa.array(np.asarray(a, np.int64)),
        "segment_b": pa.array(np.asarray(b, np.int64)),
        "label": pa.array(np.asarray(labels, np.float32)),
        "teacher": pa.array([teacher] * len(a), pa.string()),
    })
