"""Roll out one planned episode and return it as columns of the steps table.

Each episode is fully determined by its plan (task, policy, seed), so episodes can run
in any order, in any process, on any machine, and still give the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pyarrow as pa

from rrm_data.dataset import format as fmt
from rrm_data.dataset.observation import ACTION_DIM, STATE_DIM
from rrm_data.dataset.priors import compute_priors
from rrm_data.sim.envs import (
    PhysicsRecorder,
    PhysicsState,
    num_variations,
    reset_to_variation,
    sawyer_env,
)
from rrm_data.sim.policies import PolicySpec, make_policy
from rrm_data.sim.rendering import FrameRenderer


@dataclass(frozen=True)
class EpisodePlan:
    """What one episode will be: which task, which policy, which seed."""

    index: int
    task: str
    policy: PolicySpec
    seed: int


def plan_episodes(tasks: list[str], policies: list[PolicySpec], episodes: int,
                  seed: int) -> list[EpisodePlan]:
    """Cycle tasks fastest, then policies, so every (task, policy) pair gets its share."""
    seeds = np.random.SeedSequence(seed).generate_state(episodes, dtype=np.uint32)
    return [
        EpisodePlan(i, tasks[i % len(tasks)], policies[(i // len(tasks)) % len(policies)],
                    int(seeds[i]))
        for i in range(episodes)
    ]


@dataclass
class EpisodeRecord:
    """One finished episode: its per-step columns and its row of the episodes table."""

    steps: pa.Table
    episode: dict


def rollout(env: gym.Env, plan: EpisodePlan, max_steps: int,
            renderer: FrameRenderer | None = None) -> EpisodeRecord:
    """Run the plan's policy in a fresh variation of the task and record every step.

    With a ``renderer``, each row also gets the camera frames of its state s_t.
    """
    rng = np.random.default_rng(plan.seed)
    variation = int(rng.integers(num_variations(env)))
    obs, rand_vec = reset_to_variation(env, variation, seed=plan.seed)
    policy = make_policy(plan.task, plan.policy)

    observations = np.empty((max_steps, STATE_DIM), np.float64)
    actions = np.empty((max_steps, ACTION_DIM), np.float64)
    rewards = np.empty(max_steps, np.float64)
    success = np.zeros(max_steps, bool)
    done = np.zeros(max_steps, bool)
    physics = PhysicsRecorder(env, max_steps)  # s_t, in the order of fmt.SIM_COLUMNS
    length = max_steps
    for t in range(max_steps):
        observations[t] = obs
        physics.record(t)
        action = policy.act(obs, rng)
        actions[t] = action
        obs, rewards[t], terminated, truncated, info = env.step(action.astype(np.float32))
        success[t] = bool(info["success"])
        if terminated or truncated:
            length = t + 1
            break
    done[length - 1] = True
    sim = physics.columns(length)
    steps = steps_table(plan.index, plan.task, observations[:length], actions[:length],
                        rewards[:length], success[:length], done[:length], sim, sawyer_env(env).dt)
    if renderer is not None:
        states = [PhysicsState(*row) for row in zip(*sim, strict=True)]
        for column, frames in renderer.image_columns(states).items():
            steps = steps.append_column(column, frames)
    reward32 = rewards[:length].astype(np.float32)
    episode = {
        "episode_index": plan.index,
        "task": plan.task,
        "rand_vec": rand_vec.tolist(),
        "seed": plan.seed,
        "policy": plan.policy.kind,
        "policy_noise": plan.policy.noise,
        "length": length,
        "return": float(reward32.astype(np.float64).sum()),
        "success": bool(success[:length].any()),
    }
    return EpisodeRecord(steps, episode)


def steps_table(episode_index: int, task: str, obs: np.ndarray, actions: np.ndarray,
                rewards: np.ndarray, success: np.ndarray, done: np.ndarray,
                physics: list[np.ndarray], dt: float) -> pa.Table:
    """One episode's rows of the steps table (no global ``index`` yet): the collector and the
    online loop's episode log both build them here, so their datasets are alike."""
    n = len(rewards)
    frame = np.arange(n, dtype=np.int64)
    columns: dict[str, pa.Array] = {
        "episode_index": pa.array(np.full(n, episode_index, np.int64)),
        "frame_index": pa.array(frame),
        "timestamp": pa.array((frame * dt).astype(np.float32)),
        "task": pa.array([task] * n, pa.string()),
        fmt.STATE: fmt.fixed_list_array(obs.astype(np.float32), pa.float32()),
        fmt.ACTION: fmt.fixed_list_array(actions.astype(np.float32), pa.float32()),
        fmt.REWARD: pa.array(rewards.astype(np.float32)),
        fmt.SUCCESS: pa.array(success),
        fmt.DONE: pa.array(done),
    }
    for name, values in compute_priors(obs).items():
        columns[fmt.prior_column(name)] = pa.array(values)
    for column, values in zip(fmt.SIM_COLUMNS, physics, strict=True):
        columns[column] = fmt.ragged_list_array(values)
    return pa.table(columns)
