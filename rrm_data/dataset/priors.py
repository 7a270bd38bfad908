"""Prior rewards r0(s) computed from the 39-d Meta-World observation (RRM, arXiv 2507.00611).

Priors are fixed before training and never receive gradients. Each is written once with
operations numpy arrays and torch tensors share, so the collector (numpy, stored as
``prior.<name>`` columns) and the reward model (torch) compute the very same formula.
Adding a prior is one decorated function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rrm_data.dataset.observation import GOAL, HAND, OBJECT
from rrm_data.registry import Registry

Array = Any  # numpy.ndarray or torch.Tensor of observations (..., 39)


@dataclass(frozen=True)
class Prior:
    """A prior's function, its formula (for cards and artifacts), and whether datasets store it
    as a ``prior.<name>`` column (ablation priors such as ``zero`` are not stored)."""

    fn: Callable[[Array], Array]
    formula: str
    stored: bool = True

    def __call__(self, obs: Array) -> Array:
        return self.fn(obs)


PRIORS: Registry[Prior] = Registry("prior")


def register_prior(name: str, formula: str, stored: bool = True
                   ) -> Callable[[Callable[[Array], Array]], Callable[[Array], Array]]:
    """Decorator: register ``fn`` as the prior ``name``."""
    def add(fn: Callable[[Array], Array]) -> Callable[[Array], Array]:
        PRIORS.register(name)(Prior(fn, formula, stored))
        return fn
    return add


def _distance(a: Array, b: Array) -> Array:
    """Euclidean norm over the last axis (numpy's ``linalg.norm`` computes exactly this)."""
    return ((a - b) ** 2).sum(-1) ** 0.5


@register_prior("object_goal", "-||obs[4:7] - obs[36:39]||")
def object_goal(obs: Array) -> Array:
    """-‖object − goal‖: how far the object still is from where it should end up."""
    return -_distance(obs[..., OBJECT], obs[..., GOAL])


@register_prior("gripper_object", "-||obs[0:3] - obs[4:7]||")
def gripper_object(obs: Array) -> Array:
    """-‖gripper − object‖: the "first step" prior, reach the object."""
    return -_distance(obs[..., HAND], obs[..., OBJECT])


@register_prior("complete", "object_goal + gripper_object")
def complete(obs: Array) -> Array:
    """Sum of the two distance priors."""
    return object_goal(obs) + gripper_object(obs)


@register_prior("zero", "0", stored=False)
def zero(obs: Array) -> Array:
    """No prior: a from-scratch model (PEBBLE) is the residual model on this prior."""
    return obs[..., 0] * 0


def stored_priors() -> list[str]:
    """Priors every dataset stores as ``prior.<name>`` columns, in column order."""
    return [name for name, prior in PRIORS.items() if prior.stored]


def prior_formulas() -> dict[str, str]:
    """Formulas of the stored priors, for meta/info.json and the dataset card."""
    return {name: PRIORS.get(name).formula for name in stored_priors()}


def compute_priors(obs: np.ndarray) -> dict[str, np.ndarray]:
    """All stored priors of a batch of observations, as float32."""
    return {name: np.asarray(PRIORS.get(name)(obs)).astype(np.float32) for name in stored_priors()}
