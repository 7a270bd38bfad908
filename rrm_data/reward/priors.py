"""Prior rewards r0(s, a) computed from the 39-d Meta-World observation (RRM, arXiv 2507.00611).

Priors are fixed before training and never receive gradients. Each is vectorized over
a batch of observations, so the same function serves the collector and the reward model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

HAND = slice(0, 3)
OBJECT = slice(4, 7)
GOAL = slice(36, 39)


def object_goal(obs: np.ndarray) -> np.ndarray:
    """-‖object − goal‖: how far the object still is from where it should end up."""
    return -np.linalg.norm(obs[..., OBJECT] - obs[..., GOAL], axis=-1)


def gripper_object(obs: np.ndarray) -> np.ndarray:
    """-‖gripper − object‖: the "first step" prior, reach the object."""
    return -np.linalg.norm(obs[..., HAND] - obs[..., OBJECT], axis=-1)


def complete(obs: np.ndarray) -> np.ndarray:
    """Sum of the two distance priors."""
    return object_goal(obs) + gripper_object(obs)


PRIORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "object_goal": object_goal,
    "gripper_object": gripper_object,
    "complete": complete,
}
PRIOR_FORMULAS = {
    "object_goal": "-||obs[4:7] - obs[36:39]||",
    "gripper_object": "-||obs[0:3] - obs[4:7]||",
    "complete": "object_goal + gripper_object",
}


def compute_priors(obs: np.ndarray) -> dict[str, np.ndarray]:
    """All named priors of a batch of observations, as float32."""
    return {name: fn(obs).astype(np.float32) for name, fn in PRIORS.items()}
