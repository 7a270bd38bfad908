"""The reward contract: a reward maps a window of steps to one value per step.

Every reward carries a typed ``spec`` (``reward.spec.RewardSpec``: name, the steps columns
it reads, its ``Window`` of k steps, frames and encoders, task, network) and scores
windowed columns: ``score({column: (N, k, ...)})`` → ``RewardOutput`` of per-step values
(N,). Windows are built in ``reward.window`` only; a segment's score is the sum of its
per-step rewards, so every consumer works unchanged for any k. Learned models are loaded
from an artifact (``reward.artifact.LearnedReward``); ``TrueReward`` and ``PriorReward``
are references for comparison.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from rrm_data.dataset import format as fmt
from rrm_data.dataset.priors import PRIORS
from rrm_data.reward.spec import RewardSpec, Window

# The additive parts of r̂ that evaluation reports (``members`` is not one of them).
PARTS = ("total", "prior", "residual")


class RewardOutput(NamedTuple):
    """Per-step r̂ = prior part + residual part, each (N,) (numpy, or torch from a network);
    ``members`` holds each ensemble member's total, (K, N) (one member without an ensemble)."""

    total: Any
    prior: Any
    residual: Any
    members: Any

    def parts(self) -> dict[str, Any]:
        """The additive parts by name (what evaluation sums and plots)."""
        return {p: getattr(self, p) for p in PARTS}


class RewardFunction(ABC):
    """A reward: its ``spec`` says what it reads; ``score`` maps windowed columns
    {column: (N, k, ...)} (k = ``spec.window.length``, oldest step first) to per-step parts."""

    spec: RewardSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def columns(self) -> tuple[str, ...]:
        return self.spec.columns

    @property
    def window(self) -> Window:
        return self.spec.window

    @abstractmethod
    def score(self, columns: Mapping[str, np.ndarray]) -> RewardOutput: ...


def single(total: np.ndarray, part: str | None = None) -> RewardOutput:
    """The output of a reward without an ensemble (one member), whose total is all ``part``
    (``prior`` or ``residual``), or neither (None: the true reward has no parts)."""
    total = np.asarray(total, np.float64)
    zeros = np.zeros_like(total)
    return RewardOutput(total, total if part == "prior" else zeros,
                        total if part == "residual" else zeros, total[None])


class TrueReward(RewardFunction):
    """The environment's own reward: the ceiling of any model.

    Meta-World's reward is a function of (s, a, s′) (``sim.true_reward.true_rewards``);
    for stored steps it equals ``next.reward`` (tests/test_transitions.py checks every step
    of a collection), so this reads that column rather than re-simulating.
    """

    def __init__(self) -> None:
        self.spec = RewardSpec("true", (fmt.REWARD,))

    def score(self, columns: Mapping[str, np.ndarray]) -> RewardOutput:
        return single(columns[fmt.REWARD][:, -1])


class PriorReward(RewardFunction):
    """A prior alone, r̂ = weight · r0(s): the baseline a residual model must beat."""

    def __init__(self, prior: str, weight: float = 1.0) -> None:
        PRIORS.get(prior)
        self.prior, self.weight = prior, weight
        name = f"prior:{prior}" if weight == 1.0 else f"prior:{prior}*{weight}"
        self.spec = RewardSpec(name, (fmt.STATE,))

    def score(self, columns: Mapping[str, np.ndarray]) -> RewardOutput:
        obs = np.asarray(columns[fmt.STATE][:, -1], dtype=np.float64)
        return single(self.weight * PRIORS.get(self.prior)(obs), "prior")


class ZeroReward(RewardFunction):
    """r̂ = 0 everywhere: the control that says what SAC does with no reward signal at all."""

    def __init__(self) -> None:
        self.spec = RewardSpec("zero", (fmt.STATE,))

    def score(self, columns: Mapping[str, np.ndarray]) -> RewardOutput:
        return single(np.zeros(len(columns[fmt.STATE])))
