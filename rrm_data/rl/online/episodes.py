"""What the agent did, episode by episode, kept so that queries can show it to a teacher.

:class:`EpisodeLog` wraps each training environment and records every step as the
collector does (state, action, true reward, success and the physics state, so a
queried segment can be re-rendered); :class:`EpisodeStore` keeps the finished episodes as
files in the run's work folder (recent ones also in memory), so queries draw segments from
recent episodes and the feedback dataset holds the steps of every segment it asked about.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import pyarrow as pa

from rrm_data.collection.collector import episode_file, read_episode, write_episode
from rrm_data.dataset import format as fmt
from rrm_data.io import remove_owned
from rrm_data.sim.envs import PhysicsRecorder, env_fps, sawyer_env
from rrm_data.sim.rollout import steps_table

POLICY = "sac-online"


@dataclass(frozen=True)
class EpisodeArrays:
    """The parts of an episode that queries and reward training read."""

    obs: np.ndarray      # (T, 39) float32
    action: np.ndarray   # (T, 4) float32
    reward: np.ndarray   # (T,) float64, the task's true reward

    @classmethod
    def from_steps(cls, steps: pa.Table) -> EpisodeArrays:
        def matrix(name: str) -> np.ndarray:
            column = steps.column(name).combine_chunks()
            return np.asarray(column.flatten()).reshape(len(column), -1)

        return cls(matrix(fmt.STATE), matrix(fmt.ACTION),
                   steps.column(fmt.REWARD).to_numpy().astype(np.float64))


class EpisodeStore:
    """Finished episodes as Arrow files under ``root`` (the collector's episode format).

    Episode numbers grow with time. The ``recent`` newest stay in memory for queries (none
    when 0: train-sac's recorder only writes); :meth:`prune` deletes older files that no
    query refers to.
    """

    def __init__(self, root: Path, task: str, recent: int, next_index: int = 0,
                 seed: int = 0) -> None:
        self.root, self.task, self.recent_count = Path(root), task, recent
        self.next_index, self.seed = next_index, seed
        self.arrays: dict[int, EpisodeArrays] = {}
        self.fps = 0.0  # of the episodes' environment, set by the EpisodeLog that fills it

    def add(self, steps: pa.Table, row: dict[str, Any]) -> int:
        """Store one finished episode; returns its number."""
        index = self.next_index
        self.next_index += 1
        steps = steps.set_column(steps.schema.get_field_index("episode_index"), "episode_index",
                                 pa.array(np.full(steps.num_rows, index, np.int64)))
        write_episode(episode_file(self.root, index), steps, {**row, "episode_index": index})
        if self.recent_count > 0:
            self.arrays[index] = EpisodeArrays.from_steps(steps)
            for old in sorted(self.arrays)[:-self.recent_count]:
                del self.arrays[old]
        return index

    def recent(self) -> list[int]:
        return sorted(self.arrays)

    def episode(self, index: int) -> EpisodeArrays:
        """An episode's arrays, read from its file unless it is still in memory."""
        if index not in self.arrays:
            return EpisodeArrays.from_steps(read_episode(episode_file(self.root, index))[0])
        return self.arrays[index]

    def read(self, index: int) -> tuple[pa.Table, dict]:
        """An episode's steps table and episodes row."""
        return read_episode(episode_file(self.root, index))

    def on_disk(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in (self.root / "episodes").glob("*.arrow"))

    def prune(self, keep: set[int]) -> None:
        """Delete the files of old episodes that nothing refers to."""
        recent = set(self.arrays)
        for index in self.on_disk():
            if index not in recent and index not in keep:
                remove_owned(episode_file(self.root, index))

    def restore(self, next_index: int) -> None:
        """After a restart: forget episodes finished after the checkpoint, reload recent ones."""
        self.next_index = next_index
        on_disk = self.on_disk()
        for index in on_disk:
            if index >= next_index:
                remove_owned(episode_file(self.root, index))
        kept = [i for i in on_disk if i < next_index]
        self.arrays = {i: self.episode(i)
                       for i in kept[max(len(kept) - self.recent_count, 0):]}


class EpisodeLog(gym.Wrapper):
    """Records each step of one training environment; hands finished episodes to a store.

    ``policy`` names the policy of an episode, asked at its first step (train-sac's
    recorder names the training step range); by default :data:`POLICY`.
    """

    def __init__(self, env: gym.Env, store: EpisodeStore,
                 policy: Callable[[], str] = lambda: POLICY) -> None:
        super().__init__(env)
        self.store, self.policy = store, policy
        self._policy = POLICY
        store.fps = env_fps(env)
        self.capacity = sawyer_env(env).max_path_length + 1
        self._physics = PhysicsRecorder(env, self.capacity)
        self._rows: dict[str, list] = {}
        self._rand_vec: list[float] = []
        self._obs: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._obs = np.asarray(obs)
        self._rows = {"obs": [], "action": [], "reward": [], "success": []}
        self._rand_vec = np.asarray(sawyer_env(self.env)._last_rand_vec, np.float64).tolist()
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        t = len(self._rows["obs"])
        if t == 0:
            self._policy = self.policy()
        if t < self.capacity:
            self._physics.record(t)
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._rows["obs"].append(self._obs)
        self._rows["action"].append(np.asarray(action, np.float64))
        self._rows["reward"].append(float(reward))
        self._rows["success"].append(bool(info.get("success", False)))
        self._obs = np.asarray(obs)
        if terminated or truncated:
            self._finish()
        return obs, reward, terminated, truncated, info

    def _finish(self) -> None:
        n = min(len(self._rows["obs"]), self.capacity)
        rewards = np.asarray(self._rows["reward"][:n])
        success = np.asarray(self._rows["success"][:n])
        done = np.zeros(n, bool)
        done[-1] = True
        steps = steps_table(-1, self.store.task, np.asarray(self._rows["obs"][:n]),
                            np.asarray(self._rows["action"][:n]), rewards, success, done,
                            self._physics.columns(n), sawyer_env(self.env).dt)
        self.store.add(steps, {
            "task": self.store.task, "rand_vec": self._rand_vec, "seed": self.store.seed,
            "policy": self._policy, "policy_noise": 0.0, "length": n,
            "return": float(rewards.astype(np.float32).astype(np.float64).sum()),
            "success": bool(success.any())})
