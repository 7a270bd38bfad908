"""Soft Actor-Critic (Stable-Baselines3) on a reward function, with PEBBLE's settings.

The agent learns from r̂ in vectorized environments; what is reported is what really
happened: periodic deterministic evaluations measure success rate (an episode succeeds
if ``info["success"]`` is ever set) and the task's true return on fixed evaluation
episodes, so runs on different rewards compare on the same scale.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from rrm_data.errors import RrmError
from rrm_data.progress import Bar
from rrm_data.reward.base import RewardFunction
from rrm_data.rl.wrapper import TRUE_REWARD, VecRewardWrapper, task_env
from rrm_data.triton_apart import load_triton_apart

load_triton_apart()  # before torch imports Triton lazily (see triton_apart)

EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes never share seeds with training envs
EVAL_FIELDS = ("timesteps", "success_rate", "true_return", "true_return_std", "episode_length")


@dataclass
class SacSettings:
    """SB3 SAC settings; the defaults come from ``recipes/sac_metaworld.yaml``."""

    learning_rate: float = field(default=3e-4, metadata={"help": "Adam step size, all nets"})
    batch_size: int = field(default=512, metadata={"help": "transitions per gradient step"})
    net_arch: list[int] = field(default_factory=lambda: [256, 256, 256],
                                metadata={"help": "hidden sizes of actor and critics"})
    learning_starts: int = field(default=1000, metadata={"help": "random steps before learning"})
    train_freq: int = field(default=1, metadata={"help": "env steps between updates"})
    gradient_steps: int = field(default=1, metadata={"help": "gradient steps per update"})
    buffer_size: int = field(default=1_000_000, metadata={"help": "replay capacity "
                                                          "(at most the run's steps)"})
    gamma: float = field(default=0.99, metadata={"help": "discount"})
    tau: float = field(default=0.005, metadata={"help": "target network update rate"})
    ent_coef: str = field(default="auto_0.1", metadata={"help": "entropy coefficient: auto, "
                                                        "auto_<init> or a number"})
    target_update_interval: int = field(default=2, metadata={"help": "gradient steps between "
                                                             "target updates"})
    n_envs: int = field(default=1, metadata={"help": "environments stepped together"})


def make_vec_env(task: str, reward: RewardFunction, n_envs: int, seed: int,
                 episode_steps: int | None = None) -> VecEnv:
    """``n_envs`` task environments (seeds seed, seed+1, …) rewarded by r̂ in one batch."""
    venv = DummyVecEnv([partial(task_env, task, seed + i, episode_steps)
                        for i in range(n_envs)])
    venv.seed(seed)
    return VecRewardWrapper(venv, reward)


def entropy_coefficient(text: str) -> str | float:
    """SB3's ``ent_coef``: ``auto``, ``auto_<initial value>`` (learned) or a fixed number."""
    if str(text).startswith("auto"):
        return str(text)
    try:
        return float(text)
    except ValueError:
        raise RrmError(f"sac.ent_coef must be auto, auto_<init> or a number, got '{text}'") \
            from None


def make_sac(env: VecEnv, settings: SacSettings, seed: int, total_steps: int) -> SAC:
    return SAC(
        "MlpPolicy", env, learning_rate=settings.learning_rate,
        buffer_size=max(1, min(settings.buffer_size, total_steps)),
        learning_starts=settings.learning_starts, batch_size=settings.batch_size,
        tau=settings.tau, gamma=settings.gamma, train_freq=settings.train_freq,
        gradient_steps=settings.gradient_steps, ent_coef=entropy_coefficient(settings.ent_coef),
        target_update_interval=settings.target_update_interval,
        policy_kwargs={"net_arch": list(settings.net_arch)}, seed=seed, device="cpu")


def evaluate(model: BaseAlgorithm, env: gym.Env, episodes: int, seed: int) -> dict[str, float]:
    """Deterministic episodes on the true reward, episode k reset with seed ``seed + k``."""
    returns, successes, lengths = [], [], []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        total, success, length, done = 0.0, False, 0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            success = success or bool(info["success"])
            length += 1
            done = terminated or truncated
        returns.append(total)
        successes.append(success)
        lengths.append(length)
    return {"success_rate": float(np.mean(successes)), "true_return": float(np.mean(returns)),
            "true_return_std": float(np.std(returns)), "episode_length": float(np.mean(lengths))}


class EvaluationCallback(BaseCallback):
    """Every ``every`` env steps (and at the end), evaluate and append a row to ``eval.csv``."""

    def __init__(self, task: str, every: int, episodes: int, seed: int, csv_path: Path,
                 episode_steps: int | None = None) -> None:
        super().__init__()
        self.every, self.episodes = every, episodes
        self.seed = seed + EVAL_SEED_OFFSET
        self.env = task_env(task, self.seed, episode_steps)
        self.csv_path = csv_path
        self.rows: list[dict[str, float]] = []
        self._next = every

    def _on_step(self) -> bool:
        if self.every > 0 and self.num_timesteps >= self._next:
            self._next += self.every
            self.run()
        return True

    def _on_training_end(self) -> None:
        if not self.rows or self.rows[-1]["timesteps"] != self.num_timesteps:
            self.run()

    def run(self) -> dict[str, float]:
        row = {"timesteps": self.num_timesteps,
               **evaluate(self.model, self.env, self.episodes, self.seed)}
        self.rows.append(row)
        for key, value in row.items():
            if key != "timesteps":
                self.logger.record(f"eval/{key}", value)
        new = not self.csv_path.exists()
        with self.csv_path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=EVAL_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        return row


class TrainingStats(BaseCallback):
    """Advances the progress bar and logs true return and success of training episodes."""

    def __init__(self, bar: Bar | None = None) -> None:
        super().__init__()
        self.bar = bar
        self._true_return: np.ndarray | None = None
        self._success: np.ndarray | None = None

    def _on_training_start(self) -> None:
        n = self.training_env.num_envs
        self._true_return, self._success = np.zeros(n), np.zeros(n, bool)

    def _on_step(self) -> bool:
        infos: list[Mapping[str, Any]] = self.locals["infos"]
        dones: np.ndarray = self.locals["dones"]
        assert self._true_return is not None and self._success is not None  # training started
        self._true_return += [info[TRUE_REWARD] for info in infos]
        self._success |= [bool(info.get("success", False)) for info in infos]
        for i in np.flatnonzero(dones):
            self.logger.record_mean("rollout/true_return", float(self._true_return[i]))
            self.logger.record_mean("rollout/success_rate", float(self._success[i]))
            self._true_return[i], self._success[i] = 0.0, False
        if self.bar is not None:
            self.bar.advance(len(dones), int(dones.sum()))
        return True


def train(model: SAC, steps: int, out: Path, evaluation: EvaluationCallback,
          checkpoint_every: int, bar: Bar | None = None) -> SAC:
    """Learn for ``steps`` env steps, logging CSV to ``out`` and checkpointing there."""
    model.set_logger(configure(str(out), ["csv"]))
    callbacks: list[BaseCallback] = [TrainingStats(bar), evaluation]
    if checkpoint_every > 0:
        every = max(checkpoint_every // model.n_envs, 1)
        callbacks.append(CheckpointCallback(every, str(out / "checkpoints"), name_prefix="sac"))
    model.learn(total_timesteps=steps, callback=callbacks, log_interval=1)
    return model
