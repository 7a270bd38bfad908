"""Choose the next segment pairs to label: uniformly, or where a reward ensemble is least sure.

As B-Pref and PEBBLE do: draw a candidate pool of unlabelled pairs at random, then keep the
``n`` pairs the reward ensemble is least sure of, by a strategy of ``labels.acquisition``
(the one definition ``train-online`` uses too). Candidates come from the train pool
(segments of episodes not held out for test), so labelling them never leaks segments into
the test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import pair_keys
from rrm_data.dataset.reader import DatasetDir
from rrm_data.errors import RrmError
from rrm_data.evaluation.scoring import positions, window_rows, window_totals
from rrm_data.labels.acquisition import preferences, select
from rrm_data.reward.base import RewardFunction
from rrm_data.reward.window import dataset_windows

QUERIES = fmt.QUERIES


@dataclass(frozen=True)
class Segments:
    """The segments queries may pair: ids, episodes, and first global step row of each."""

    ids: np.ndarray
    episode: np.ndarray
    first: np.ndarray
    length: np.ndarray


def train_segments(dataset: DatasetDir) -> Segments:
    """Segments of the train pool: not of a held-out test episode, nor in any test pair."""
    segments = dataset.table("segments", columns=["segment_index", "episode_index", "start",
                                                  "length"])
    episodes = dataset.table("episodes", columns=["episode_index", "index_from"])
    ids, episode = (segments.column(c).to_numpy() for c in ("segment_index", "episode_index"))
    held_out = np.asarray(dataset.info.labelling.get("test_episodes", []), np.int64)
    keep = ~np.isin(episode, held_out)
    if "test" in dataset.splits("preferences"):
        test = dataset.preferences("test", columns=["segment_a", "segment_b"])
        keep &= ~np.isin(ids, np.concatenate([test.column(c).to_numpy()
                                              for c in ("segment_a", "segment_b")]))
    at = positions(episodes.column("episode_index").to_numpy(), episode)
    first = episodes.column("index_from").to_numpy()[at] + segments.column("start").to_numpy()
    length = segments.column("length").to_numpy()
    return Segments(ids[keep], episode[keep], first[keep], length[keep])


def labelled_keys(dataset: DatasetDir) -> np.ndarray:
    """Keys of every pair labelled by any teacher in any split."""
    keys = [pair_keys(*(dataset.preferences(s, columns=["segment_a", "segment_b"]).column(c)
                        .to_numpy() for c in ("segment_a", "segment_b")))
            for s in dataset.splits("preferences")]
    return np.unique(np.concatenate(keys)) if keys else np.empty(0, np.int64)


def unlabelled_pairs(segments: Segments, labelled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every unlabelled pair (positions into ``segments``) of segments of two episodes.

    Enumerated, not sampled, so a pool can hold all of them; the train pool of a dataset
    has thousands of segments at most, i.e. a few million pairs.
    """
    i, j = np.triu_indices(len(segments.ids), k=1)
    ok = segments.episode[i] != segments.episode[j]
    ok &= ~np.isin(pair_keys(segments.ids[i], segments.ids[j]), labelled)
    return i[ok], j[ok]


def candidate_pairs(i: np.ndarray, j: np.ndarray, size: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``size`` of the pairs (i, j) (from ``unlabelled_pairs``), drawn uniformly without
    replacement, each in a random order."""
    if size > len(i):
        raise RrmError(f"pool={size} is larger than the {len(i)} unlabelled pairs of the "
                       "train segments; lower pool= (or n=)")
    pick = rng.choice(len(i), size=size, replace=False)
    flip = rng.random(size) < 0.5
    a, b = i[pick], j[pick]
    return np.where(flip, b, a), np.where(flip, a, b)


def member_returns(reward: RewardFunction, dataset: DatasetDir, segments: Segments
                   ) -> np.ndarray:
    """Each ensemble member's predicted return of each segment, (members, segments): the
    sum over the segment of the member's per-step r̂, each step scored from its window."""
    rows = window_rows(segments.first, segments.length)
    members = reward.score(dataset_windows(dataset, reward.columns, reward.window, rows)).members
    members = np.asarray(members, np.float64).reshape(-1, len(rows))
    return window_totals(rows, members, segments.first, segments.length)


def choose_pairs(strategy: str, a: np.ndarray, b: np.ndarray, returns: np.ndarray | None,
                 n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(positions among candidates of the chosen ``n``, their scores, their mean P(A ≻ B)),
    by ``acquisition.select`` on the members' P of each candidate pair (a, b)."""
    p = None if returns is None else preferences(returns[:, a], returns[:, b])
    chosen, score = select(strategy, len(a), n, p)
    return chosen, score, None if p is None else p.mean(axis=0)[chosen]


def queries_table(segment_a: np.ndarray, segment_b: np.ndarray, strategy: str,
                  score: np.ndarray, p_a: np.ndarray | None) -> pa.Table:
    """The ``queries`` table: pairs to label, best first, with the criterion that chose them."""
    n = len(segment_a)
    return pa.table({
        "query_index": pa.array(np.arange(n, dtype=np.int64)),
        "segment_a": pa.array(segment_a.astype(np.int64)),
        "segment_b": pa.array(segment_b.astype(np.int64)),
        "strategy": pa.array([strategy] * n, pa.string()),
        "score": pa.array(np.asarray(score, np.float32)),
        "p_a": pa.nulls(n, pa.float32()) if p_a is None else pa.array(np.asarray(p_a,
                                                                                np.float32)),
    })


__all__ = ["QUERIES", "Segments", "candidate_pairs", "choose_pairs", "labelled_keys",
           "member_returns", "queries_table", "train_segments", "unlabelled_pairs"]
