"""Scripted teachers of B-Pref (Lee et al., 2021) that model human irrationality.

Each teacher maps the true per-step rewards of two segments to a label,
P(segment_a ≻ segment_b): 1.0, 0.0, 0.5 ("equally good") or NaN for a skipped query.
Thresholds are ε × (mean true segment return of the data), computed once — B-Pref's
own code multiplies by ε again after its first round, which we do not copy.

Every teacher, scripted or not, is one interface (``Teacher``): collection and the online
loop ask scripted ones, and a human labelling queue can take their place. People's labels
carry the teacher name ``human:<annotator>``, their aggregate ``human`` (see
``rrm_data.annotation``).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from rrm_data.errors import RrmError
from rrm_data.registry import Registry


@dataclass(frozen=True)
class PairRewards:
    """True per-step rewards of the two segments of each pair, shape (pairs, horizon), and
    the mean true segment return thresholds are a share of (None: these pairs' own mean, as
    B-Pref sets it each online round). The online loop asks with its ``Queries``, which
    also say which windows of which episodes to show."""

    rewards_a: np.ndarray
    rewards_b: np.ndarray
    mean_segment_return: float | None = None

    @property
    def mean_return(self) -> float:
        if self.mean_segment_return is not None:
            return self.mean_segment_return
        return float(np.concatenate([self.returns_a, self.returns_b]).mean())

    @property
    def returns_a(self) -> np.ndarray:
        return self.rewards_a.sum(axis=1)

    @property
    def returns_b(self) -> np.ndarray:
        return self.rewards_b.sum(axis=1)


class Teacher(Protocol):
    """Answers pair queries: P(a ≻ b) per pair, 1, 0, 0.5 ("equally good") or NaN (skipped).

    Scripted teachers read the true rewards; a human queue shows the pairs and waits.
    """

    @property
    def name(self) -> str:
        """The ``teacher`` column of its labels."""
        ...

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray: ...

    def params(self) -> dict[str, float]:
        """Its parameters, for meta/info.json and the card."""
        ...


TEACHERS: Registry[type[Scripted]] = Registry("teacher")


@dataclass(frozen=True)
class Scripted(ABC):
    """What scripted teachers share: a registry name and numeric parameters (fields)."""

    name: ClassVar[str]

    @abstractmethod
    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray: ...

    def params(self) -> dict[str, float]:
        return {k: float(v) for k, v in vars(self).items()}


S = TypeVar("S", bound=type[Scripted])


def scripted(name: str) -> Callable[[S], S]:
    """Class decorator: register a scripted teacher under ``name``, its ``name``."""
    def add(cls: S) -> S:
        cls.name = name
        TEACHERS.register(name)(cls)
        return cls
    return add


def param(default: float, low: float, high: float, meaning: str, low_open: bool = False) -> Any:
    """A teacher parameter with the range make_teacher checks it against."""
    return dataclasses.field(default=default, metadata={"range": (low, high, low_open, meaning)})


def _hard(diff: np.ndarray) -> np.ndarray:
    """1 if a is better, 0 if b is better, 0.5 on an exact tie."""
    return np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))


@scripted("oracle")
@dataclass(frozen=True)
class Oracle(Scripted):
    """Prefers the higher true return (β = ∞, γ = 1)."""

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        return _hard(pairs.returns_a - pairs.returns_b)


@scripted("stochastic")
@dataclass(frozen=True)
class Stochastic(Scripted):
    """Samples the label from σ(β · ΔR) (B-Pref's "noisy" teacher: β = 1)."""

    beta: float = param(1.0, 0.0, 1e6, "β, rationality (0: coin flips)")

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        logits = np.clip(self.beta * (pairs.returns_a - pairs.returns_b), -50.0, 50.0)
        p_a = 1.0 / (1.0 + np.exp(-logits))
        return (rng.random(len(p_a)) < p_a).astype(np.float64)


@scripted("mistake")
@dataclass(frozen=True)
class Mistake(Scripted):
    """Flips the oracle label with probability ε."""

    epsilon: float = param(0.1, 0.0, 1.0, "ε, probability of a flipped label")

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        labels = _hard(pairs.returns_a - pairs.returns_b)
        flip = rng.random(len(labels)) < self.epsilon
        return np.where(flip, 1.0 - labels, labels)


@dataclass(frozen=True)
class _MeanReturnThreshold(Scripted):
    """A teacher whose rule applies below a threshold of ε × (mean true segment return)."""

    epsilon: float = param(0.1, 0.0, 100.0, "ε, threshold as a share of the mean return")

    def threshold(self, pairs: PairRewards) -> float:
        return self.epsilon * pairs.mean_return


@scripted("skip")
@dataclass(frozen=True)
class Skip(_MeanReturnThreshold):
    """Drops a query when both returns are below ε × mean segment return."""

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        labels = _hard(pairs.returns_a - pairs.returns_b)
        both_low = np.maximum(pairs.returns_a, pairs.returns_b) < self.threshold(pairs)
        return np.where(both_low, np.nan, labels)


@scripted("equal")
@dataclass(frozen=True)
class Equal(_MeanReturnThreshold):
    """Labels 0.5 when |ΔR| is below ε × mean segment return."""

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        diff = pairs.returns_a - pairs.returns_b
        return np.where(np.abs(diff) < self.threshold(pairs), 0.5, _hard(diff))


@scripted("myopic")
@dataclass(frozen=True)
class Myopic(Scripted):
    """Weights step t by γ^(H−1−t), so recent steps count most, then prefers the larger sum."""

    gamma: float = param(0.9, 0.0, 1.0, "γ, discount of earlier steps", low_open=True)

    def weights(self, horizon: int) -> np.ndarray:
        return self.gamma ** np.arange(horizon - 1, -1, -1, dtype=np.float64)

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        w = self.weights(pairs.rewards_a.shape[1])
        return _hard(pairs.rewards_a @ w - pairs.rewards_b @ w)


def make_teacher(name: str, params: Any = None) -> Scripted:
    """Build a teacher by name, checking that each parameter is known, a number, in range."""
    cls = TEACHERS.get(name)
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise RrmError(f"teacher_params.{name} must hold named parameters "
                       f"(teacher_params.{name}.<param>=<number>), got {params!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in params.items():
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise RrmError(f"teacher '{name}' has no parameter '{key}' (its parameters: {known})")
        low, high, low_open, meaning = fields[key].metadata["range"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                (low < value if low_open else low <= value) and value <= high):
            bound = "(" if low_open else "["
            raise RrmError(f"teacher_params.{name}.{key} ({meaning}) must be a number in "
                           f"{bound}{low:g}, {high:g}], got {value!r}")
        values[key] = float(value)
    return cls(**values)


def teacher_description(name: str) -> str:
    """The first line of a teacher's docstring: what it models, for cards and reports."""
    doc = (TEACHERS.get(name).__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""
