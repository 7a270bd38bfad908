"""Query acquisition: which pairs of a candidate pool to ask about. One module, shared by
``rrm-data query`` (dataset segments) and ``rrm-data train-online`` (the agent's windows),
so a strategy means the same thing in both.

Every strategy scores the pool from the ensemble members' preference probabilities
p[k, i] = P_k(a_i ≻ b_i) = σ(R_a^k − R_b^k), (members, pairs), the member returns coming
from the one reward contract; ``select`` keeps the highest scores (B-Pref's feed types):
- ``uniform``: no score; the first pairs of the pool, which is drawn in random order.
- ``disagreement``: std over members of P_k(a ≻ b).
- ``entropy``: mean over members of the binary entropy of P_k(a ≻ b) (B-Pref's
  ``get_entropy``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rrm_data.errors import RrmError
from rrm_data.evaluation.metrics import preference_probability
from rrm_data.registry import Registry

Score = Callable[[np.ndarray], np.ndarray]
STRATEGY_HELP = ("uniform, disagreement (std over ensemble members of P(A ≻ B)) or entropy "
                 "(mean over members of its binary entropy), B-Pref's feed types")


@dataclass(frozen=True)
class Acquisition:
    """A strategy: its ``score`` of p (None: keep pool order) and the fewest ensemble
    members it tells pairs apart with (one member never disagrees with itself)."""

    score: Score | None
    members: int


ACQUISITIONS: Registry[Acquisition] = Registry("strategy")
ACQUISITIONS.register("uniform")(Acquisition(None, 0))


def _acquisition(name: str, members: int = 1) -> Callable[[Score], Score]:
    def add(score: Score) -> Score:
        ACQUISITIONS.register(name)(Acquisition(score, members))
        return score
    return add


@_acquisition("disagreement", members=2)
def disagreement(p: np.ndarray) -> np.ndarray:
    """Population std over members (axis 0) of P_k(a ≻ b)."""
    return p.std(axis=0)


@_acquisition("entropy")
def entropy(p: np.ndarray) -> np.ndarray:
    """Mean over members of the binary entropy (nats) of P_k(a ≻ b)."""
    q = np.clip(p, 1e-12, 1 - 1e-12)
    return -(q * np.log(q) + (1 - q) * np.log(1 - q)).mean(axis=0)


def preferences(returns_a: np.ndarray, returns_b: np.ndarray) -> np.ndarray:
    """p = P_k(a ≻ b) = σ(R_a^k − R_b^k), (members, pairs), from member returns of each side."""
    return preference_probability(np.asarray(returns_a, np.float64)
                                  - np.asarray(returns_b, np.float64))


def check_strategy(strategy: str, reward: str | None, members: int | None = None) -> None:
    """Refuse, before any work, a strategy the reward cannot serve: an unknown name, a
    ranking without a reward, or disagreement of a single member (``members``, where known)."""
    need = ACQUISITIONS.get(strategy).members
    if need and reward is None:
        raise RrmError(f"strategy={strategy} needs reward= (a run with an ensemble)")
    if members is not None and members < need:
        raise RrmError(f"{reward} has one ensemble member, so it never disagrees; train it "
                       "with model.members=3 or use strategy=entropy")


def select(strategy: str, pool: int, n: int, p: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """(positions in the pool of the ``n`` pairs to ask, their scores), best first.

    ``uniform`` keeps the first ``n`` (score 0); the others rank the pool by their score of
    ``p`` (members, pool), highest first, ties in pool order.
    """
    score = ACQUISITIONS.get(strategy).score
    if n > pool:
        raise RrmError(f"n={n} is larger than the pool of {pool} candidate pairs")
    if score is None:
        return np.arange(n), np.zeros(n)
    if p is None:
        raise RrmError(f"strategy={strategy} needs reward= (a run with an ensemble)")
    if p.shape[1] != pool:
        raise ValueError(f"p has {p.shape[1]} pairs, the pool {pool}")
    values = score(p)
    chosen = np.argsort(-values, kind="stable")[:n]
    return chosen, values[chosen]


__all__ = ["ACQUISITIONS", "STRATEGY_HELP", "Acquisition", "check_strategy", "disagreement",
           "entropy", "preferences", "select"]
