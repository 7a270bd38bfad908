"""What evaluation, galleries and RL need from a reward: per-step scores split into parts.

A reward function scores columns of the steps table (``observation.state``, ``action``,
``prior.<name>``, ``next.reward``, cached image features …) and returns the total r̂
with its prior and residual parts. Learned models come from an exported artifact;
``true`` and ``prior:<name>`` are references for comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from rrm_data.dataset import format as fmt
from rrm_data.dataset.priors import PRIORS


class RewardOutput(NamedTuple):
    """Per-step reward r̂ = prior part + residual part, each of shape (N,)."""

    total: np.ndarray
    prior: np.ndarray
    residual: np.ndarray


@runtime_checkable
class RewardFunction(Protocol):
    """Scores steps. ``columns`` names the steps-table columns that ``score`` reads."""

    @property
    def name(self) -> str: ...

    @property
    def columns(self) -> tuple[str, ...]: ...

    def score(self, columns: Mapping[str, np.ndarray]) -> RewardOutput: ...


@dataclass(frozen=True)
class TrueReward:
    """The environment's own reward, read from ``next.reward``: the ceiling of any model."""

    name: str = "true"
    columns: tuple[str, ...] = (fmt.REWARD,)

    def score(self, columns: Mapping[str, np.ndarray]) -> RewardOutput:
        total = np.asarray(columns[fmt.REWARD], dtype=np.float64)
        zeros = np.zeros_like(total)
        return RewardOutput(total, zeros, zeros)


@dataclass(frozen=True)
class PriorReward:
    """A prior alone, r̂ = weight · r0(s): the baseline a residual model must beat."""

    prior: str
    weight: float = 1.0
    columns: tuple[str, ...] = (fmt.STATE,)

    @property
    def name(self) -> str:
        return f"prior:{self.prior}" if self.weight == 1.0 else f"prior:{self.prior}*{self.weight}"

    def score(self, columns: Mapping[str, np.ndarray]) -> RewardOutput:
        obs = np.asarray(columns[fmt.STATE], dtype=np.float64)
        prior = self.weight * PRIORS.get(self.prior)(obs)
        return RewardOutput(prior, prior, np.zeros_like(prior))
