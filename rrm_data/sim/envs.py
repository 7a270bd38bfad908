"""Meta-World adapter: make task environments, choose and restore task variations and physics state.

The collector, the re-renderer and the RL bridge all go through here, so an episode is
always rebuilt the same way: pick the task variation (``rand_vec``), reset, then step.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import metaworld  # registers the Meta-World/* environments
import mujoco
import numpy as np

from rrm_data.errors import RrmError
from rrm_data.registry import unknown_name

if TYPE_CHECKING:
    from metaworld.sawyer_xyz_env import SawyerXYZEnv


@cache
def task_names() -> tuple[str, ...]:
    """All Meta-World v3 task names."""
    return tuple(sorted(metaworld.ALL_V3_ENVIRONMENTS))


def check_task(name: str) -> str:
    """Return ``name`` if it is a Meta-World v3 task, else fail listing close matches."""
    if name in task_names():
        return name
    raise RrmError(unknown_name("task", name, list(task_names()),
                                listed=f"the {len(task_names())} Meta-World v3 tasks"))


# Meta-World v3 truncates every episode here (max_path_length), whatever episode_steps asks.
EPISODE_LIMIT = 500


def episode_length(episode_steps: int | None) -> int:
    """Steps of every episode cut at ``episode_steps`` (None: not cut): Meta-World v3 tasks
    never end early, and end at its 500-step limit."""
    return min(episode_steps or EPISODE_LIMIT, EPISODE_LIMIT)


@dataclass(frozen=True)
class RenderSpec:
    """Camera and square size of gymnasium's own ``env.render()`` (MuJoCo's default scene).

    Datasets render through ``rrm_data.sim.rendering`` instead; this is the reference it is
    checked and benchmarked against.
    """

    camera: str
    size: int


def make_env(task: str, seed: int, render: RenderSpec | None = None) -> gym.Env:
    """A Meta-World MT1 environment whose task variation is chosen by the caller, not on reset."""
    check_task(task)
    kwargs: dict[str, Any] = {}
    if render is not None:
        kwargs = dict(render_mode="rgb_array", camera_name=render.camera,
                      width=render.size, height=render.size)
    env = gym.make("Meta-World/MT1", env_name=task, seed=seed, **kwargs)
    env.get_wrapper_attr("toggle_sample_tasks_on_reset")(False)
    return env


def sawyer_env(env: gym.Env) -> SawyerXYZEnv:
    """The Meta-World MuJoCo environment under ``env``'s wrappers (``model``, ``data``, ``dt``)."""
    return cast("SawyerXYZEnv", env.unwrapped)


def num_variations(env: gym.Env) -> int:
    return len(env.get_wrapper_attr("tasks"))


def reset_to_variation(env: gym.Env, variation: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Reset into the benchmark's task variation number ``variation``; return (obs, rand_vec)."""
    unwrapped = sawyer_env(env)
    unwrapped.set_task(env.get_wrapper_attr("tasks")[variation])
    obs, _ = env.reset(seed=seed)
    return obs, np.asarray(unwrapped._last_rand_vec, dtype=np.float64).copy()


def reset_to_rand_vec(env: gym.Env, rand_vec: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rebuild the scene of a stored episode from its ``rand_vec``."""
    unwrapped = sawyer_env(env)
    unwrapped._freeze_rand_vec = True
    unwrapped._last_rand_vec = np.asarray(rand_vec, dtype=np.float64)
    obs, _ = env.reset(seed=seed)
    return obs


@dataclass(frozen=True)
class PhysicsState:
    """Enough of MuJoCo's state to restore a step exactly (positions, velocities, mocap)."""

    qpos: np.ndarray
    qvel: np.ndarray
    mocap_pos: np.ndarray
    mocap_quat: np.ndarray


def get_physics_state(env: gym.Env) -> PhysicsState:
    data = sawyer_env(env).data
    return PhysicsState(data.qpos.copy(), data.qvel.copy(),
                        data.mocap_pos.ravel().copy(), data.mocap_quat.ravel().copy())


# The parts of MuJoCo's state that PhysicsState holds, in the same order (mj_getState's).
_PHYSICS_STATE_SPEC = (mujoco.mjtState.mjSTATE_QPOS | mujoco.mjtState.mjSTATE_QVEL
                       | mujoco.mjtState.mjSTATE_MOCAP_POS | mujoco.mjtState.mjSTATE_MOCAP_QUAT)


class PhysicsRecorder:
    """Records the physics state of every step of an episode: one C call per step, into one
    preallocated array, so recording costs next to nothing beside ``env.step``."""

    def __init__(self, env: gym.Env, max_steps: int) -> None:
        unwrapped = sawyer_env(env)
        self._model, self._data = unwrapped.model, unwrapped.data
        size = mujoco.mj_stateSize(self._model, _PHYSICS_STATE_SPEC)
        self._states = np.empty((max_steps, size), np.float64)

    def record(self, t: int) -> None:
        mujoco.mj_getState(self._model, self._data, self._states[t], _PHYSICS_STATE_SPEC)

    def columns(self, length: int) -> list[np.ndarray]:
        """The first ``length`` states, split into qpos, qvel, mocap_pos, mocap_quat."""
        model = self._model
        ends = np.cumsum([model.nq, model.nv, 3 * model.nmocap])
        return np.split(self._states[:length], ends, axis=1)


def load_physics_state(model: mujoco.MjModel, data: mujoco.MjData, state: PhysicsState) -> None:
    """Write a stored state into ``data`` and recompute derived quantities (for rendering)."""
    data.qpos[:] = state.qpos
    data.qvel[:] = state.qvel
    data.mocap_pos[:] = np.reshape(state.mocap_pos, data.mocap_pos.shape)
    data.mocap_quat[:] = np.reshape(state.mocap_quat, data.mocap_quat.shape)
    mujoco.mj_forward(model, data)


def env_fps(env: gym.Env) -> float:
    return float(env.metadata.get("render_fps") or 1.0 / sawyer_env(env).dt)


def suite_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"suite": "metaworld", "version": version("metaworld"), "mujoco": mujoco.__version__}
