"""Segments (windows of episodes) and pairs of segments to be labelled.

Test pairs come from a held-out set of episodes, so a test pair never shares a
segment (or even an episode) with a train pair.
"""

from __future__ import annotations

import numpy as np

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


def sample_pairs(pool: np.ndarray, segment_episode: np.ndarray, count: int,
                 rng: np.random.Generator, distinct_episodes: bool = True
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``count`` pairs uniformly from the segment ids in ``pool``.

    Pairs of a segment with itself (and, by default, of two segments of one episode)
    are redrawn; sampling is vectorized, in rounds until enough pairs are kept.
    """
    if count == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    episodes_in_pool = np.unique(segment_episode[pool])
    if len(pool) < 2 or (distinct_episodes and len(episodes_in_pool) < 2):
        raise RrmError("too few segments (or episodes) to sample pairs from; "
                       "collect more episodes or lower test_fraction")
    kept_a, kept_b, have = [], [], 0
    while have < count:
        a = pool[rng.integers(0, len(pool), size=2 * (count - have) + 16)]
        b = pool[rng.integers(0, len(pool), size=len(a))]
        ok = a != b
        if distinct_episodes:
            ok &= segment_episode[a] != segment_episode[b]
        kept_a.append(a[ok])
        kept_b.append(b[ok])
        have += int(ok.sum())
    return (np.concatenate(kept_a)[:count].astype(np.int64),
            np.concatenate(kept_b)[:count].astype(np.int64))


def pair_keys(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One int per unordered pair {a, b}, so (a, b) and (b, a) are the same pair."""
    lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    return lo * (1 << 31) + hi
