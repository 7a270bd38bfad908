"""Scripted teachers of B-Pref (Lee et al., 2021) that model human irrationality.

Each teacher maps the true per-step rewards of two segments to a label,
P(segment_a ≻ segment_b): 1.0, 0.0, 0.5 ("equally good") or NaN for a skipped query.
Thresholds are ε × (mean true segment return of the data), computed once — B-Pref's
own code multiplies by ε again after its first round, which we do not copy.

People are teachers too: their labels carry the teacher name ``human:<annotator>``, and
their aggregate ``human`` (see ``rrm_data.annotation``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rrm_data.errors import RrmError


@dataclass(frozen=True)
class PairRewards:
    """True per-step rewards of the two segments of each pair, shape (pairs, horizon)."""

    rewards_a: np.ndarray
    rewards_b: np.ndarray
    mean_segment_return: float

    @property
    def returns_a(self) -> np.ndarray:
        return self.rewards_a.sum(axis=1)

    @property
    def returns_b(self) -> np.ndarray:
        return self.rewards_b.sum(axis=1)


def _hard(diff: np.ndarray) -> np.ndarray:
    """1 if a is better, 0 if b is better, 0.5 on an exact tie."""
    return np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))


@dataclass(frozen=True)
class Oracle:
    """Prefers the higher true return (β = ∞, γ = 1)."""

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        return _hard(pairs.returns_a - pairs.returns_b)


@dataclass(frozen=True)
class Stochastic:
    """Samples the label from σ(β · ΔR) (B-Pref's "noisy" teacher: β = 1)."""

    beta: float = 1.0

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        logits = np.clip(self.beta * (pairs.returns_a - pairs.returns_b), -50.0, 50.0)
        p_a = 1.0 / (1.0 + np.exp(-logits))
        return (rng.random(len(p_a)) < p_a).astype(np.float64)


@dataclass(frozen=True)
class Mistake:
    """Flips the oracle label with probability ε."""

    epsilon: float = 0.1

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        labels = _hard(pairs.returns_a - pairs.returns_b)
        flip = rng.random(len(labels)) < self.epsilon
        return np.where(flip, 1.0 - labels, labels)


@dataclass(frozen=True)
class Skip:
    """Drops a query when both returns are below ε × mean segment return."""

    epsilon: float = 0.1

    def threshold(self, pairs: PairRewards) -> float:
        return self.epsilon * pairs.mean_segment_return

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        labels = _hard(pairs.returns_a - pairs.returns_b)
        both_low = np.maximum(pairs.returns_a, pairs.returns_b) < self.threshold(pairs)
        return np.where(both_low, np.nan, labels)


@dataclass(frozen=True)
class Equal:
    """Labels 0.5 when |ΔR| is below ε × mean segment return."""

    epsilon: float = 0.1

    def threshold(self, pairs: PairRewards) -> float:
        return self.epsilon * pairs.mean_segment_return

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        diff = pairs.returns_a - pairs.returns_b
        return np.where(np.abs(diff) < self.threshold(pairs), 0.5, _hard(diff))


@dataclass(frozen=True)
class Myopic:
    """Weights step t by γ^(H−1−t), so recent steps count most, then prefers the larger sum."""

    gamma: float = 0.9

    def weights(self, horizon: int) -> np.ndarray:
        return self.gamma ** np.arange(horizon - 1, -1, -1, dtype=np.float64)

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        w = self.weights(pairs.rewards_a.shape[1])
        return _hard(pairs.rewards_a @ w - pairs.rewards_b @ w)


TEACHERS: dict[str, Callable[..., Any]] = {
    "oracle": Oracle,
    "stochastic": Stochastic,
    "mistake": Mistake,
    "skip": Skip,
    "equal": Equal,
    "myopic": Myopic,
}


# Human labels: teacher ``human:<annotator>`` per person, ``human`` for their aggregate.
HUMAN = "human"
HUMAN_PREFIX = "human:"
ANNOTATOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


def human_teacher(annotator: str) -> str:
    """The teacher name of one annotator's labels."""
    return f"{HUMAN_PREFIX}{annotator}"


def is_human_teacher(name: str) -> bool:
    """``human`` or ``human:<annotator>`` with a valid annotator name."""
    annotator = name.removeprefix(HUMAN_PREFIX)
    return name == HUMAN or (annotator != name and ANNOTATOR_NAME.fullmatch(annotator) is not None)


def make_teacher(name: str, params: Mapping[str, Any] | None = None) -> Any:
    """Build a teacher by name, checking its parameters."""
    if name not in TEACHERS:
        raise RrmError(f"unknown teacher '{name}'; known teachers: {', '.join(TEACHERS)}")
    try:
        return TEACHERS[name](**dict(params or {}))
    except TypeError:
        raise RrmError(f"teacher '{name}' got unknown parameters {sorted(params or {})}") from None


def teacher_params(teacher: Any) -> dict[str, float]:
    """The parameters a teacher was built with (for meta/info.json and the card)."""
    return {k: float(v) for k, v in vars(teacher).items()}
