"""Reward distances that need no policy: EPIC (Gleave et al. 2021), STARC and value-order.

EPIC ("Quantifying Differences in Reward Functions") compares two rewards R(s, a, s′) after
removing what changes no optimal policy under any dynamics: potential shaping γΦ(s′) − Φ(s)
and a positive scale. Each reward is canonicalised with respect to a coverage distribution
D_S, D_A,

    C(R)(s, a, s′) = R(s, a, s′) + E[γ R(s′, A, S′) − R(s, A, S′) − γ R(S, A, S′)],
    S, S′ ~ D_S and A ~ D_A independent,

which removes shaping up to a constant; the distance is the Pearson distance √((1 − ρ)/2) of
the two canonical rewards over transitions (s, a, s′) drawn from a distribution D, which the
scale and that constant do not change. It lies in [0, 1]: 0 for equivalent rewards, 1 for a
reward and its negation.

Here states and actions are integer ids (a dataset's rows, a tabular MDP's indices) and a
reward is a vectorised callable of three id arrays. Every expectation is a weighted mean over
given support points: samples with equal weights (EPIC's sample-based estimator: the mean over
(A_j, S′_j) pairs, and over S_i for the last term) or a distribution's whole support with its
probabilities (then the expectations are exact). Both rewards are canonicalised with the same
points, so shaping and scale cancel exactly, not only in expectation.

STARC (Skalse et al. 2024, "STARC: A General Framework For Quantifying Differences Between
Reward Functions") normalises a canonical reward by a norm and compares with a metric; here
with EPIC's canonicalisation, the weighted L2 norm and the L2 metric:
½‖C(R₁)/‖C(R₁)‖ − C(R₂)/‖C(R₂)‖‖ = √((1 − cos)/2), the cosine in place of EPIC's Pearson ρ
(the canonical rewards' mean over D is kept, not removed). Also in [0, 1], 0 for equivalent
rewards and 1 for a reward and its negation.

Value-order correlation (as GVL and Robometer use for robot reward models): the Spearman
correlation of an episode's cumulative predicted reward with time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rrm_data.errors import RrmError
from rrm_data.evaluation.metrics import correlations

# R(s, a, s′) of id arrays of equal length N: values (..., N), e.g. (N,) or (parts, N).
TransitionReward = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _normalised(weights: np.ndarray | None, n: int, what: str) -> np.ndarray:
    if weights is None:
        return np.full(n, 1.0 / n)
    weights = np.asarray(weights, np.float64)
    if weights.shape != (n,) or (weights < 0).any() or weights.sum() <= 0:
        raise RrmError(f"{what} weights must be {n} non-negative numbers with a positive sum")
    return weights / weights.sum()


@dataclass(frozen=True)
class Coverage:
    """Support points of the coverage distribution: states S_i (for E[R(S, A, S′)]'s outer
    mean) and (A_j, S′_j) pairs, each with a weight (default equal: i.i.d. samples)."""

    states: np.ndarray
    actions: np.ndarray
    next_states: np.ndarray
    state_weights: np.ndarray | None = None
    pair_weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.states) == 0 or len(self.actions) == 0:
            raise RrmError("a coverage distribution needs at least one state and one action")
        if len(self.actions) != len(self.next_states):
            raise RrmError("coverage actions and next states are pairs: their counts differ "
                           f"({len(self.actions)} vs {len(self.next_states)})")
        self.state_probabilities(), self.pair_probabilities()  # refuse bad weights now

    def state_probabilities(self) -> np.ndarray:
        return _normalised(self.state_weights, len(self.states), "state")

    def pair_probabilities(self) -> np.ndarray:
        return _normalised(self.pair_weights, len(self.actions), "pair")


def expected_from(reward: TransitionReward, states: np.ndarray, coverage: Coverage
                  ) -> np.ndarray:
    """E[R(s, A, S′)] for each state id s, (..., len(states)); each distinct s is scored once."""
    unique, inverse = np.unique(np.asarray(states), return_inverse=True)
    m = len(coverage.actions)
    values = np.asarray(reward(np.repeat(unique, m), np.tile(coverage.actions, len(unique)),
                               np.tile(coverage.next_states, len(unique))), np.float64)
    means = values.reshape(*values.shape[:-1], len(unique), m) @ coverage.pair_probabilities()
    return means[..., inverse.ravel()]


def canonicalize(reward: TransitionReward, s: np.ndarray, a: np.ndarray, s_next: np.ndarray,
                 coverage: Coverage, gamma: float) -> np.ndarray:
    """EPIC's canonical reward C(R) of the transitions (s, a, s′), (..., N)."""
    n = len(s)
    means = expected_from(reward, np.concatenate([s, s_next, coverage.states]), coverage)
    base = means[..., 2 * n:] @ coverage.state_probabilities()
    raw = np.asarray(reward(s, a, s_next), np.float64)
    return raw + gamma * means[..., n:2 * n] - means[..., :n] - gamma * base[..., None]


def _half_chord(x: np.ndarray, y: np.ndarray, w: np.ndarray, magnitude: float
                ) -> float | None:
    """√((1 − cos)/2) of the w-weighted cosine of x and y, half the distance of the two unit
    vectors; None when either is zero next to ``magnitude`` (the inputs' largest value)."""
    nx, ny = w @ (x * x), w @ (y * y)
    floor = 1e-24 * max(magnitude, 1e-300) ** 2
    if nx <= floor or ny <= floor:
        return None
    cos = float(np.clip((w @ (x * y)) / np.sqrt(nx * ny), -1.0, 1.0))
    return float(np.sqrt((1.0 - cos) / 2.0))


def _magnitude(x: np.ndarray, y: np.ndarray) -> float:
    return max(float(np.max(np.abs(x))), float(np.max(np.abs(y))))


def pearson_distance(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
                     ) -> float | None:
    """√((1 − ρ)/2) of the (weighted) Pearson ρ of x and y (the cosine of the centred
    values); None when either is constant."""
    w = _normalised(weights, len(x), "transition")
    return _half_chord(x - w @ x, y - w @ y, w, _magnitude(x, y))


def cosine_distance(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
                    ) -> float | None:
    """√((1 − cos)/2) of the (weighted) cosine of x and y, half the L2 distance of x/‖x‖ and
    y/‖y‖; None when either is zero."""
    w = _normalised(weights, len(x), "transition")
    return _half_chord(x, y, w, _magnitude(x, y))


def epic_distance(first: TransitionReward, second: TransitionReward, s: np.ndarray,
                  a: np.ndarray, s_next: np.ndarray, coverage: Coverage, gamma: float,
                  weights: np.ndarray | None = None) -> float | None:
    """EPIC distance of two rewards over transitions (s, a, s′) (weighted, default equal)."""
    return pearson_distance(canonicalize(first, s, a, s_next, coverage, gamma),
                            canonicalize(second, s, a, s_next, coverage, gamma), weights)


def starc_distance(first: TransitionReward, second: TransitionReward, s: np.ndarray,
                   a: np.ndarray, s_next: np.ndarray, coverage: Coverage, gamma: float,
                   weights: np.ndarray | None = None) -> float | None:
    """STARC distance (EPIC's canonicalisation, L2 norm and metric) of two rewards over
    transitions (s, a, s′) (weighted, default equal)."""
    return cosine_distance(canonicalize(first, s, a, s_next, coverage, gamma),
                           canonicalize(second, s, a, s_next, coverage, gamma), weights)


def value_order(episodes: Sequence[np.ndarray]) -> dict[str, float | int | None]:
    """Mean Spearman correlation of each episode's cumulative reward with the step index,
    over the episodes where it is defined (not constant); ``episodes`` counts those."""
    return _order_with_time([np.cumsum(r) for r in episodes])


def progress_order(episodes: Sequence[np.ndarray]) -> dict[str, float | int | None]:
    """``value_order`` of the per-step reward itself, read as progress (GVL's per-frame
    values): unlike the cumulative reward's order, which a constant added to every step
    decides (a reward of one sign scores ±1), it is unchanged by a shift and a positive
    scale, the freedom a Bradley-Terry reward is learned up to."""
    return _order_with_time(list(episodes))


def _order_with_time(series: Sequence[np.ndarray]) -> dict[str, float | int | None]:
    values = [correlations(s, np.arange(len(s), dtype=np.float64))["spearman"] for s in series]
    defined = [v for v in values if v is not None]
    return {"mean": float(np.mean(defined)) if defined else None, "episodes": len(defined),
            "of": len(values)}
