"""Segments (windows of episodes) and pairs of segments to be labelled.

Test pairs come from a held-out set of episodes, so a test pair never shares a
segment (or even an episode) with a train pair.
"""

from __future__ import annotations

import numpy as np

from rrm_data.dataset.columns import pair_keys
from rrm_data.errors import RrmError


def segment_starts(length: int, segment_length: int, count: int,
                   rng: np.random.Generator) -> np.ndarray:
    """``count`` window starts drawn uniformly inside an episode of ``length`` steps, sorted."""
    if length < segment_length:
        return np.empty(0, np.int64)
    return np.sort(rng.integers(0, length - segment_length + 1, size=count)).astype(np.int64)


def split_episodes(episode_indices: np.ndarray, test_fraction: float,
                   rng: np.random.Generator, min_each: int = 1) -> np.ndarray:
    """Boolean mask over episodes: True for those held out for the test split.

    Each split keeps at least ``min_each`` episodes when there are enough (two are
    needed to pair segments of different episodes).
    """
    n = len(episode_indices)
    n_test = int(round(test_fraction * n))
    if test_fraction > 0 and n >= 2 * min_each:
        n_test = min(max(n_test, min_each), n - min_each)
    mask = np.zeros(n, bool)
    mask[rng.permutation(n)[:n_test]] = True
    return mask


def count_pairs(pool: np.ndarray, segment_episode: np.ndarray, distinct_episodes: bool) -> int:
    """How many distinct unordered pairs the segments of ``pool`` make (of different episodes
    when ``distinct_episodes``)."""
    n = len(pool)
    total = n * (n - 1) // 2
    if distinct_episodes:
        per_episode = np.unique(segment_episode[pool], return_counts=True)[1].astype(np.int64)
        total -= int((per_episode * (per_episode - 1) // 2).sum())
    return total


def check_pair_count(pool: np.ndarray, segment_episode: np.ndarray, count: int,
                     distinct_episodes: bool, split: str) -> int:
    """Refuse ``count`` pairs of a split whose segments make fewer; return how many they make."""
    available = count_pairs(pool, segment_episode, distinct_episodes)
    if count > available:
        what = "of different episodes " if distinct_episodes else ""
        fix = "lower pairs or test_fraction" if split == "test" else "lower pairs"
        raise RrmError(f"{count} {split} pairs asked for, but its {len(pool)} segments make only "
                       f"{available} distinct pairs {what}({fix}, or collect more episodes or "
                       "segments)")
    return available


def sample_pairs(pool: np.ndarray, segment_episode: np.ndarray, count: int,
                 rng: np.random.Generator, distinct_episodes: bool = True, split: str = "train"
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``count`` distinct pairs uniformly, without replacement, from the segment ids in
    ``pool``: no pair twice (in either order), no segment with itself and, by default, no two
    segments of one episode. Asking for more pairs than exist is refused with the maximum."""
    if count == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    available = check_pair_count(pool, segment_episode, count, distinct_episodes, split)
    n = len(pool)
    if 2 * count > available:  # most pairs wanted: list them all and choose, no redraws
        i, j = np.triu_indices(n, k=1)
        if distinct_episodes:
            keep = segment_episode[pool[i]] != segment_episode[pool[j]]
            i, j = i[keep], j[keep]
        pick = rng.choice(len(i), size=count, replace=False)
        swap = rng.random(count) < 0.5  # either segment may come first, as in the draws below
        a, b = np.where(swap, j[pick], i[pick]), np.where(swap, i[pick], j[pick])
        return pool[a].astype(np.int64), pool[b].astype(np.int64)
    kept_a: list[np.ndarray] = []
    kept_b: list[np.ndarray] = []
    seen = np.empty(0, np.int64)
    have = 0
    while have < count:  # rounds of vectorized draws; duplicates and invalid pairs redrawn
        size = 2 * (count - have) + 16
        i, j = rng.integers(0, n, size=size), rng.integers(0, n, size=size)
        ok = i != j
        if distinct_episodes:
            ok &= segment_episode[pool[i]] != segment_episode[pool[j]]
        i, j = i[ok], j[ok]
        key = pair_keys(i, j)
        _, first = np.unique(key, return_index=True)
        first = np.sort(first)  # keep draw order, first occurrence of each pair
        fresh = first[~np.isin(key[first], seen)][:count - have]
        seen = np.concatenate([seen, key[fresh]])
        kept_a.append(pool[i[fresh]])
        kept_b.append(pool[j[fresh]])
        have += len(fresh)
    return (np.concatenate(kept_a).astype(np.int64), np.concatenate(kept_b).astype(np.int64))
