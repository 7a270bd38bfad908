"""Scripted teachers of B-Pref (Lee et al., 2021) that model human irrationality.

Each teacher maps the true per-step rewards of two segments to a label,
P(segment_a ≻ segment_b): 1.0, 0.0, 0.5 ("equally good") or NaN for a skipped query.
Thresholds are ε × (mean true segment return of the data), computed once — B-Pref's
own code multiplies by ε again after its first round, which we do not copy.

Every teacher, scripted or not, is one interface (``Teacher``): collection and the online
loop ask scripted ones, and a human labelling queue can take their place. People's labels
carry the teacher name ``human:<annotator>``, their aggregate ``human`` (see
``rrm_data.annotation``).

The motion teachers (``smooth``, ``efficient``, ``safe``, ``quality``) judge how the hand
moves, by the quantities of ``labels.motion``, with B-Pref's irrationality (the same rules
as the return teachers: sampling with β, flips with ε, skip, equal) on top. Each teacher's
``formula`` is recorded in meta/info.json and the card.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from rrm_data.errors import RrmError
from rrm_data.labels import motion as mo
from rrm_data.registry import Registry


@dataclass(frozen=True)
class PairRewards:
    """True per-step rewards of the two segments of each pair, shape (pairs, horizon), and
    the mean true segment return thresholds are a share of (None: these pairs' own mean, as
    B-Pref sets it each online round). The online loop asks with its ``Queries``, which
    also say which windows of which episodes to show. ``motion``: the hand and object
    positions the motion teachers read (None where the asker has none)."""

    rewards_a: np.ndarray
    rewards_b: np.ndarray
    mean_segment_return: float | None = None
    motion: mo.PairMotion | None = None

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
    formula: ClassVar[str]
    reads_motion: ClassVar[bool] = False  # needs PairRewards.motion
    min_steps: ClassVar[int] = 1  # the shortest segment it can judge

    @abstractmethod
    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray: ...

    def costs(self, segments: mo.SegmentMotion) -> np.ndarray:
        """What it ranks segments by, without its noise: one cost per segment, lower is
        better (−R, the true return, for B-Pref's teachers), so evaluations rank by the
        teacher's own criterion."""
        return -segments.rewards.sum(axis=1)

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


# B-Pref's irrationality, one rule each, shared by the return and the motion teachers.
def _sampled(diff: np.ndarray, beta: float, rng: np.random.Generator) -> np.ndarray:
    """1 with probability σ(β · diff), else 0."""
    logits = np.clip(beta * diff, -50.0, 50.0)
    p_a = 1.0 / (1.0 + np.exp(-logits))
    return (rng.random(len(p_a)) < p_a).astype(np.float64)


def _flipped(labels: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """Each label flipped (1 − label) with probability ε."""
    flip = rng.random(len(labels)) < epsilon
    return np.where(flip, 1.0 - labels, labels)


def _skipped(labels: np.ndarray, pairs: PairRewards, threshold: float) -> np.ndarray:
    """NaN (skipped) where both true segment returns are below ``threshold``."""
    both_low = np.maximum(pairs.returns_a, pairs.returns_b) < threshold
    return np.where(both_low, np.nan, labels)


def _equalled(labels: np.ndarray, diff: np.ndarray, threshold: float) -> np.ndarray:
    """0.5 where |diff| is below ``threshold``."""
    return np.where(np.abs(diff) < threshold, 0.5, labels)


@scripted("oracle")
@dataclass(frozen=True)
class Oracle(Scripted):
    """Prefers the higher true return (β = ∞, γ = 1)."""

    formula = "R(a) > R(b): 1, R(a) < R(b): 0, else 0.5; R = Σ_t r_t, the true segment return"

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        return _hard(pairs.returns_a - pairs.returns_b)


@scripted("stochastic")
@dataclass(frozen=True)
class Stochastic(Scripted):
    """Samples the label from σ(β · ΔR) (B-Pref's "noisy" teacher: β = 1)."""

    beta: float = param(1.0, 0.0, 1e6, "β, rationality (0: coin flips)")
    formula = "1 with probability σ(β · (R(a) − R(b))), else 0"

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        return _sampled(pairs.returns_a - pairs.returns_b, self.beta, rng)


@scripted("mistake")
@dataclass(frozen=True)
class Mistake(Scripted):
    """Flips the oracle label with probability ε."""

    epsilon: float = param(0.1, 0.0, 1.0, "ε, probability of a flipped label")
    formula = "oracle's label, flipped with probability ε"

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        return _flipped(_hard(pairs.returns_a - pairs.returns_b), self.epsilon, rng)


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

    formula = "skipped if max(R(a), R(b)) < ε · mean segment return, else oracle's label"

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        return _skipped(_hard(pairs.returns_a - pairs.returns_b), pairs, self.threshold(pairs))


@scripted("equal")
@dataclass(frozen=True)
class Equal(_MeanReturnThreshold):
    """Labels 0.5 when |ΔR| is below ε × mean segment return."""

    formula = "0.5 if |R(a) − R(b)| < ε · mean segment return, else oracle's label"

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        diff = pairs.returns_a - pairs.returns_b
        return _equalled(_hard(diff), diff, self.threshold(pairs))


@scripted("myopic")
@dataclass(frozen=True)
class Myopic(Scripted):
    """Weights step t by γ^(H−1−t), so recent steps count most, then prefers the larger sum."""

    gamma: float = param(0.9, 0.0, 1.0, "γ, discount of earlier steps", low_open=True)
    formula = "oracle's rule on Σ_t γ^(H−1−t) r_t"

    def weights(self, horizon: int) -> np.ndarray:
        return self.gamma ** np.arange(horizon - 1, -1, -1, dtype=np.float64)

    def costs(self, segments: mo.SegmentMotion) -> np.ndarray:
        return -(segments.rewards @ self.weights(segments.horizon))

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        w = self.weights(pairs.rewards_a.shape[1])
        return _hard(pairs.rewards_a @ w - pairs.rewards_b @ w)


@dataclass(frozen=True)
class _Motion(Scripted):
    """A teacher of how the hand moves: prefers the segment of lower ``costs`` (one value
    per segment of the dataset), compared as z-scores over all its segments so that β and
    ε are in one unit for every quantity; B-Pref's rules on top, in B-Pref's order
    (sample or take the sign, flip, equal, skip). γ (myopic) is not offered: it discounts
    a per-step sum, and these costs are a mean, a ratio and a max."""

    reads_motion = True
    min_steps = 2  # a step's hand speed needs two positions
    beta: float = param(0.0, 0.0, 1e6, "β: 0 prefers the lower cost; > 0 samples σ(β · Δz)")
    mistake: float = param(0.0, 0.0, 1.0, "ε, probability of a flipped label")
    skip: float = param(0.0, 0.0, 100.0, "skip when both true returns < skip × mean return")
    equal: float = param(0.0, 0.0, 100.0, "label 0.5 when |Δz| < equal")

    @abstractmethod
    def costs(self, segments: mo.SegmentMotion) -> np.ndarray:
        """One cost per segment, lower is better."""

    def label(self, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        if pairs.motion is None:
            raise RrmError(f"teacher '{self.name}' reads the segments' hand positions, which "
                           "these queries do not carry")
        z = mo.z_scores(self.costs(pairs.motion.segments))
        diff = z[pairs.motion.b] - z[pairs.motion.a]  # > 0: a costs less
        labels = _sampled(diff, self.beta, rng) if self.beta > 0 else _hard(diff)
        if self.mistake > 0:
            labels = _flipped(labels, self.mistake, rng)
        if self.equal > 0:
            labels = _equalled(labels, diff, self.equal)
        if self.skip > 0:
            labels = _skipped(labels, pairs, self.skip * pairs.mean_return)
        return labels


_MOTION_RULES = ("; on Δz = z(b) − z(a), z the cost's z-score over the dataset's segments: "
                 "1 if Δz > 0, 0 if < 0 (β > 0: 1 with probability σ(β · Δz)), flipped with "
                 "probability ε (mistake), 0.5 if |Δz| < equal, skipped if both true returns "
                 "< skip · mean segment return")


@scripted("smooth")
@dataclass(frozen=True)
class Smooth(_Motion):
    """Prefers the lower mean squared jerk of the hand."""

    min_steps = mo.MIN_JERK_STEPS
    formula = ("lower cost wins; cost = mean over t of ‖x_{t+3} − 3x_{t+2} + 3x_{t+1} − x_t‖², "
               "x = hand position (observation.state[0:3]), t within the segment" + _MOTION_RULES)

    def costs(self, segments: mo.SegmentMotion) -> np.ndarray:
        return mo.mean_squared_jerk(segments.hand)


@scripted("efficient")
@dataclass(frozen=True)
class Efficient(_Motion):
    """Prefers less hand path per unit of task progress (mean true reward per step)."""

    floor: float = param(0.1, 0.0, 10.0, "smallest progress (mean reward per step) divided by",
                         low_open=True)
    formula = ("lower cost wins; cost = Σ_t ‖x_{t+1} − x_t‖ / max(mean_t r_t, floor), x = hand "
               "position, r = true reward (Meta-World's shaped progress, 10 at success)"
               + _MOTION_RULES)

    def costs(self, segments: mo.SegmentMotion) -> np.ndarray:
        return mo.path_per_progress(segments.hand, segments.rewards, self.floor)


@scripted("safe")
@dataclass(frozen=True)
class Safe(_Motion):
    """Prefers the lower peak hand speed within a radius of the object."""

    radius: float = param(0.05, 0.0, 10.0, "ρ, distance to the object (m) that counts as near",
                          low_open=True)
    formula = ("lower cost wins; cost = max over t with ‖x_t − o_t‖ < ρ of ‖x_{t+1} − x_t‖ "
               "(0 if none), x = hand, o = object (observation.state[4:7])" + _MOTION_RULES)

    def costs(self, segments: mo.SegmentMotion) -> np.ndarray:
        return mo.peak_speed_near(segments.hand, segments.object, self.radius)


@scripted("quality")
@dataclass(frozen=True)
class Quality(_Motion):
    """Prefers the better weighted sum of return, smoothness, efficiency and safety z-scores."""

    min_steps = mo.MIN_JERK_STEPS
    w_return: float = param(1.0, 0.0, 100.0, "weight of the true return's z-score")
    w_smooth: float = param(1.0, 0.0, 100.0, "weight of smooth's cost z-score")
    w_efficient: float = param(1.0, 0.0, 100.0, "weight of efficient's cost z-score")
    w_safe: float = param(1.0, 0.0, 100.0, "weight of safe's cost z-score")
    floor: float = param(0.1, 0.0, 10.0, "efficient's floor", low_open=True)
    radius: float = param(0.05, 0.0, 10.0, "safe's ρ (m)", low_open=True)
    formula = ("lower cost wins; cost = −w_return · z(R) + w_smooth · z(smooth) + "
               "w_efficient · z(efficient) + w_safe · z(safe), z-scores over the dataset's "
               "segments of the true return R and of the other teachers' costs" + _MOTION_RULES)

    def costs(self, segments: mo.SegmentMotion) -> np.ndarray:
        return (-self.w_return * mo.z_scores(segments.rewards.sum(axis=1))
                + self.w_smooth * mo.z_scores(mo.mean_squared_jerk(segments.hand))
                + self.w_efficient * mo.z_scores(
                    mo.path_per_progress(segments.hand, segments.rewards, self.floor))
                + self.w_safe * mo.z_scores(
                    mo.peak_speed_near(segments.hand, segments.object, self.radius)))


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


def check_segment_length(names: Iterable[str], length: int) -> None:
    """Refuse, before any work, segments too short for a teacher to judge."""
    for name in names:
        need = TEACHERS.get(name).min_steps
        if length < need:
            raise RrmError(f"teacher '{name}' needs segments of at least {need} steps; "
                           f"segment_length is {length}")


def teacher_formula(name: str) -> str:
    """What a teacher computes, for meta/info.json and the card."""
    return TEACHERS.get(name).formula


def teacher_description(name: str) -> str:
    """The first line of a teacher's docstring: what it models, for cards and reports."""
    doc = (TEACHERS.get(name).__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""
