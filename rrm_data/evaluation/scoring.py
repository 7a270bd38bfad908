"""Score a dataset split with a reward: per-step parts, segment and episode returns, per pair.

A split's labelled pairs decide which segments and episodes belong to it. Only the steps
that those windows cover are read and scored; returns are window sums of the per-step
reward, summed exactly as the collector summed the true reward for its teachers (so the
true reward reproduces the oracle's labels bit for bit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from rrm_data.errors import RrmError
from rrm_data.evaluation.metrics import preference_probability
from rrm_data.reader import DatasetDir
from rrm_data.reward.base import RewardFunction, RewardOutput
from rrm_data.reward.columns import step_columns

TIE = 0.5
PARTS = RewardOutput._fields


def policy_label(policy: str, noise: float) -> str:
    """``expert:0.5``, ``random``: the spec the episode was collected with."""
    return f"{policy}:{noise:g}" if policy == "expert" else policy


@dataclass(frozen=True)
class SplitData:
    """One split's labelled pairs (``seg_a``/``seg_b`` are row positions in ``segments``),
    the segments they compare and the episodes those segments come from."""

    dataset: DatasetDir
    split: str
    teacher: str | None
    pairs: pd.DataFrame
    segments: pd.DataFrame
    episodes: pd.DataFrame


def load_split(dataset: DatasetDir, split: str, teacher: str | None = "oracle") -> SplitData:
    """Read a split's pairs (of one teacher, or all when ``teacher`` is None) and their context."""
    prefs = dataset.preferences(split)
    if teacher is not None:
        present = sorted(set(prefs.column("teacher").to_pylist()))
        prefs = prefs.filter(pc.equal(prefs.column("teacher"), teacher))
        if prefs.num_rows == 0:
            raise RrmError(f"{dataset.root}: split '{split}' has no '{teacher}' labels "
                           f"(teachers there: {', '.join(present) or 'none'})")
    pairs = prefs.to_pandas()
    episodes = dataset.table("episodes").to_pandas()
    segments = dataset.table("segments").to_pandas()

    seg_pos = pd.Index(segments["segment_index"])
    pairs["seg_a"] = seg_pos.get_indexer(pairs["segment_a"])
    pairs["seg_b"] = seg_pos.get_indexer(pairs["segment_b"])
    if (pairs[["seg_a", "seg_b"]] < 0).any(axis=None):
        raise RrmError(f"{dataset.root}: preferences point at segments that do not exist")
    used = np.unique(pairs[["seg_a", "seg_b"]].to_numpy())
    segments = segments.iloc[used].reset_index(drop=True)
    pairs["seg_a"] = np.searchsorted(used, pairs["seg_a"])
    pairs["seg_b"] = np.searchsorted(used, pairs["seg_b"])

    episodes = episodes[episodes["episode_index"].isin(segments["episode_index"])]
    episodes = episodes.sort_values("episode_index").reset_index(drop=True)
    episodes["policy"] = [policy_label(p, n) for p, n in
                          zip(episodes["policy"], episodes["policy_noise"], strict=True)]
    context = episodes.set_index("episode_index").loc[segments["episode_index"]]
    segments["first"] = context["index_from"].to_numpy() + segments["start"].to_numpy()
    segments["task"] = context["task"].to_numpy()
    segments["policy"] = context["policy"].to_numpy()
    return SplitData(dataset, split, teacher, pairs, segments, episodes)


def window_rows(first: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Sorted distinct step rows covered by windows [first, first + length)."""
    if len(first) == 0:
        return np.empty(0, np.int64)
    return np.unique(np.concatenate([np.arange(f, f + n) for f, n in zip(first, length,
                                                                          strict=True)]))


@dataclass(frozen=True)
class StepScores:
    """A reward's per-step parts on the step rows ``rows`` (sorted global indices)."""

    reward: str
    rows: np.ndarray
    output: RewardOutput

    def window_sums(self, first: np.ndarray, length: np.ndarray) -> RewardOutput:
        """Sum of each part over windows [first, first + length) (rows must be scored)."""
        first, length = np.asarray(first, np.int64), np.asarray(length, np.int64)
        sums = [np.zeros(len(first)) for _ in PARTS]
        for n in np.unique(length):
            which = length == n
            at = np.searchsorted(self.rows, first[which][:, None] + np.arange(n)[None, :])
            for total, values in zip(sums, self.output, strict=True):
                total[which] = values[at].sum(axis=1)
        return RewardOutput(*sums)

    def window(self, first: int, length: int) -> RewardOutput:
        """Per-step parts of one window, in time order."""
        at = np.searchsorted(self.rows, np.arange(first, first + length))
        return RewardOutput(*(values[at] for values in self.output))


def score_rows(reward: RewardFunction, columns: Mapping[str, np.ndarray],
               rows: np.ndarray) -> StepScores:
    """Score the given step rows; every part comes back as float64 of shape (len(rows),)."""
    output = reward.score({name: columns[name][rows] for name in reward.columns})
    parts = [np.asarray(p, np.float64).reshape(-1) for p in output]
    if any(len(p) != len(rows) for p in parts):
        raise RrmError(f"reward {reward.name} returned {len(parts[0])} values "
                       f"for {len(rows)} steps")
    return StepScores(reward.name, rows, RewardOutput(*parts))


def score_steps(reward: RewardFunction, data: SplitData, whole_episodes: bool) -> StepScores:
    """Score the split's segments (and, if asked, the whole episodes they come from)."""
    if whole_episodes:
        rows = window_rows(data.episodes["index_from"], data.episodes["length"])
    else:
        rows = window_rows(data.segments["first"], data.segments["length"])
    return score_rows(reward, step_columns(data.dataset, reward.columns), rows)


def pair_frame(data: SplitData, segment_scores: np.ndarray) -> pd.DataFrame:
    """Per-pair results, like RewardBench's rows: scores, P(A ≻ B), label, strict correctness.

    ``correct`` is null on tie labels (0.5); otherwise true only when the score difference
    has the label's sign (a predicted tie counts as wrong).
    """
    pairs = data.pairs
    score_a = segment_scores[pairs["seg_a"].to_numpy()]
    score_b = segment_scores[pairs["seg_b"].to_numpy()]
    label = pairs["label"].to_numpy(np.float64)
    tie = label == TIE
    correct = pd.array(np.sign(score_a - score_b) == np.sign(label - TIE), dtype="boolean")
    correct[tie] = pd.NA
    return pd.DataFrame({
        "pair_index": pairs["pair_index"].to_numpy(),
        "teacher": pairs["teacher"].to_numpy(),
        "segment_a": pairs["segment_a"].to_numpy(),
        "segment_b": pairs["segment_b"].to_numpy(),
        "score_a": score_a,
        "score_b": score_b,
        "p_a": preference_probability(score_a - score_b),
        "label": label.astype(np.float32),
        "correct": correct,
    })
