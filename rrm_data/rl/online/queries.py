"""Which segment pairs to ask about: B-Pref's feed types on the agent's recent episodes.

``uniform`` draws pairs of random windows; ``disagreement`` and ``entropy`` draw a pool
``pool_factor`` times larger and keep the pairs the reward ensemble is least sure of:
the largest spread (std over members) of P(a ≻ b), or the largest mean binary entropy
of the members' P(a ≻ b).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rrm_data.dataset import format as fmt
from rrm_data.errors import RrmError
from rrm_data.reward.loss import member_probabilities, preference_logits, segment_returns
from rrm_data.reward.networks import RewardNetwork
from rrm_data.rl.online.episodes import EpisodeArrays

SAMPLINGS = ("uniform", "disagreement", "entropy")


@dataclass(frozen=True)
class Queries:
    """A batch of pairs of windows: (episode, start) of each side, and their true rewards."""

    episode_a: np.ndarray
    start_a: np.ndarray
    episode_b: np.ndarray
    start_b: np.ndarray
    length: int
    rewards_a: np.ndarray  # (n, length), read by scripted teachers only
    rewards_b: np.ndarray

    def __len__(self) -> int:
        return len(self.episode_a)

    def take(self, rows: np.ndarray) -> Queries:
        return Queries(self.episode_a[rows], self.start_a[rows], self.episode_b[rows],
                       self.start_b[rows], self.length, self.rewards_a[rows], self.rewards_b[rows])


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
    return Queries(ea, sa, eb, sb, length, _window(episodes, ea, sa, length, "reward"),
                   _window(episodes, eb, sb, length, "reward"))


def _starts(episodes: Episodes, eps: np.ndarray, length: int,
            rng: np.random.Generator) -> np.ndarray:
    room = np.array([len(episodes(int(e)).reward) - length + 1 for e in eps])
    return (rng.random(len(eps)) * room).astype(np.int64)


def _window(episodes: Episodes, eps: np.ndarray, starts: np.ndarray, length: int,
            field: str) -> np.ndarray:
    return np.stack([getattr(episodes(int(e)), field)[s:s + length]
                     for e, s in zip(eps, starts, strict=True)])


def pair_inputs(episodes: Episodes, queries: Queries,
                device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """The reward model's inputs for the pairs: state and action, (n, 2, length, width)."""
    out = {}
    for column, field in ((fmt.STATE, "obs"), (fmt.ACTION, "action")):
        a = _window(episodes, queries.episode_a, queries.start_a, queries.length, field)
        b = _window(episodes, queries.episode_b, queries.start_b, queries.length, field)
        out[column] = torch.as_tensor(np.stack([a, b], axis=1), dtype=torch.float32,
                                      device=device)
    return out


@torch.no_grad()
def uncertainty(model: RewardNetwork, inputs: dict[str, Tensor], sampling: str,
                batch_size: int = 256) -> np.ndarray:
    """Per pair: std over members of P(a ≻ b) (disagreement) or the members' mean binary
    entropy of it (entropy)."""
    n = len(next(iter(inputs.values())))
    scores = []
    for i in range(0, n, batch_size):
        part = {c: v[i:i + batch_size] for c, v in inputs.items()}
        p = member_probabilities(preference_logits(segment_returns(model, part)))  # (K, B)
        if sampling == "disagreement":
            scores.append(p.std(dim=0, correction=0))
        else:
            q = p.clamp(1e-7, 1 - 1e-7)
            scores.append((-(q * q.log() + (1 - q) * (1 - q).log())).mean(dim=0))
    return torch.cat(scores).cpu().numpy()


def select_queries(episodes: Episodes, candidates: list[int], count: int, length: int,
                   sampling: str, model: RewardNetwork, pool_factor: int,
                   rng: np.random.Generator) -> Queries:
    """``count`` pairs to ask, by ``sampling`` (one of ``SAMPLINGS``)."""
    if sampling not in SAMPLINGS:
        raise RrmError(f"unknown sampling '{sampling}'; known: {', '.join(SAMPLINGS)}")
    if sampling == "uniform":
        return random_pairs(episodes, candidates, count, length, rng)
    pool = random_pairs(episodes, candidates, count * pool_factor, length, rng)
    device = next(model.parameters()).device
    scores = uncertainty(model, pair_inputs(episodes, pool, device), sampling)
    return pool.take(np.argsort(-scores, kind="stable")[:count])
