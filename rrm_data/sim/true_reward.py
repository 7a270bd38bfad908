"""The true reward as a function of (s, a, s′): Meta-World's own ``evaluate_state``, recomputed.

A stored ``next.reward`` scores only the transitions a dataset holds; reward distances (EPIC)
and offline-RL controls need the true reward of any (s, a, s′). Meta-World v3 computes it in
``evaluate_state(next_obs, action)``, which reads three things:

- the next observation (object position, gripper opening) and the action (grip effort);
- constants that ``reset`` derives from the task variation (``rand_vec``): target position,
  the object's and the hand's initial positions (``obj_init_pos``, ``init_tcp``,
  ``hand_init_pos``), ``maxDist`` …, restored by rebuilding the scene from the episode's
  ``rand_vec`` (as rendering does);
- MuJoCo quantities of s′ that the observation does not hold: the gripper's centre
  ``tcp_center`` (the fingertip sites, about 4.5 cm from the hand position ``obs[0:3]``) and, in the
  grasping tasks, the finger pads' positions. So s′ is given as its physics state (what the
  dataset stores in ``sim.*``), loaded with ``mj_forward``; the observation is rebuilt from
  it exactly as ``step`` builds it (float64, clipped to the observation space).

No term reads anything from before s′: the previous-frame copy inside the observation is
taken from s, as ``step`` does, but no v3 reward reads it. The one thing not reproduced
is ``step``'s reward of 0 after a simulator instability (``_did_see_sim_exception``),
which no stored state reveals.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

from rrm_data.dataset.observation import ACTION_DIM, STATE_DIM
from rrm_data.errors import RrmError
from rrm_data.sim.envs import (
    PhysicsState,
    check_task,
    get_physics_state,
    load_physics_state,
    make_env,
    reset_to_rand_vec,
    sawyer_env,
)

# The part of an observation that is the current frame; step copies it into the next one.
_FRAME = slice(0, 18)
# What a reward may read of s′'s observation: its current frame and the goal. No v3 reward
# reads the previous-frame copy (18:36), which comes from s.
_READ = np.r_[0:18, 36:39]


class TaskScene:
    """One Meta-World env of a task, rebuilt into a task variation on demand (reset is ~50
    simulator steps, so consecutive calls for the same ``rand_vec`` reuse the scene)."""

    def __init__(self, task: str) -> None:
        self.task = check_task(task)
        self.env = make_env(task, seed=0)
        self.sawyer = sawyer_env(self.env)
        # the benchmark's task data (observability, task parameters); its rand_vec is replaced
        self.sawyer.set_task(self.env.get_wrapper_attr("tasks")[0])
        self._rand_vec: np.ndarray | None = None

    def restore(self, rand_vec: np.ndarray) -> None:
        rand_vec = np.asarray(rand_vec, dtype=np.float64)
        if self._rand_vec is None or not np.array_equal(rand_vec, self._rand_vec):
            reset_to_rand_vec(self.env, rand_vec)
            self._rand_vec = rand_vec.copy()

    def _load(self, state: PhysicsState) -> None:
        """Write s into the simulator as ``step`` leaves it: target sites placed, then forward."""
        sawyer = self.sawyer
        for site in sawyer._target_site_config:
            sawyer._set_pos_site(*site)
        load_physics_state(sawyer.model, sawyer.data, state)

    def observation(self, obs: np.ndarray, next_state: PhysicsState) -> np.ndarray:
        """The observation ``step`` returns on reaching ``next_state`` from observation ``obs``."""
        sawyer = self.sawyer
        self._load(next_state)
        sawyer._prev_obs = np.asarray(obs[_FRAME], dtype=np.float64)
        space = sawyer.sawyer_observation_space
        return np.clip(sawyer._get_obs(), space.low, space.high, dtype=np.float64)

    def reward(self, obs: np.ndarray, action: np.ndarray, next_state: PhysicsState
               ) -> tuple[float, np.ndarray]:
        """Meta-World's reward of (obs, action, next_state), and the next observation it read."""
        next_obs = self.observation(obs, next_state)
        reward, _ = self.sawyer.evaluate_state(next_obs, np.asarray(action, dtype=np.float32))
        return float(reward), next_obs

    def step(self, obs: np.ndarray, state: PhysicsState, action: np.ndarray
             ) -> tuple[np.ndarray, PhysicsState]:
        """Simulate one step from a stored state: (next observation, next physics state)."""
        sawyer = self.sawyer
        self._load(state)
        sawyer._prev_obs = np.asarray(obs[_FRAME], dtype=np.float64)
        sawyer.curr_path_length = 0  # the stored step may be the env's last one
        sawyer._did_see_sim_exception = False
        next_obs, *_ = sawyer.step(np.asarray(action, dtype=np.float32))
        return np.asarray(next_obs, np.float64), get_physics_state(self.env)


@cache
def task_scene(task: str) -> TaskScene:
    """The process's scene of ``task`` (made on first use; MuJoCo envs are costly to build)."""
    return TaskScene(task)


def _check_batch(obs: np.ndarray, actions: np.ndarray, states: Sequence[PhysicsState],
                 what: str) -> None:
    n = len(obs)
    if obs.ndim != 2 or obs.shape[1] != STATE_DIM:
        raise RrmError(f"observations must be (N, {STATE_DIM}), got {obs.shape}")
    if actions.shape != (n, ACTION_DIM):
        raise RrmError(f"actions must be ({n}, {ACTION_DIM}) like the observations, "
                       f"got {actions.shape}")
    if len(states) != n:
        raise RrmError(f"{what} must hold one physics state per observation ({n}), "
                       f"got {len(states)}")


def true_rewards(task: str, rand_vec: np.ndarray, obs: np.ndarray, actions: np.ndarray,
                 next_obs: np.ndarray, next_physics: Sequence[PhysicsState],
                 atol: float = 1e-5) -> np.ndarray:
    """Meta-World's reward of each (s, a, s′) in one task variation, float64 of shape (N,).

    s′ is given twice: ``next_obs`` as stored and ``next_physics`` (its ``sim.*`` state),
    which the reward needs (see the module docstring). The observation rebuilt from
    ``next_physics`` must match ``next_obs`` (current frame and goal) within ``atol``
    (stored observations are float32), so a misaligned pair fails instead of scoring
    another state.
    """
    obs, actions = np.asarray(obs, np.float64), np.asarray(actions, np.float64)
    next_obs = np.asarray(next_obs, np.float64)
    _check_batch(obs, actions, next_physics, "next_physics")
    if next_obs.shape != obs.shape:
        raise RrmError(f"next_obs must have the observations' shape {obs.shape}, "
                       f"got {next_obs.shape}")
    scene = task_scene(task)
    scene.restore(rand_vec)
    rewards = np.empty(len(obs), np.float64)
    for i, state in enumerate(next_physics):
        rewards[i], rebuilt = scene.reward(obs[i], actions[i], state)
        gap = float(np.abs(rebuilt[_READ] - next_obs[i, _READ]).max())
        if gap > atol:
            raise RrmError(f"{task}: next_obs row {i} differs from the observation of its "
                           f"next_physics by {gap:.3g} (> {atol}); are they the same step?")
    return rewards


def simulate_next(task: str, rand_vec: np.ndarray, obs: np.ndarray, physics: Sequence[PhysicsState],
                  actions: np.ndarray) -> tuple[np.ndarray, list[PhysicsState]]:
    """Step the simulator once from each stored (s, a): the next observations (N, 39) and
    physics states. Used for an episode's last step, whose s′ no dataset row stores."""
    obs, actions = np.asarray(obs, np.float64), np.asarray(actions, np.float64)
    _check_batch(obs, actions, physics, "physics")
    scene = task_scene(task)
    scene.restore(rand_vec)
    next_obs = np.empty_like(obs)
    states: list[PhysicsState] = []
    for i, state in enumerate(physics):
        next_obs[i], next_state = scene.step(obs[i], state, actions[i])
        states.append(next_state)
    return next_obs, states

