"""Policies that produce trajectories of graded quality, named by a spec string.

``expert:0.3`` is the task's scripted expert with Gaussian action noise σ = 0.3;
``epsilon:0.9`` is the expert whose every action is replaced, with probability 0.9, by a
uniform random one (where the expert's actions are large enough that no σ grades success,
as on door-close-v3); ``random`` samples uniform actions; ``sac:PATH`` is a policy saved by
``train-sac`` (its run directory or ``policy.zip``) and ``offline:PATH`` one saved by
``train-offline`` (its run directory or ``policy.pt``), both acting deterministically.
Adding a policy kind is one decorated factory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import numpy as np

from rrm_data.dataset.observation import STATE_DIM
from rrm_data.errors import RrmError, first_line
from rrm_data.io import saved_policy_file
from rrm_data.registry import Registry
from rrm_data.triton_apart import load_triton_apart

POLICY_FILE = "policy.zip"  # what train-sac saves in its run directory


class Policy(Protocol):
    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


@dataclass(frozen=True)
class PolicySpec:
    """A parsed policy spec: ``kind`` plus an optional argument (noise level, file path)."""

    kind: str
    arg: str | None = None

    @property
    def noise(self) -> float:
        """The kind's noise level (``NOISE_RANGES``), what an episode row stores."""
        return float(self.arg) if self.kind in NOISE_RANGES and self.arg else 0.0


# the kinds whose argument is a noise level, and its range: σ, or a probability
NOISE_RANGES = {"expert": 10.0, "epsilon": 1.0}


def policy_label(kind: str, noise: float) -> str:
    """How an episode's policy is named everywhere: the spec ``policy=`` takes (``expert:0.5``,
    ``random``), from the kind and noise its episode row stores."""
    return f"{kind}:{noise:g}" if kind in NOISE_RANGES else kind


class ExpertPolicy:
    """Meta-World's scripted expert plus Gaussian action noise, clipped to the action box."""

    def __init__(self, task: str, noise: float) -> None:
        from metaworld.policies import ENV_POLICY_MAP
        from metaworld.policies.policy import Policy as ScriptedPolicy

        # every entry is a concrete subclass of the abstract scripted Policy
        make_expert: Callable[[], ScriptedPolicy] = ENV_POLICY_MAP[task]
        self._expert = make_expert()
        self._noise = noise

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        action: np.ndarray = self._expert.get_action(obs)
        if self._noise > 0:
            action = action + rng.normal(0.0, self._noise, size=action.shape)
        return action.clip(-1.0, 1.0)


class EpsilonExpertPolicy:
    """The scripted expert, each action replaced by a uniform one with probability ``epsilon``:
    Meta-World's experts act far outside the action box (clipped), so Gaussian noise barely
    changes what they do on some tasks, while a share of random steps grades them."""

    def __init__(self, task: str, epsilon: float) -> None:
        self._expert, self._random = ExpertPolicy(task, 0.0), RandomPolicy()
        self._epsilon = epsilon

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        chosen = self._random if rng.random() < self._epsilon else self._expert
        return chosen.act(obs, rng)


class RandomPolicy:
    """Uniform random actions: the low end of the quality range."""

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, size=4)


class SacPolicy:
    """A learned SAC policy (sbx), its mean action: learned policies make new data."""

    def __init__(self, path: str) -> None:
        self._model = load_policy(path)

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self._model.predict(obs, deterministic=True)[0]


@cache
def load_policy(path: str) -> Any:
    """A SAC policy saved by ``train-sac`` (a run directory or its ``policy.zip``), loaded once."""
    from sbx import SAC  # only collections that roll out learned policies need JAX

    file = saved_policy_file(path, POLICY_FILE, "SAC", "train-sac")
    load_triton_apart()  # before JAX compiles: Triton loaded after that crashes beside OSMesa
    try:
        model = SAC.load(file)
    except Exception as exc:  # SB3's loader raises whatever the zip or pickle layer raises
        raise RrmError(f"{file}: not a loadable sbx SAC policy ({first_line(exc)})") from None
    if model.observation_space.shape != (STATE_DIM,):
        raise RrmError(f"{file}: the policy observes shape {model.observation_space.shape}, "
                       f"Meta-World gives ({STATE_DIM},)")
    return model


POLICY_KINDS: Registry[Callable[[str, PolicySpec], Policy]] = Registry("policy")


@POLICY_KINDS.register("expert")
def _expert(task: str, spec: PolicySpec) -> Policy:
    return ExpertPolicy(task, spec.noise)


@POLICY_KINDS.register("epsilon")
def _epsilon(task: str, spec: PolicySpec) -> Policy:
    return EpsilonExpertPolicy(task, spec.noise)


@POLICY_KINDS.register("random")
def _random(task: str, spec: PolicySpec) -> Policy:
    return RandomPolicy()


@POLICY_KINDS.register("sac")
def _sac(task: str, spec: PolicySpec) -> Policy:
    return SacPolicy(str(spec.arg))


@POLICY_KINDS.register("offline")
def _offline(task: str, spec: PolicySpec) -> Policy:
    return OfflinePolicyAdapter(str(spec.arg))


class OfflinePolicyAdapter:
    """A ``train-offline`` policy (torch), its deterministic action tanh(loc)."""

    def __init__(self, path: str) -> None:
        from rrm_data.rl.offline.policy import load_offline_policy

        self._policy = load_offline_policy(path)

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self._policy.predict(obs, deterministic=True)[0]


def parse_policy(spec: str) -> PolicySpec:
    """Parse and check one spec string such as ``expert:0.1``."""
    kind, _, arg = str(spec).partition(":")
    POLICY_KINDS.get(kind)
    parsed = PolicySpec(kind, arg or None)
    if kind in NOISE_RANGES and parsed.arg is not None:
        top = NOISE_RANGES[kind]
        try:
            noise = float(parsed.arg)
        except ValueError:
            raise RrmError(f"policy '{spec}': noise must be a number, as in {kind}:0.1") from None
        if not 0.0 <= noise <= top:
            raise RrmError(f"policy '{spec}': noise must lie in [0, {top:g}]")
    if kind in ("sac", "offline"):
        if parsed.arg is None:
            raise RrmError(f"policy '{spec}': give the saved policy, as in {kind}:runs/x")
        make_policy("", parsed)  # load it now, so a bad path fails before any rollout
    return parsed


def make_policy(task: str, spec: PolicySpec) -> Policy:
    return POLICY_KINDS.get(spec.kind)(task, spec)
