"""Policies that produce trajectories of graded quality, named by a spec string.

``expert:0.3`` is the task's scripted expert with Gaussian action noise σ = 0.3;
``random`` samples uniform actions; ``sac:PATH`` is a policy saved by ``train-sac`` (its
run directory or ``policy.zip``), acting deterministically. Adding a policy kind is one
entry in ``POLICIES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rrm_data.errors import RrmError


class Policy(Protocol):
    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


@dataclass(frozen=True)
class PolicySpec:
    """A parsed policy spec: ``kind`` plus an optional argument (noise level, file path)."""

    kind: str
    arg: str | None = None

    @property
    def noise(self) -> float:
        return float(self.arg) if self.kind == "expert" and self.arg else 0.0

    @property
    def label(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}:{self.arg}"


class ExpertPolicy:
    """Meta-World's scripted expert plus Gaussian action noise, clipped to the action box."""

    def __init__(self, task: str, noise: float) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        self._expert = ENV_POLICY_MAP[task]()
        self._noise = noise

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        action = self._expert.get_action(obs)
        if self._noise > 0:
            action = action + rng.normal(0.0, self._noise, size=action.shape)
        return action.clip(-1.0, 1.0)


class RandomPolicy:
    """Uniform random actions: the low end of the quality range."""

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, size=4)


class SacPolicy:
    """A learned SAC policy (Stable-Baselines3), its mean action: learned policies make new data."""

    def __init__(self, path: str) -> None:
        from rrm_data.rl.sac import load_policy

        self._model = load_policy(path)

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self._model.predict(obs, deterministic=True)[0]


def _expert(task: str, spec: PolicySpec) -> Policy:
    return ExpertPolicy(task, spec.noise)


def _random(task: str, spec: PolicySpec) -> Policy:
    return RandomPolicy()


def _sac(task: str, spec: PolicySpec) -> Policy:
    return SacPolicy(str(spec.arg))


POLICIES: dict[str, Callable[[str, PolicySpec], Policy]] = {
    "expert": _expert,
    "random": _random,
    "sac": _sac,
}


def parse_policy(spec: str) -> PolicySpec:
    """Parse and check one spec string such as ``expert:0.1``."""
    kind, _, arg = str(spec).partition(":")
    if kind not in POLICIES:
        raise RrmError(f"unknown policy '{spec}'; known kinds: {', '.join(POLICIES)}")
    parsed = PolicySpec(kind, arg or None)
    if kind == "expert" and parsed.arg is not None:
        try:
            noise = float(parsed.arg)
        except ValueError:
            raise RrmError(f"policy '{spec}': noise must be a number, as in expert:0.1") from None
        if not 0.0 <= noise <= 10.0:
            raise RrmError(f"policy '{spec}': noise must lie in [0, 10]")
    if kind == "sac":
        if parsed.arg is None:
            raise RrmError(f"policy '{spec}': give the saved policy, as in sac:runs/x/policy.zip")
        make_policy("", parsed)  # load it now, so a bad path fails before any rollout
    return parsed


def make_policy(task: str, spec: PolicySpec) -> Policy:
    return POLICIES[spec.kind](task, spec)
