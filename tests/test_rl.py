"""The RL bridge: reward wrappers, relabelling, train-sac on a learned reward, sac: policies."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path

import jax
import numpy as np
import pyarrow.parquet as pq
import pytest
from gymnasium.utils.env_checker import check_env
from helpers import one_line_error
from omegaconf import OmegaConf
from stable_baselines3.common.buffers import ReplayBuffer

from rrm_data.cli import main
from rrm_data.dataset import format as fmt
from rrm_data.dataset.priors import gripper_object
from rrm_data.recipes import load_recipe
from rrm_data.reward.artifact import export_reward, load_reward
from rrm_data.reward.base import RewardFunction, RewardOutput, single
from rrm_data.reward.networks import RewardNetwork
from rrm_data.reward.pessimism import PessimisticReward
from rrm_data.reward.resolve import resolve_reward
from rrm_data.reward.spec import Frames, RewardSpec, reward_spec
from rrm_data.rl.relabel import relabel, relabel_replay_buffer
from rrm_data.rl.sac import (
    SacSettings,
    check_reward_fits,
    evaluate,
    make_sac,
    make_vec_env,
    reset_critic,
    restore_reward_scale,
    reward_scale_state,
    sac_device,
    scale_rewards,
)
from rrm_data.rl.wrapper import RewardWrapper, task_env
from rrm_data.sim.envs import get_physics_state
from rrm_data.sim.policies import load_policy
from rrm_data.sim.rendering import FrameRenderer, FrameSpec
from rrm_data.workflows.train_sac import make_config as make_sac_config
from tests.conftest import overrides

TASK = "reach-v3"
QUICK_SAC = {"sac.batch_size": 32, "sac.learning_starts": 100, "sac.net_arch": [32, 32],
             "eval_every": 150, "eval_episodes": 1, "episode_steps": 50,
             "checkpoint_every": 150}


@pytest.fixture(scope="module")
def learned_reward(trained_reward: Path) -> Path:
    """A real state_residual artifact, trained on the small dataset."""
    return trained_reward


@pytest.fixture(scope="module")
def sac_run(learned_reward: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short train-sac run on the learned reward (300 steps)."""
    out = tmp_path_factory.mktemp("sac") / "run"
    assert main(["train-sac", *overrides(task=TASK, reward=learned_reward, steps=300, seed=3,
                                         out=out, allow_other_task=True, **QUICK_SAC)]) == 0
    return out


class FrameBrightness(RewardFunction):
    """A frame-reading reward (mean pixel value): exercises the wrappers' frame path."""

    spec = RewardSpec("brightness", (fmt.image_column("corner"),),
                      frames=Frames(("corner",), height=32))

    def score(self, columns: Mapping[str, np.ndarray]) -> RewardOutput:
        frames = columns[self.columns[0]][:, -1]
        return single(frames.reshape(len(frames), -1).mean(1), "residual")


def test_wrapper_passes_check_env_and_keeps_true_reward() -> None:
    env = RewardWrapper(task_env(TASK, seed=0), resolve_reward("prior:gripper_object"))
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=5)
    for _ in range(3):
        action = env.action_space.sample()
        before = obs
        obs, reward, _, _, info = env.step(action)
        assert reward == pytest.approx(gripper_object(before))  # r̂ of the pre-step state
        assert "true_reward" in info and "success" in info
        assert info["true_reward"] != pytest.approx(reward)


def test_reset_seed_picks_the_same_task_variation() -> None:
    env = task_env(TASK, seed=0)
    first, _ = env.reset(seed=11)
    env.reset(seed=12)
    again, _ = env.reset(seed=11)
    np.testing.assert_array_equal(first, again)
    assert first in env.observation_space  # goal bounds opened (Meta-World's read [0, 0])


@pytest.mark.slow
def test_frame_rewards_see_the_pre_step_frames() -> None:
    venv = make_vec_env(TASK, FrameBrightness(), n_envs=2, seed=0)
    venv.reset()
    envs = venv.venv.envs  # each env's own model: the goal marker moves with the variation
    renderers = [FrameRenderer(e.unwrapped.model, FrameSpec(("corner",), 32)) for e in envs]
    for _ in range(2):
        expected = [r.render(get_physics_state(e))["corner"].mean()
                    for r, e in zip(renderers, envs, strict=True)]
        rewards = venv.step(np.random.uniform(-1, 1, (2, 4)).astype(np.float32))[1]
        np.testing.assert_allclose(rewards, expected, rtol=1e-6)
    assert expected[0] > 0 and expected[0] != expected[1]


def test_train_sac_checks_a_frame_reward_with_frames() -> None:
    """A reward on frames (an image_frozen run) is checked on rendered frames, not refused."""
    venv = make_vec_env(TASK, FrameBrightness(), n_envs=1, seed=0)
    check_reward_fits(FrameBrightness(), venv, TASK)  # raised "steps do not provide" before


def test_vec_wrapper_scores_all_envs_in_one_batch(learned_reward: Path) -> None:
    reward = load_reward(learned_reward)
    venv = make_vec_env(TASK, reward, n_envs=3, seed=0, episode_steps=4)
    obs = venv.reset()
    actions = np.random.default_rng(0).uniform(-1, 1, (3, 4)).astype(np.float32)
    for step in range(5):  # crosses an episode end: r̂ still scores the pre-step state
        next_obs, rewards, dones, infos = venv.step(actions)
        np.testing.assert_allclose(rewards, reward(obs.astype(np.float32), actions).total,
                                   rtol=1e-5)
        assert all("true_reward" in i for i in infos)
        assert dones.all() == (step == 3)
        obs = next_obs


def test_pessimism_rewards_mean_minus_kappa_std_of_the_members(learned_reward: Path) -> None:
    reward = load_reward(learned_reward)
    venv = make_vec_env(TASK, PessimisticReward(reward, 1.5), n_envs=2, seed=0, episode_steps=4)
    obs = venv.reset()
    actions = np.random.default_rng(1).uniform(-1, 1, (2, 4)).astype(np.float32)
    for _ in range(3):
        next_obs, rewards, _, _ = venv.step(actions)
        members = np.asarray(reward(obs.astype(np.float32), actions).members, np.float64)
        assert members.shape[0] == 2
        mean = members.sum(0) / 2
        spread = np.sqrt(((members - mean) ** 2).sum(0) / 2)  # population std, by hand
        assert (spread > 1e-6).all()  # the members disagree: the penalty bites
        np.testing.assert_allclose(rewards, mean - 1.5 * spread, rtol=1e-5, atol=1e-6)
        obs = next_obs


def test_relabel_in_batches_and_replay_buffer(learned_reward: Path) -> None:
    reward = load_reward(learned_reward)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(50, 39)).astype(np.float32)
    act = rng.uniform(-1, 1, (50, 4)).astype(np.float32)
    whole = relabel(reward, obs, act)
    np.testing.assert_allclose(relabel(reward, obs, act, batch_size=7), whole, rtol=1e-6)
    np.testing.assert_allclose(whole, reward(obs, act).total, rtol=1e-6)

    env = task_env(TASK, seed=0)
    buffer = ReplayBuffer(64, env.observation_space, env.action_space, device="cpu")
    for o, a in zip(obs[:20], act[:20], strict=True):
        buffer.add(o, o, a, np.array([123.0]), np.array([False]), [{}])
    assert relabel_replay_buffer(buffer, reward, batch_size=8) == 20
    np.testing.assert_allclose(buffer.rewards[:20, 0], whole[:20], rtol=1e-5)
    assert not buffer.rewards[20:].any()


class _Zigzag:
    """A deterministic predictor that alternates two actions: a jerky arm."""

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, obs: np.ndarray, *, deterministic: bool = True) -> tuple[np.ndarray, None]:
        self.calls += 1
        sign = 1.0 if self.calls % 2 else -1.0
        return np.array([0.5 * sign, 0.2, -0.1 * sign, 0.0], np.float32), None


def test_evaluation_measures_the_hand_jerk_of_each_episode() -> None:
    env = task_env(TASK, seed=0, episode_steps=30)
    row = evaluate(_Zigzag(), env, episodes=2, seed=7)
    jerks = []
    policy = _Zigzag()
    for k in range(2):  # the same episodes again, by hand: hand xyz is obs[0:3]
        obs, _ = env.reset(seed=7 + k)
        hand = [obs[:3].astype(float)]
        for _ in range(30):
            obs, *_ = env.step(policy.predict(obs)[0])
            hand.append(obs[:3].astype(float))
        x = np.array(hand)
        third = [x[t + 3] - 3 * x[t + 2] + 3 * x[t + 1] - x[t] for t in range(len(x) - 3)]
        jerks.append(np.mean([float(v @ v) for v in third]))
    assert row["episode_length"] == 30
    assert row["mean_squared_jerk"] == pytest.approx(np.mean(jerks), rel=1e-9)
    assert row["mean_squared_jerk"] > 0


def test_train_sac_on_learned_reward(sac_run: Path, learned_reward: Path) -> None:
    names = {p.name for p in sac_run.iterdir()}
    assert {"config.yaml", "eval.csv", "progress.csv", "summary.json", "policy.zip",
            "checkpoints"} <= names
    assert sorted(p.name for p in (sac_run / "checkpoints").iterdir()) == [
        "sac_150_steps.zip", "sac_300_steps.zip"]
    rows = list(csv.DictReader((sac_run / "eval.csv").open()))
    assert [int(r["timesteps"]) for r in rows] == [150, 300]
    assert all(0.0 <= float(r["success_rate"]) <= 1.0 and float(r["true_return"]) > 0
               and float(r["mean_squared_jerk"]) > 0 for r in rows)
    summary = json.loads((sac_run / "summary.json").read_text())
    assert summary["steps"] == 300 and summary["final"]["timesteps"] == 300
    assert summary["reward"] == learned_reward.name  # the reward run's folder
    assert summary["device"] == sac_device()  # JAX's, where sbx runs SAC
    assert summary["warmup_steps_per_s"] > 0 and summary["steady_steps_per_s"] > 0
    config = OmegaConf.load(sac_run / "config.yaml")
    assert config.sac.learning_rate == 3e-4 and config.sac.batch_size == 32  # recipe + override
    progress = list(csv.DictReader((sac_run / "progress.csv").open()))
    assert any(r.get("rollout/true_return") for r in progress)  # 50-step episodes ended
    assert any(r.get("rollout/learned_return") for r in progress)  # r̂'s return beside it
    assert not list(sac_run.parent.glob(".run.*"))  # the temporary folder is gone


def test_scaled_rewards_divide_by_the_std_of_the_discounted_return() -> None:
    """r̂ / √(Var[G] + 1e-8), G_t = γ·G_{t−1} + r_t restarted at each episode, by hand; the
    statistics survive a checkpoint's JSON and scale the next reward the same way."""
    gamma, steps = 0.9, 30
    env = scale_rewards(make_vec_env(TASK, resolve_reward("true"), 1, seed=0,
                                     episode_steps=12), gamma)
    env.reset()
    actions = np.random.default_rng(2).uniform(-1, 1, (steps, 1, 4)).astype(np.float32)
    returns, g = [], 0.0
    for t in range(steps):
        _, scaled, dones, _ = env.step(actions[t])
        raw = float(env.get_original_reward()[0])
        g = gamma * g + raw
        returns.append(g)
        if t >= 5:  # the running statistics' prior (count 1e-4) has faded
            assert scaled[0] == pytest.approx(raw / np.sqrt(np.var(returns) + 1e-8), rel=1e-3)
        if dones[0]:
            g = 0.0
    assert len(set(np.round(returns, 6))) > 10  # episodes ended and restarted the return
    saved = json.loads(json.dumps(reward_scale_state(env)))
    again = scale_rewards(make_vec_env(TASK, resolve_reward("true"), 1, seed=0,
                                       episode_steps=12), gamma)
    restore_reward_scale(again, saved)
    probe = np.array([1.7])
    assert again.normalize_reward(probe) == pytest.approx(env.normalize_reward(probe), rel=1e-12)
    assert reward_scale_state(make_vec_env(TASK, resolve_reward("true"), 1, seed=0)) == {}


def test_train_sac_with_scaled_rewards_logs_the_unscaled_return(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train-sac", *overrides(task=TASK, reward="true", steps=200, seed=1, out=out,
                                         reward_normalize=True, **QUICK_SAC)]) == 0
    rows = [r for r in csv.DictReader((out / "progress.csv").open())
            if r.get("rollout/true_return")]
    assert rows  # reward=true: the logged r̂ return is the true one, not the scaled one
    for r in rows:
        assert float(r["rollout/learned_return"]) == pytest.approx(
            float(r["rollout/true_return"]), rel=1e-5)
    assert OmegaConf.load(out / "config.yaml").reward_normalize is True


@pytest.mark.slow
def test_train_sac_is_deterministic(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["train-sac", *overrides(task=TASK, reward="true", steps=150,
                                             seed=1, out=out, **QUICK_SAC)]) == 0
        policy = load_policy(str(out)).policy
        runs.append(jax.tree.leaves((policy.actor_state.params, policy.qf_state.params)))
    assert len(runs[0]) == len(runs[1]) > 0
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_collect_with_a_sac_policy(sac_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert main(["collect", *overrides(task=TASK, episodes=4, episode_steps=20, segment_length=10,
                                       segments_per_episode=2, pairs=4,
                                       policy=[f"sac:{sac_run / 'policy.zip'}", "random"],
                                       out=out)]) == 0
    episodes = pq.read_table(next((out / "episodes").glob("*.parquet"))).to_pandas()
    assert list(episodes["policy"]) == ["sac", "random", "sac", "random"]
    steps = pq.read_table(next((out / "steps").glob("*.parquet"))).to_pandas()
    first = steps[steps["episode_index"] == 0]
    obs, act = np.stack(first[fmt.STATE]), np.stack(first[fmt.ACTION])
    model = load_policy(str(sac_run))
    np.testing.assert_allclose(act, model.predict(obs.astype(np.float64), deterministic=True)[0],
                               atol=1e-5)


def _mismatched_artifact(path: Path) -> Path:
    """A real artifact of a reward model that observes 12 numbers instead of Meta-World's 39."""
    model_cfg = load_recipe("state_residual", "model").model
    spec = reward_spec(model_cfg, {fmt.STATE: 12, fmt.ACTION: 4}, None)
    return export_reward(RewardNetwork(spec), RewardSpec.learned("narrow", spec), path)


@pytest.mark.parametrize(("args", "message"), [
    (["reward=bogus"], "unknown reward 'bogus'"),
    (["reward=prior:nope"], "unknown prior 'nope'"),
    (["reward=NARROW"], "does not fit task reach-v3: column observation.state has width 39"),
    (["recipe=state_residual"], "is not for this command"),
    (["sac.ent_coef=lots"], "sac.ent_coef must be"),
    (["sac.gradient_steps=2", "sac.target_update_interval=2"],
     "sbx updates the targets after every gradient step"),
    (["reward_pessimism=0.5"], "needs a learned reward with an ensemble; reward true has 1"),
    (["reward_pessimism=-1"], "reward_pessimism must"),
])
def test_train_sac_bad_input(args: list[str], message: str, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    narrow = _mismatched_artifact(tmp_path / "narrow")
    args = [a.replace("NARROW", str(narrow)) for a in args]
    out = tmp_path / "run"
    assert main(["train-sac", f"task={TASK}", "steps=10", f"out={out}", *args]) == 2
    assert message in one_line_error(capsys, "train-sac")
    assert not out.exists() and not list(tmp_path.glob(".run.*"))


def test_collect_refuses_a_missing_sac_policy(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collect", f"policy=[sac:{tmp_path / 'none.zip'}]", f"out={tmp_path / 'd'}"]) == 2
    assert "no saved SAC policy" in capsys.readouterr().err


def test_train_sac_refuses_a_reward_of_another_task(learned_reward: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A reward trained on button-press-v3 does not drive drawer-close-v3 unless asked for."""
    assert load_reward(learned_reward).spec.training["tasks"] == ["button-press-v3"]
    out = tmp_path / "run"
    assert main(["train-sac", "task=drawer-close-v3", f"reward={learned_reward}", "steps=10",
                 f"out={out}"]) == 2
    line = one_line_error(capsys, "train-sac")
    assert "button-press-v3" in line and "drawer-close-v3" in line
    assert "allow_other_task=true" in line and not out.exists()
    cfg = make_sac_config(["task=drawer-close-v3", f"reward={learned_reward}",
                           "allow_other_task=true"])
    assert cfg.allow_other_task and cfg.reward == str(learned_reward)
    for agnostic in ("true", "prior:gripper_object"):  # defined for every task
        assert make_sac_config(["task=drawer-close-v3", f"reward={agnostic}"]).reward == agnostic


def test_reset_critic_gives_fresh_critics_and_keeps_the_actor() -> None:
    """PEBBLE's reset: new critic weights, targets equal to them, Adam restarted; the actor
    and everything else stay; training goes on from there."""
    env = make_vec_env(TASK, resolve_reward("true"), 1, 0, episode_steps=50)
    model = make_sac(env, SacSettings(batch_size=16, net_arch=[16], learning_starts=20), 0, 60)
    model.learn(60)
    policy = model.policy
    before_q, actor = policy.qf_state.params, policy.actor_state.params
    assert int(policy.qf_state.step) == 40
    reset_critic(model)
    leaves = jax.tree.leaves
    assert all(not np.array_equal(a, b) for a, b in zip(leaves(before_q),
                                                         leaves(policy.qf_state.params),
                                                         strict=True) if np.ndim(a) == 2)
    for a, b in zip(leaves(policy.qf_state.params), leaves(policy.qf_state.target_params),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(policy.qf_state.step) == 0
    assert all(not np.asarray(m).any() for m in leaves(policy.qf_state.opt_state)
               if np.ndim(m) == 2)  # Adam's moments start from zero again
    assert policy.actor_state.params is actor
    model.train(gradient_steps=2, batch_size=16)
    assert int(policy.qf_state.step) == 2
    env.close()
