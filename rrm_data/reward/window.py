"""Windows of steps, in one place: which rows r̂_t reads, and those rows' columns gathered.

A reward declares its ``Window`` (length k, stride); every consumer (scoring, query
selection, relabelling, the environment wrappers) turns the steps it wants scored into
windowed columns here, shape (N, k, ...) oldest step first, and hands them to
``reward.score``. Windows never cross an episode's start: earlier positions repeat the
episode's first step. For k = 1 the window axis is a view of the columns themselves, so
Markovian rewards pay nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from rrm_data.dataset.columns import step_columns
from rrm_data.dataset.reader import DatasetDir
from rrm_data.reward.spec import Window

ONE_STEP = Window()  # a Markovian reward's window


def episode_first(rows: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The first row of each row's episode, given every episode's first row (sorted)."""
    starts = np.asarray(starts, np.int64)
    return starts[np.searchsorted(starts, np.asarray(rows, np.int64), side="right") - 1]


def first_rows(new_episode: np.ndarray) -> np.ndarray:
    """Each row's episode first row, for rows in time order where ``new_episode`` marks the
    first step of an episode (row 0 always starts one)."""
    marks = np.where(np.asarray(new_episode, bool), np.arange(len(new_episode)), 0)
    return np.maximum.accumulate(marks) if len(marks) else marks.astype(np.int64)


def window_index(rows: np.ndarray, first: np.ndarray, window: Window) -> np.ndarray:
    """(N, k) rows each row's window reads: row − (k − 1 − j)·stride for j = 0 … k − 1,
    padded at ``first`` (the row's episode first row) by repeating it."""
    offsets = (np.arange(window.length, dtype=np.int64) - (window.length - 1)) * window.stride
    rows, first = np.asarray(rows, np.int64), np.asarray(first, np.int64)
    return np.maximum(rows[:, None] + offsets, first[:, None])


def segment_runs(last: np.ndarray, first: np.ndarray, length: int,
                 window: Window) -> np.ndarray:
    """(N, length + span − 1) rows a segment of ``length`` steps ending at ``last`` is scored
    from: its steps after the span − 1 steps its first window reads, padded at ``first``
    (what ``RewardNetwork.segment_rewards`` reads; for k = 1 the segment itself)."""
    return window_index(last, first, Window(length + window.span - 1))


def windowed(load: Callable[[np.ndarray], Mapping[str, np.ndarray]], rows: np.ndarray,
             first: np.ndarray, window: Window) -> dict[str, np.ndarray]:
    """Columns (N, k, ...) of the windows ending at ``rows``; ``load(r)`` returns the
    columns of the sorted distinct rows ``r`` (so each step is read once)."""
    if window.length == 1:
        return {c: v[:, None] for c, v in load(np.asarray(rows, np.int64)).items()}
    index = window_index(rows, first, window)
    needed = np.unique(index)
    at = np.searchsorted(needed, index)
    return {c: v[at] for c, v in load(needed).items()}


def dataset_windows(dataset: DatasetDir, names: Sequence[str], window: Window,
                    rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Windowed steps columns (N, k, ...) of a dataset's sorted distinct step ``rows``
    (default: every step), each window inside its episode (from the episodes table)."""
    if rows is None:
        rows = np.arange(dataset.info.counts.steps, dtype=np.int64)
    starts = np.sort(dataset.table("episodes", columns=["index_from"]).column("index_from")
                     .to_numpy())
    return windowed(lambda r: step_columns(dataset, names, rows=r), rows,
                    episode_first(rows, starts), window)


def newest(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The window's last step (step t itself) of each column: what a Markovian reward reads."""
    return {c: v[:, -1] for c, v in columns.items()}
