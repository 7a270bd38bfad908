"""Which segment pairs to ask about: B-Pref's feed types on the agent's recent episodes.

``uniform`` draws pairs of random windows; ``disagreement`` and ``entropy`` draw a pool
``pool_factor`` times larger and keep the pairs the reward ensemble is least sure of, by
``labels.acquisition`` (the one definition ``rrm-data query`` uses too). A reward that
reads a window of k steps scores each window from the segment with the span − 1 steps
before it in its episode (``reward.window.segment_runs``, padded at the episode's start),
as train-reward's batches do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rrm_data.dataset import format as fmt
from rrm_data.errors import RrmError
from rrm_data.labels.acquisition import ACQUISITIONS, preferences, select
from rrm_data.labels.teachers import PairRewards
from rrm_data.reward.loss import segment_returns
from rrm_data.reward.networks import RewardNetwork
from rrm_data.reward.spec import Window
from rrm_data.reward.window import ONE_STEP, segment_runs
from rrm_data.rl.online.episodes import EpisodeArrays


@dataclass(frozen=True, kw_only=True)
class Queries(PairRewards):
    """A batch of pairs of windows, what a teacher is asked: (episode, start) of each side,
    and their true rewards (n, length), which only scripted teachers read. Thresholds are a
    share of the batch's own mean segment return, as B-Pref sets them each round."""

    episode_a: np.ndarray
    start_a: np.ndarray
    episode_b: np.ndarray
    start_b: np.ndarray
    length: int

    def __len__(self) -> int:
        return len(self.episode_a)

    def take(self, rows: np.ndarray) -> Queries:
        return Queries(episode_a=self.episode_a[rows], start_a=self.start_a[rows],
                       episode_b=self.episode_b[rows], start_b=self.start_b[rows],
                       length=self.length, rewards_a=self.rewards_a[rows],
                       rewards_b=self.rewards_b[rows])


Episodes = Callable[[int], EpisodeArrays]


def random_pairs(episodes: Episodes, candidates: list[int], count: int, length: int,
                 rng: np.random.Generator) -> Queries:
    """``count`` pairs of uniformly random windows of the ``candidates`` episodes (two
    different episodes per pair when there are two to choose from)."""
    lengths = np.array([len(episodes(e).reward) for e in candidates])
    usable = np.asarray(candidates)[lengths >= length]
    if len(usable) == 0:
        raise RrmError(f"no recent episode has segment_length={length} steps to query")
    ea = usable[rng.integers(0, len(usable), count)]
    eb = usable[rng.integers(0, len(usable), count)]
    if len(usable) > 1:
        same = ea == eb
        while same.any():
            eb[same] = usable[rng.integers(0, len(usable), int(same.sum()))]
            same = ea == eb
    sa, sb = (_starts(episodes, e, length, rng) for e in (ea, eb))
    return Queries(episode_a=ea, start_a=sa, episode_b=eb, start_b=sb, length=length,
                   rewards_a=_gather(episodes, ea, _runs(sa, length, ONE_STEP), "reward"),
                   rewards_b=_gather(episodes, eb, _runs(sb, length, ONE_STEP), "reward"))


def _starts(episodes: Episodes, eps: np.ndarray, length: int,
            rng: np.random.Generator) -> np.ndarray:
    room = np.array([len(episodes(int(e)).reward) - length + 1 for e in eps])
    return (rng.random(len(eps)) * room).astype(np.int64)


def _runs(starts: np.ndarray, length: int, window: Window) -> np.ndarray:
    """(n, length + span − 1) steps, in their episode, that the segments at ``starts`` are
    scored from (for k = 1 the segments themselves)."""
    starts = np.asarray(starts, np.int64)
    return segment_runs(starts + (length - 1), np.zeros_like(starts), length, window)


def _gather(episodes: Episodes, eps: np.ndarray, rows: np.ndarray, field: str) -> np.ndarray:
    return np.stack([getattr(episodes(int(e)), field)[r] for e, r in zip(eps, rows, strict=True)])


def pair_inputs(episodes: Episodes, queries: Queries, window: Window = ONE_STEP,
                device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """The reward model's inputs for the pairs: state and action, (n, 2, length, width),
    or for a reward of a ``window`` of k steps runs (n, 2, length + span − 1, width)."""
    out = {}
    for column, field in ((fmt.STATE, "obs"), (fmt.ACTION, "action")):
        a = _gather(episodes, queries.episode_a,
                    _runs(queries.start_a, queries.length, window), field)
        b = _gather(episodes, queries.episode_b,
                    _runs(queries.start_b, queries.length, window), field)
        out[column] = torch.as_tensor(np.stack([a, b], axis=1), dtype=torch.float32,
                                      device=device)
    return out


@torch.no_grad()
def member_returns(model: RewardNetwork, inputs: dict[str, Tensor],
                   batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Each member's return of side a and of side b of every pair, two (members, pairs)."""
    n = len(next(iter(inputs.values())))
    returns = torch.cat([segment_returns(model, {c: v[i:i + batch_size]
                                                 for c, v in inputs.items()})
                         for i in range(0, n, batch_size)], dim=1).double().cpu().numpy()
    return returns[..., 0], returns[..., 1]


def choose_windows(episodes: Episodes, pool: Queries, count: int, strategy: str,
                   model: RewardNetwork) -> np.ndarray:
    """Positions in ``pool`` of the ``count`` pairs to ask, by ``acquisition.select``."""
    p = None
    if ACQUISITIONS.get(strategy).score is not None:
        device = next(model.parameters()).device
        p = preferences(*member_returns(model, pair_inputs(episodes, pool, model.window,
                                                           device)))
    return select(strategy, len(pool), count, p)[0]


def next_queries(episodes: Episodes, candidates: list[int], count: int, length: int,
                 strategy: str, model: RewardNetwork, pool_factor: int,
                 rng: np.random.Generator) -> Queries:
    """``count`` pairs to ask, by ``strategy``, from a pool of random windows of the
    ``candidates`` episodes (``pool_factor`` × ``count`` of them where the strategy ranks)."""
    ranks = ACQUISITIONS.get(strategy).score is not None
    pool = random_pairs(episodes, candidates, count=count * (pool_factor if ranks else 1),
                        length=length, rng=rng)
    return pool.take(choose_windows(episodes, pool, count, strategy, model))
