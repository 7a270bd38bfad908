"""A dataset as transitions (s, a, r, s′, terminal, timeout), the form offline RL and EPIC read.

What ends an episode: Meta-World v3's ``step`` always returns ``terminated=False`` (success
does not end an MT1 episode) and ``truncated=True`` at its 500-step limit; the collector
and the online loop may stop earlier at their ``episode_steps``. Either way an episode ends at
a time limit, so its last step (``next.done``) is a **timeout** and no step is
**terminal**: a value function must bootstrap through it.

The next observation: a dataset stores s_t on every row, so s′ of step t is row t+1's
state inside an episode. The last step's s′ is stored nowhere; it is recomputed by one
simulator step from that row's stored physics state (``sim.*``) and action, in the scene
rebuilt from the episode's ``rand_vec`` (exact, see the tests). So every stored step,
the last included, is a transition.

The view lives in ``sim/`` (not ``dataset/``) because of that simulator step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import step_columns
from rrm_data.dataset.reader import DatasetDir
from rrm_data.errors import RrmError
from rrm_data.reward.base import RewardFunction
from rrm_data.reward.window import dataset_windows
from rrm_data.sim.envs import PhysicsState
from rrm_data.sim.rendering import physics_states
from rrm_data.sim.true_reward import simulate_next, true_rewards


class Transition(NamedTuple):
    """One transition, as a map-style dataset item (torch's default collate stacks these)."""

    observation: np.ndarray
    action: np.ndarray
    reward: np.float32
    next_observation: np.ndarray
    terminal: np.bool_
    timeout: np.bool_


@dataclass(frozen=True)
class Transitions:
    """Every step of a dataset as a transition, row ``i`` being step ``index == i``.

    Indexable and sized, so ``torch.utils.data.DataLoader(transitions)`` works as it is;
    ``as_dict()`` gives D4RL's / Minari's array names for offline-RL libraries.
    """

    observations: np.ndarray       # (N, 39) float32, s_t
    actions: np.ndarray            # (N, 4) float32
    rewards: np.ndarray            # (N,) float32, r(s_t, a_t, s_{t+1})
    next_observations: np.ndarray  # (N, 39) float32, s_{t+1}
    terminals: np.ndarray          # (N,) bool, always False on Meta-World (see module doc)
    timeouts: np.ndarray           # (N,) bool, the last step of each episode
    episode_index: np.ndarray      # (N,) int64

    def __len__(self) -> int:
        return len(self.rewards)

    def __getitem__(self, i: int) -> Transition:
        return Transition(self.observations[i], self.actions[i], self.rewards[i],
                          self.next_observations[i], self.terminals[i], self.timeouts[i])

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"observations": self.observations, "actions": self.actions,
                "rewards": self.rewards, "next_observations": self.next_observations,
                "terminals": self.terminals, "timeouts": self.timeouts}


@dataclass(frozen=True)
class _Episode:
    task: str
    rand_vec: np.ndarray
    start: int  # first step index
    stop: int   # one past the last step index


def _episodes(dataset: DatasetDir, n_steps: int) -> list[_Episode]:
    """The episodes, checked to tile the steps table 0 … n_steps − 1 in order."""
    rows = dataset.table("episodes", columns=["task", "rand_vec", "index_from", "index_to"])
    episodes = sorted((_Episode(r["task"], np.asarray(r["rand_vec"], np.float64),
                                int(r["index_from"]), int(r["index_to"]))
                       for r in rows.to_pylist()), key=lambda e: e.start)
    bounds = [(e.start, e.stop) for e in episodes]
    tiled = all(a < b for a, b in bounds) and all(
        b == c for (_, b), (c, _) in zip(bounds, bounds[1:], strict=False))
    if not episodes or not tiled or bounds[0][0] != 0 or bounds[-1][1] != n_steps:
        raise RrmError(f"{dataset.root}: the episodes' index_from/index_to do not cover the "
                       f"{n_steps} steps one after another")
    return episodes


def stored_physics(dataset: DatasetDir, rows: np.ndarray) -> list[PhysicsState]:
    """The stored physics state of the given step rows."""
    missing = [c for c in fmt.SIM_COLUMNS if c not in dataset.info.features["steps"]]
    if missing:
        raise RrmError(f"{dataset.root}: steps have no {', '.join(missing)}; the last step of "
                       "an episode needs its physics state to give its next observation")
    table = dataset.table("steps", columns=["index", *fmt.SIM_COLUMNS])
    order = np.argsort(table.column("index").to_numpy(), kind="stable")
    return physics_states(table.take(order[rows]))


def _final_steps(episodes: list[_Episode], obs: np.ndarray, actions: np.ndarray,
                 last_states: list[PhysicsState]) -> tuple[np.ndarray, list[PhysicsState]]:
    """s′ (observation and physics state) of each episode's last step, by one simulator step."""
    next_obs = np.empty((len(episodes), obs.shape[1]), np.float64)
    next_states: list[PhysicsState] = []
    for k, (episode, state) in enumerate(zip(episodes, last_states, strict=True)):
        t = episode.stop - 1
        o, s = simulate_next(episode.task, episode.rand_vec, obs[t:t + 1], [state],
                             actions[t:t + 1])
        next_obs[k] = o[0]
        next_states.extend(s)
    return next_obs, next_states


def dataset_transitions(dataset: DatasetDir, reward: RewardFunction | None = None
                        ) -> Transitions:
    """The dataset's steps as transitions, rewarded by ``reward`` (default: the stored
    ``next.reward``; any ``RewardFunction`` scores its own columns of the steps)."""
    columns = step_columns(dataset, [fmt.STATE, fmt.ACTION, fmt.REWARD, fmt.DONE,
                                     "episode_index"])
    obs, actions = columns[fmt.STATE], columns[fmt.ACTION]
    episodes = _episodes(dataset, len(obs))
    last = np.array([e.stop - 1 for e in episodes])
    timeouts = np.zeros(len(obs), bool)
    timeouts[last] = True
    if not np.array_equal(columns[fmt.DONE], timeouts):
        raise RrmError(f"{dataset.root}: next.done is not set on exactly each episode's last step")
    if reward is None:
        rewards = columns[fmt.REWARD].astype(np.float32)
    else:
        scored = reward.score(dataset_windows(dataset, reward.columns, reward.window)).total
        rewards = np.asarray(scored, np.float32)
    next_obs = np.empty_like(obs)
    next_obs[:-1] = obs[1:]  # row t+1 is s′ inside an episode; each last row is replaced below
    final_obs, _ = _final_steps(episodes, obs, actions, stored_physics(dataset, last))
    next_obs[last] = final_obs.astype(np.float32)
    return Transitions(obs, actions, rewards, next_obs, np.zeros(len(obs), bool), timeouts,
                       columns["episode_index"].astype(np.int64))


def dataset_true_rewards(dataset: DatasetDir) -> np.ndarray:
    """Meta-World's reward of every stored step recomputed from (s, a, s′), float64 (N,):
    s′'s physics state is the next row's ``sim.*``, or the simulated one after a last step."""
    columns = step_columns(dataset, [fmt.STATE, fmt.ACTION])
    obs, actions = columns[fmt.STATE], columns[fmt.ACTION]
    episodes = _episodes(dataset, len(obs))
    states = stored_physics(dataset, np.arange(len(obs)))
    final_obs, final_states = _final_steps(episodes, obs, actions,
                                           [states[e.stop - 1] for e in episodes])
    rewards = np.empty(len(obs), np.float64)
    for k, e in enumerate(episodes):
        span = slice(e.start, e.stop)
        next_obs = np.concatenate([obs[e.start + 1:e.stop], final_obs[k:k + 1]])
        rewards[span] = true_rewards(e.task, e.rand_vec, obs[span], actions[span], next_obs,
                                     [*states[e.start + 1:e.stop], final_states[k]])
    return rewards
