"""Turn finished episodes into the tables of a dataset: steps, episodes, segments, preferences.

Everything here is a pure function of the episodes and the labelling settings, so a
collection, a resumed collection and a merge of shards all build the same tables.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import segment_first_steps, to_numpy
from rrm_data.errors import RrmError
from rrm_data.labels.motion import PairMotion, SegmentMotion
from rrm_data.labels.sampling import (
    check_pair_count,
    sample_pairs,
    segment_starts,
    split_episodes,
)
from rrm_data.labels.teachers import TEACHERS, PairRewards, Scripted, make_teacher
from rrm_data.streams import Stream, stream


@dataclass(frozen=True)
class LabelSpec:
    """How segments, pairs and labels are drawn from the episodes."""

    seed: int = 0
    segment_length: int = 50
    segments_per_episode: int = 8
    segments: int | None = None
    pairs: int = 1000
    test_fraction: float = 0.2
    distinct_episodes: bool = True
    teachers: tuple[str, ...] = ("oracle",)
    teacher_params: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class BuiltTables:
    """Tables keyed by name then split, plus what meta/info.json records about labelling."""

    tables: dict[str, dict[str, pa.Table]]
    labelling: dict[str, Any]


def build_tables(episode_steps: list[pa.Table], episode_rows: list[dict],
                 spec: LabelSpec) -> BuiltTables:
    """Assemble all tables from per-episode steps and rows (any order; sorted here)."""
    order = np.argsort([row["episode_index"] for row in episode_rows], kind="stable")
    rows = [episode_rows[i] for i in order]
    steps = pa.concat_tables([episode_steps[i] for i in order])
    steps = steps.add_column(0, "index", pa.array(np.arange(steps.num_rows, dtype=np.int64)))
    lengths = np.array([r["length"] for r in rows], np.int64)
    index_to = np.cumsum(lengths)
    episodes = episodes_table(rows, index_to - lengths, index_to)

    rewards = steps.column(fmt.REWARD).to_numpy().astype(np.float64)
    segments, seg_rewards = _segments(rows, index_to - lengths, rewards, steps, spec)
    motion = None
    if any(TEACHERS.get(name).reads_motion for name in spec.teachers):
        motion = SegmentMotion.gather(to_numpy(steps.column(fmt.STATE)), rewards,
                                      segment_first_steps(segments, episodes),
                                      spec.segment_length)
    preferences, labelling = _preferences(segments, seg_rewards, episodes, spec, motion)
    return BuiltTables(
        tables={"steps": {"train": steps}, "episodes": {"train": episodes},
                "segments": {"train": segments}, "preferences": preferences},
        labelling=labelling,
    )


def episodes_table(rows: list[dict], index_from: np.ndarray, index_to: np.ndarray) -> pa.Table:
    """The episodes table from episode rows and their step ranges [index_from, index_to)."""
    def col(key: str) -> list:
        return [r[key] for r in rows]

    return pa.table({
        "episode_index": pa.array(col("episode_index"), pa.int64()),
        "task": pa.array(col("task"), pa.string()),
        "rand_vec": pa.array(col("rand_vec"), pa.list_(pa.float64())),
        "seed": pa.array(col("seed"), pa.int64()),
        "policy": pa.array(col("policy"), pa.string()),
        "policy_noise": pa.array(col("policy_noise"), pa.float32()),
        "length": pa.array(col("length"), pa.int64()),
        "return": pa.array(col("return"), pa.float32()),
        "success": pa.array(col("success"), pa.bool_()),
        "index_from": pa.array(index_from, pa.int64()),
        "index_to": pa.array(index_to, pa.int64()),
    })


def _segment_counts(n_episodes: int, spec: LabelSpec) -> np.ndarray:
    if spec.segments is None:
        return np.full(n_episodes, spec.segments_per_episode, np.int64)
    base, extra = divmod(spec.segments, n_episodes)
    return np.array([base + (i < extra) for i in range(n_episodes)], np.int64)


def _segments(rows: list[dict], index_from: np.ndarray, rewards: np.ndarray, steps: pa.Table,
              spec: LabelSpec) -> tuple[pa.Table, np.ndarray]:
    """Windows of each episode, seeded by the episode's own seed (shard-independent)."""
    length = spec.segment_length
    counts = _segment_counts(len(rows), spec)
    episode_parts: list[np.ndarray] = []
    start_parts: list[np.ndarray] = []
    for row, count in zip(rows, counts, strict=True):
        rng = stream(row["seed"], Stream.SEGMENTS)
        s = segment_starts(row["length"], length, int(count), rng)
        episode_parts.append(np.full(len(s), row["episode_index"], np.int64))
        start_parts.append(s)
    episode_ids, starts = np.concatenate(episode_parts), np.concatenate(start_parts)
    if len(starts) == 0:
        raise RrmError(f"no segments: every episode is shorter than segment_length={length}")
    position = {r["episode_index"]: i for i, r in enumerate(rows)}
    first = index_from[[position[e] for e in episode_ids]] + starts
    return segments_table(episode_ids, starts, first, length, rewards, steps)


def segments_table(episode_ids: np.ndarray, starts: np.ndarray, first: np.ndarray, length: int,
                   rewards: np.ndarray, steps: pa.Table, first_id: int = 0
                   ) -> tuple[pa.Table, np.ndarray]:
    """The segments table of windows (episode, start) whose first global step is ``first``,
    numbered from ``first_id``; also their true per-step rewards (segments, length)."""
    window = first[:, None] + np.arange(length)[None, :]
    seg_rewards = rewards[window]
    columns = {
        "segment_index": pa.array(np.arange(first_id, first_id + len(starts), dtype=np.int64)),
        "episode_index": pa.array(np.asarray(episode_ids, np.int64)),
        "start": pa.array(np.asarray(starts, np.int64)),
        "length": pa.array(np.full(len(starts), length, np.int64)),
        "return": pa.array(seg_rewards.sum(axis=1).astype(np.float32)),
    }
    for column in fmt.prior_columns(steps.column_names):
        prior = steps.column(column).to_numpy().astype(np.float64)
        columns[fmt.segment_prior_column(fmt.prior_name(column))] = pa.array(
            prior[window].sum(axis=1).astype(np.float32))
    return pa.table(columns), seg_rewards


def _split_pairs(episode_ids: np.ndarray, seg_episode: np.ndarray, spec: LabelSpec,
                 rng: np.random.Generator
                 ) -> tuple[np.ndarray, dict[str, int], dict[str, np.ndarray]]:
    """The held-out test episodes, and each split's pair count and pool of segment ids."""
    test_episodes = episode_ids[split_episodes(episode_ids, spec.test_fraction, rng,
                                               min_each=2 if spec.distinct_episodes else 1)]
    in_test = np.isin(seg_episode, test_episodes)
    n_test = int(round(spec.pairs * spec.test_fraction)) if in_test.any() else 0
    counts = {"train": spec.pairs - n_test, "test": n_test}
    pools = {"train": np.flatnonzero(~in_test), "test": np.flatnonzero(in_test)}
    return test_episodes, counts, pools


def check_pair_budget(episode_ids: np.ndarray, spec: LabelSpec) -> None:
    """Refuse, before any rollout, pair counts that the segments cannot make: segments and
    test episodes are drawn as ``build_tables`` draws them, assuming every episode is at
    least ``segment_length`` long (collect checks that) so each yields its full count."""
    seg_episode = np.repeat(episode_ids, _segment_counts(len(episode_ids), spec))
    rng = stream(spec.seed, Stream.PAIRS)
    _, counts, pools = _split_pairs(episode_ids, seg_episode, spec, rng)
    for split in fmt.SPLITS:
        check_pair_count(pools[split], seg_episode, counts[split], spec.distinct_episodes, split)


def teacher_labels(name: str, teacher: Scripted, pairs: PairRewards, pair_index: np.ndarray,
                   a: np.ndarray, b: np.ndarray, seed: int, split_id: int
                   ) -> tuple[pa.Table, int]:
    """One teacher's preference rows for a split's pairs, and how many it skipped. Its
    generator is seeded by (labelling seed, teacher name, split) alone, so labelling a
    stored dataset later (``rrm-data label``) gives the labels collect would have given."""
    t_rng = stream(seed, Stream.TEACHER, zlib.crc32(name.encode()), split_id)
    labels = teacher.label(pairs, t_rng)
    keep = ~np.isnan(labels)
    return pa.table({
        "pair_index": pa.array(pair_index[keep]),
        "segment_a": pa.array(a[keep]),
        "segment_b": pa.array(b[keep]),
        "label": pa.array(labels[keep].astype(np.float32)),
        "teacher": pa.array([name] * int(keep.sum()), pa.string()),
    }), int((~keep).sum())


def _preferences(segments: pa.Table, seg_rewards: np.ndarray, episodes: pa.Table,
                 spec: LabelSpec, motion: SegmentMotion | None
                 ) -> tuple[dict[str, pa.Table], dict[str, Any]]:
    rng = stream(spec.seed, Stream.PAIRS)
    seg_episode = segments.column("episode_index").to_numpy()
    test_episodes, counts, pools = _split_pairs(episodes.column("episode_index").to_numpy(),
                                                seg_episode, spec, rng)

    teachers = {name: make_teacher(name, spec.teacher_params.get(name)) for name in spec.teachers}
    if "oracle" not in teachers:
        teachers_test = {"oracle": make_teacher("oracle"), **teachers}
    else:
        teachers_test = teachers
    mean_return = float(seg_rewards.sum(axis=1).mean())
    tables: dict[str, pa.Table] = {}
    skipped: dict[str, dict[str, int]] = {}
    next_pair = 0
    for split_id, split in enumerate(fmt.SPLITS):
        a, b = sample_pairs(pools[split], seg_episode, counts[split], rng,
                            spec.distinct_episodes, split)
        pair_index = np.arange(next_pair, next_pair + len(a), dtype=np.int64)
        next_pair += len(a)
        pairs = PairRewards(seg_rewards[a], seg_rewards[b], mean_return,
                            None if motion is None else PairMotion(motion, a, b))
        parts, skipped[split] = [], {}
        for name, teacher in (teachers if split == "train" else teachers_test).items():
            rows, skipped[split][name] = teacher_labels(name, teacher, pairs, pair_index, a, b,
                                                        spec.seed, split_id)
            parts.append(rows)
        tables[split] = pa.concat_tables(parts)
    labelling = {
        "mean_segment_return": mean_return,
        "teachers": {name: t.params() for name, t in teachers_test.items()},
        "test_episodes": sorted(int(e) for e in test_episodes),
        "pairs": {split: int(counts[split]) for split in fmt.SPLITS},
        "skipped": skipped,
    }
    return tables, labelling


def label_counts(preferences: dict[str, pa.Table]) -> dict[str, dict[str, int]]:
    """Rows per teacher in each split."""
    out: dict[str, dict[str, int]] = {}
    for split, table in preferences.items():
        counts = pc.value_counts(table.column("teacher")).to_pylist()
        out[split] = {c["values"]: int(c["counts"]) for c in counts}
    return out
