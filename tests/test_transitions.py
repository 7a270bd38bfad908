"""The true reward as a function of (s, a, s′) and the transition view, on real collections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import step_columns
from rrm_data.dataset.reader import open_dataset
from rrm_data.errors import RrmError
from rrm_data.reward.base import PriorReward
from rrm_data.sim.envs import make_env, reset_to_variation, sawyer_env
from rrm_data.sim.rendering import physics_states
from rrm_data.sim.transitions import dataset_transitions, dataset_true_rewards
from rrm_data.sim.true_reward import true_rewards

TASKS = ["button-press-v3", "drawer-close-v3", "reach-v3"]
# One episode per task per policy (expert, noisy expert), run to Meta-World's own 500-step limit.
FULL = {"task": TASKS, "episodes": 6, "episode_steps": 500, "pairs": 100}
# Episodes the collector stops at 60 steps, and the same episodes one step longer.
SHORT = {"task": TASKS, "episodes": 6, "episode_steps": 60, "pairs": 50}


@pytest.fixture(scope="module")
def full(make_dataset) -> Path:
    return make_dataset(**FULL)


def test_true_reward_equals_stored_reward_on_every_step(full: Path) -> None:
    data = open_dataset(full)
    stored = step_columns(data, [fmt.REWARD])[fmt.REWARD]
    rewards = dataset_true_rewards(data)
    assert len(rewards) == len(stored) == 3000
    gap32 = float(np.abs(rewards.astype(np.float32) - stored).max())
    gap64 = float(np.abs(rewards - stored.astype(np.float64)).max())
    # next.reward is Meta-World's float64 reward stored as float32: recomputed, it rounds to
    # the same float32 on every step (the last steps' s′ comes from one simulator step)
    assert np.array_equal(rewards.astype(np.float32), stored), \
        f"max |f32(true) - next.reward| = {gap32}, max |true - next.reward| = {gap64}"
    assert gap64 < 1e-6, f"max |true - next.reward| = {gap64}"
    # the rewards vary (not a constant both sides agree on), on every task
    assert np.ptp(stored) > 1.0


def test_true_reward_reads_the_next_state_and_rejects_a_mismatch(full: Path) -> None:
    data = open_dataset(full)
    episode = data.table("episodes").to_pylist()[0]  # button-press, expert
    span = slice(episode["index_from"], episode["index_to"])
    cols = step_columns(data, [fmt.STATE, fmt.ACTION, fmt.REWARD])
    obs, actions = cols[fmt.STATE][span], cols[fmt.ACTION][span]
    steps = data.table("steps", columns=["index", *fmt.SIM_COLUMNS]).sort_by("index")
    states = physics_states(steps.slice(span.start, span.stop - span.start))
    rand_vec = np.asarray(episode["rand_vec"])
    # scoring (s, a, s) instead of (s, a, s′) gives other rewards: s′ is what counts
    same = true_rewards(TASKS[0], rand_vec, obs[1:], actions[1:], obs[1:], states[1:])
    assert not np.array_equal(same.astype(np.float32), cols[fmt.REWARD][span][1:])
    # a next_obs that does not belong to its physics state is refused, before it is scored
    with pytest.raises(RrmError, match="next_obs row 0 differs"):
        true_rewards(TASKS[0], rand_vec, obs[:-1], actions[:-1], obs[:-1], states[1:])
    with pytest.raises(RrmError, match="one physics state per observation"):
        true_rewards(TASKS[0], rand_vec, obs[:-1], actions[:-1], obs[1:], states)
    with pytest.raises(RrmError, match=r"actions must be"):
        true_rewards(TASKS[0], rand_vec, obs[:-1], actions[:-1, :3], obs[1:], states[1:])
    with pytest.raises(RrmError, match="unknown task"):
        true_rewards("button-push-v3", rand_vec, obs[:-1], actions[:-1], obs[1:], states[1:])


def test_metaworld_never_terminates_and_truncates_at_500() -> None:
    env = make_env("reach-v3", seed=0)
    reset_to_variation(env, 0, seed=0)
    assert sawyer_env(env).max_path_length == 500
    rng = np.random.default_rng(0)
    ends = [sawyer_env(env).step(rng.uniform(-1, 1, 4).astype(np.float32))[2:4]
            for _ in range(500)]
    assert not any(terminated for terminated, _ in ends)
    assert [t for t, (_, truncated) in enumerate(ends) if truncated] == [499]


def test_transitions_mark_time_limits_as_timeouts(full: Path) -> None:
    data = open_dataset(full)
    view = dataset_transitions(data)
    episodes = data.table("episodes").to_pylist()
    # successful episodes still run to Meta-World's limit: success does not end them
    assert all(e["success"] and e["length"] == 500 for e in episodes)
    last = [e["index_to"] - 1 for e in episodes]
    assert np.flatnonzero(view.timeouts).tolist() == last
    assert not view.terminals.any()
    cols = step_columns(data, [fmt.STATE, fmt.ACTION, fmt.REWARD])
    assert np.array_equal(view.observations, cols[fmt.STATE])
    assert np.array_equal(view.actions, cols[fmt.ACTION])
    assert np.array_equal(view.rewards, cols[fmt.REWARD])
    inside = np.setdiff1d(np.arange(len(view)), last)
    assert np.array_equal(view.next_observations[inside], view.observations[inside + 1])


def test_last_next_observation_is_the_step_meta_world_takes(make_dataset) -> None:
    view = dataset_transitions(open_dataset(make_dataset(**SHORT)))
    longer = open_dataset(make_dataset(**{**SHORT, "episode_steps": 61}))
    obs = step_columns(longer, [fmt.STATE])[fmt.STATE]
    frame = step_columns(longer, ["frame_index"])["frame_index"]
    # the collector stopped at 60 steps: a timeout too; the same episodes one step longer
    # store, as their 61st row, the s′ the view simulated for each last step
    assert np.flatnonzero(view.timeouts).tolist() == list(range(59, 360, 60))
    assert np.array_equal(view.next_observations[view.timeouts], obs[frame == 60])


def test_transitions_take_any_reward_and_feed_torch(make_dataset) -> None:
    data = open_dataset(make_dataset(**SHORT))
    prior = PriorReward("gripper_object")
    view = dataset_transitions(data, reward=prior)
    expected = step_columns(data, [fmt.prior_column("gripper_object")])
    assert np.allclose(view.rewards, expected[fmt.prior_column("gripper_object")], atol=1e-6)
    assert not np.allclose(view.rewards, dataset_transitions(data).rewards)
    batch = next(iter(torch.utils.data.DataLoader(view, batch_size=8)))
    assert batch.observation.shape == (8, 39) and batch.next_observation.shape == (8, 39)
    assert torch.equal(batch.reward, torch.from_numpy(view.rewards[:8]))
    assert set(view.as_dict()) == {"observations", "actions", "rewards", "next_observations",
                                   "terminals", "timeouts"}
