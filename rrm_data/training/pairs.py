"""A dataset's labelled pairs as arrays of step indices: what reward training (the Lightning
data module), offline preference RL (CPL) and the label-budget benchmark read, apart from any
training library."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from rrm_data.dataset.columns import segment_first_steps
from rrm_data.dataset.reader import DatasetDir
from rrm_data.errors import RrmError
from rrm_data.reward.window import episode_first


@dataclass(frozen=True)
class LabelledPairs:
    """Pairs as the global index of each segment's first step (P, 2), P(a ≻ b) (P,), and
    the first step of each segment's episode (P, 2), where a window's padding starts."""

    first: np.ndarray
    label: np.ndarray
    start: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def take(self, rows: slice | np.ndarray) -> LabelledPairs:
        return LabelledPairs(self.first[rows], self.label[rows], self.start[rows])


def segment_windows(dataset: DatasetDir) -> tuple[np.ndarray, int]:
    """Global first-step index of every segment (by segment_index) and the segment length."""
    segments = dataset.table("segments", columns=["segment_index", "episode_index", "start",
                                                  "length"])
    episodes = dataset.table("episodes", columns=["episode_index", "index_from"])
    lengths = np.unique(segments.column("length").to_numpy())
    if len(lengths) != 1:
        raise RrmError(f"{dataset.root}: segments have different lengths {lengths.tolist()}")
    first = np.empty(segments.num_rows, np.int64)
    try:
        first[segments.column("segment_index").to_numpy()] = segment_first_steps(segments,
                                                                                episodes)
    except RrmError as exc:
        raise RrmError(f"{dataset.root}: {exc}") from None
    return first, int(lengths[0])


def step_episodes(dataset: DatasetDir) -> np.ndarray:
    """The episode of every step row, from the episodes table's index ranges."""
    episodes = dataset.table("episodes", columns=["episode_index", "length", "index_from"])
    order = np.argsort(episodes.column("index_from").to_numpy(), kind="stable")
    return np.repeat(episodes.column("episode_index").to_numpy()[order],
                     episodes.column("length").to_numpy()[order])


def labelled_pairs(dataset: DatasetDir, split: str, teacher: str,
                   segment_first: np.ndarray) -> LabelledPairs:
    """One teacher's labelled pairs of a split, in ``pair_index`` order."""
    if split not in dataset.splits("preferences"):
        have = ", ".join(dataset.splits("preferences")) or "none"
        raise RrmError(f"{dataset.root}: no '{split}' preferences (its splits: {have})")
    table = dataset.preferences(split, ["pair_index", "segment_a", "segment_b", "label",
                                        "teacher"])
    mine = table.filter(pc.equal(table.column("teacher"), teacher))
    if mine.num_rows == 0:
        found = sorted(set(table.column("teacher").to_pylist()))
        raise RrmError(f"{dataset.root}: no labels of teacher '{teacher}' in split '{split}'; "
                       f"teachers there: {', '.join(found) or 'none'}")
    mine = mine.sort_by("pair_index")
    segments = np.stack([mine.column("segment_a").to_numpy(), mine.column("segment_b").to_numpy()],
                        axis=1)
    first = segment_first[segments]
    starts = np.sort(dataset.table("episodes", columns=["index_from"]).column("index_from")
                     .to_numpy())
    return LabelledPairs(first, mine.column("label").to_numpy(),
                         episode_first(first.ravel(), starts).reshape(first.shape))
