"""Environments whose reward is a reward function's r̂(s_t, a_t) instead of the task's own.

r̂ scores the observation *before* the step and the action taken, as the steps table
pairs them (``observation.state`` with ``action``), over the reward's window: each
environment keeps its last steps' columns, restarted at every episode's first step. The
true reward is kept in ``info["true_reward"]`` and Meta-World's ``info["success"]``
passes through, so a trainer can still report what really happened. A reward that reads
camera frames gets frames of the same pre-step state, rendered from the physics state as
datasets render them (the cameras, size and scene quality its artifact records).

:class:`RewardWrapper` wraps one gymnasium environment; :class:`VecRewardWrapper` wraps
Stable-Baselines3's vector environment and scores all its environments in one batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from rrm_data.dataset.observation import GOAL
from rrm_data.errors import RrmError
from rrm_data.reward.base import RewardFunction
from rrm_data.reward.spec import Window
from rrm_data.rl.relabel import frame_cameras, live_step_columns
from rrm_data.sim.envs import get_physics_state, make_env, sawyer_env
from rrm_data.sim.rendering import FrameRenderer, FrameSpec

TRUE_REWARD = "true_reward"


def reward_frame_spec(reward: RewardFunction) -> FrameSpec | None:
    """How frames must be rendered for ``reward`` (as its training data was): None if none."""
    cameras = frame_cameras(reward)
    if not cameras:
        return None
    frames = reward.spec.frames
    if frames is None or frames.height is None:
        raise RrmError(f"reward '{reward.name}' reads frames but does not record their size")
    return FrameSpec(cameras, frames.height, frames.quality)


class LiveWindows:
    """The columns of each environment's last steps, as the reward's window reads them.

    ``push`` adds one step per environment and returns the windows (n, k, ...), oldest
    first; an environment marked by ``restart`` begins a new episode at its next step,
    whose window then repeats that first step (as ``reward.window`` pads stored steps).
    """

    def __init__(self, window: Window, n_envs: int) -> None:
        self.window = window
        self._history: dict[str, np.ndarray] = {}
        self._fresh = np.ones(n_envs, bool)

    def restart(self, envs: np.ndarray | None = None) -> None:
        """Environments (a mask; all when None) whose next step starts an episode."""
        self._fresh |= True if envs is None else np.asarray(envs, bool)

    def push(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.window.length == 1:  # Markovian: the step is its own window
            return {c: v[:, None] for c, v in columns.items()}
        span, fresh = self.window.span, self._fresh
        for c, v in columns.items():
            old = self._history.get(c)
            new = (np.repeat(v[:, None], span, axis=1) if old is None
                   else np.concatenate([old[:, 1:], v[:, None]], axis=1))
            new[fresh] = v[fresh][:, None]
            self._history[c] = new
        self._fresh = np.zeros_like(fresh)
        return {c: h[:, ::self.window.stride] for c, h in self._history.items()}


class FrameSource:
    """Frames of the environments' current (pre-step) states, rendered as datasets render them."""

    def __init__(self, envs: Sequence[gym.Env], spec: FrameSpec) -> None:
        self._envs = [sawyer_env(env) for env in envs]
        self._renderers = [FrameRenderer(env.model, spec) for env in self._envs]
        self._cameras = spec.cameras

    def capture(self) -> dict[str, np.ndarray]:
        """{camera: uint8 (n_envs, size, size, 3)}."""
        frames = [r.render(get_physics_state(e)) for r, e in zip(self._renderers, self._envs,
                                                                  strict=True)]
        return {c: np.stack([f[c] for f in frames]) for c in self._cameras}


class SeededReset(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """``reset(seed=s)`` reseeds the variation draw, which Meta-World's own reset ignores.

    Meta-World builds its observation space while the goal is still hidden, so the goal's
    bounds read [0, 0] although observations hold the goal; they are opened here.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        space = env.observation_space
        assert isinstance(space, gym.spaces.Box)  # Meta-World observations are one vector
        low, high = space.low.copy(), space.high.copy()
        low[GOAL], high[GOAL] = -np.inf, np.inf
        self.observation_space = gym.spaces.Box(low, high, dtype=space.dtype)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            sawyer_env(self.env).seed(seed)
        return self.env.reset(seed=seed, options=options)


def task_env(task: str, seed: int, episode_steps: int | None = None) -> gym.Env:
    """A Meta-World task that draws one of its benchmark variations on every reset, as RL needs.

    ``episode_steps`` shortens episodes below Meta-World's 500 steps (for quick runs).
    """
    env = make_env(task, seed)
    if episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, episode_steps)
    env.get_wrapper_attr("toggle_sample_tasks_on_reset")(True)
    return SeededReset(env)


class RewardWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """One environment rewarded by r̂; ``info`` keeps ``true_reward`` and ``success``."""

    def __init__(self, env: gym.Env, reward: RewardFunction) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, reward=reward)
        super().__init__(env)
        self.reward = reward
        spec = reward_frame_spec(reward)
        self._source = None if spec is None else FrameSource([env], spec)
        self._windows = LiveWindows(reward.window, 1)
        self._obs: np.ndarray | None = None
        self._frames: dict[str, np.ndarray] | None = None

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._windows.restart()
        self._remember(obs)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._obs is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        obs, true_reward, terminated, truncated, info = self.env.step(action)
        columns = live_step_columns(self.reward, self._obs[None], np.asarray(action)[None],
                                    env_reward=np.asarray([true_reward]), frames=self._frames)
        reward = self.reward.score(self._windows.push(columns)).total
        self._remember(obs)
        return obs, float(reward[0]), terminated, truncated, {**info, TRUE_REWARD: true_reward}

    def _remember(self, obs: np.ndarray) -> None:
        self._obs = np.asarray(obs)
        self._frames = None if self._source is None else self._source.capture()


class VecRewardWrapper(VecEnvWrapper):
    """SB3 vector environment rewarded by r̂, scored for all environments in one batch."""

    def __init__(self, venv: VecEnv, reward: RewardFunction) -> None:
        super().__init__(venv)
        self.reward = reward
        spec = reward_frame_spec(reward)
        self._source = None if spec is None else FrameSource(venv.get_attr("unwrapped"), spec)
        self._windows = LiveWindows(reward.window, venv.num_envs)
        self._obs: np.ndarray | None = None
        self._frames: dict[str, np.ndarray] | None = None
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        assert isinstance(obs, np.ndarray)  # one Box observation per environment
        self._windows.restart()
        self._remember(obs)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, true_rewards, dones, infos = self.venv.step_wait()
        assert isinstance(obs, np.ndarray)  # one Box observation per environment
        assert self._obs is not None and self._actions is not None, "reset and step_async first"
        columns = live_step_columns(self.reward, self._obs, self._actions,
                                    env_reward=true_rewards, frames=self._frames)
        rewards = np.asarray(self.reward.score(self._windows.push(columns)).total, np.float32)
        self._windows.restart(dones)
        for info, true_reward in zip(infos, true_rewards, strict=True):
            info[TRUE_REWARD] = float(true_reward)
        self._remember(obs)  # after an episode ends, SB3 has already reset: the next s_t
        return obs, rewards, dones, infos

    def _remember(self, obs: np.ndarray) -> None:
        self._obs = np.asarray(obs)
        self._frames = None if self._source is None else self._source.capture()
