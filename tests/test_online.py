"""train-online: the PEBBLE / RRM loop end to end, its budget, its feedback dataset, resume
after kill -9, disagreement sampling, and one-line errors. Runs are tiny (hundreds of steps)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import one_line_error, overrides

from rrm_data.cli import main
from rrm_data.labels.teachers import TEACHERS, PairRewards, Teacher, make_teacher
from rrm_data.reward.artifact import load_reward
from rrm_data.reward.loss import preference_logits, segment_returns
from rrm_data.reward.networks import RewardNetwork
from rrm_data.reward.spec import reward_spec
from rrm_data.rl.online.entropy import knn_distance
from rrm_data.rl.online.episodes import EpisodeArrays, EpisodeLog, EpisodeStore
from rrm_data.rl.online.loop import OnlineRun
from rrm_data.rl.online.queries import Queries, next_queries, pair_inputs, random_pairs
from rrm_data.rl.online.settings import OnlineSettings
from rrm_data.rl.workdir import find_checkpoint
from rrm_data.rl.wrapper import task_env
from rrm_data.sim.policies import load_policy
from rrm_data.workflows.train_online import make_config

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
TASK = "reach-v3"
# 50-step episodes, a round every 100 steps from step 100, 10 queries of 20-step windows.
QUICK = {"task": TASK, "episode_steps": 50, "sac.learning_starts": 100, "sac.batch_size": 32,
         "sac.net_arch": [32, 32], "model.hidden": 32, "model.layers": 2,
         "labels_per_round": 10, "round_every": 100, "segment_length": 20, "pool_factor": 3,
         "reward_max_epochs": 10, "eval_every": 200, "eval_episodes": 1}


@pytest.fixture(scope="module")
def online_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RRM online, 400 steps, a budget of 25 that is not a multiple of a round (10)."""
    out = tmp_path_factory.mktemp("online") / "run"
    assert main(["train-online", *overrides(**QUICK, recipe="rrm", steps=400, feedback=25,
                                            strategy="disagreement", out=out)]) == 0
    return out


def test_loop_runs_end_to_end(online_run: Path) -> None:
    for name in ("policy.zip", "reward/reward.json", "eval.csv", "rounds.csv", "progress.csv",
                 "summary.json", "config.yaml", "feedback/meta/info.json"):
        assert (online_run / name).exists(), name
    assert not any(p.name.startswith(".") for p in online_run.parent.iterdir())  # work dir gone
    with (online_run / "eval.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["timesteps"]) for r in rows] == [200, 400]
    assert {"labels", "success_rate", "true_return"} <= set(rows[0])
    reward = load_reward(online_run)
    assert reward.spec.network is not None and reward.spec.network.prior.name == "gripper_object"
    assert reward.spec.network.normalization is not None
    assert reward.spec.task == TASK
    assert load_policy(str(online_run)).num_timesteps == 400  # what collect's sac:PATH loads
    with (online_run / "progress.csv").open() as f:
        assert "rollout/learned_return" in next(csv.reader(f))


def test_labels_never_exceed_the_budget(online_run: Path) -> None:
    summary = json.loads((online_run / "summary.json").read_text())
    with (online_run / "rounds.csv").open() as f:
        rounds = list(csv.DictReader(f))
    assert [int(r["asked"]) for r in rounds] == [10, 10, 5]  # the last round is cut to fit
    assert summary["labels"] == 25 == summary["feedback_budget"]
    info = json.loads((online_run / "feedback" / "meta" / "info.json").read_text())
    assert info["counts"]["pairs"]["train"] == 25


def test_feedback_dataset_validates_and_trains_a_reward(online_run: Path,
                                                         tmp_path: Path) -> None:
    data = online_run / "feedback"
    assert main(["validate", f"data={data}"]) == 0
    assert main(["train-reward", "recipe=state_residual", f"data={data}",
                 "trainer.max_epochs=1", f"out={tmp_path / 'reward'}"]) == 0
    assert main(["evaluate", f"reward={tmp_path / 'reward'}", f"data={data}",
                 f"out={tmp_path / 'eval'}"]) == 0


def _killed_after_checkpoint(out: Path, values: dict[str, object], at_least: int,
                             ) -> tuple[list[str], int]:
    """Start ``train-online`` with ``values`` in a process and kill -9 it once its checkpoint
    has reached step ``at_least``; the command line and the checkpoint's step."""
    args = [sys.executable, "-m", "rrm_data.cli", "train-online", *overrides(**values, out=out)]
    state = out.with_name(f".{out.name}.online") / "checkpoint" / "state.json"
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline, reached = time.monotonic() + 180, -1
        while time.monotonic() < deadline and proc.poll() is None and reached < at_least:
            reached = json.loads(state.read_text())["timesteps"] if state.exists() else -1
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert reached >= at_least, f"no checkpoint at step {at_least} within 180 s"
    assert not out.exists()
    return args, reached


def test_resume_after_kill_9(tmp_path: Path) -> None:
    """PEBBLE (with its entropy phase) killed after its second checkpoint resumes there."""
    out = tmp_path / "run"
    args, _ = _killed_after_checkpoint(out, {**QUICK, "recipe": "pebble",
                                             "unsupervised_steps": 100, "steps": 700,
                                             "feedback": 40}, 300)
    assert main(args[3:]) == 0  # the same command, in this process
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"] and summary["resumed_from"][0] >= 300
    assert summary["steps"] == 700 and summary["labels"] == 40
    assert main(["validate", f"data={out / 'feedback'}"]) == 0


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_resume_keeps_logs_ignores_threads_and_refuses_other_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Killed at step N: other settings are refused by name and leave the checkpoint; the
    same ones with threads=2, overwrite=true and out spelled relative with a slash resume
    at N (none of the three is the run's identity), and every log keeps its rows from
    before N."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    values = {**QUICK, "steps": 500, "feedback": 30}
    _, n = _killed_after_checkpoint(out, values, 200)
    checkpoint = tmp_path / ".run.online" / "checkpoint"
    logged = [r["time/total_timesteps"] for r in _rows(tmp_path / ".run.online" / "progress.csv")]
    before = [x for x in logged if x and int(x) < n]  # the row at n comes after the checkpoint
    assert len(before) >= 3

    other = overrides(**{**values, "seed": 1, "feedback": 20}, out=out)
    assert main(["train-online", *other]) == 2
    error = one_line_error(capsys, "train-online")
    assert "(feedback, seed)" in error and "overwrite=true" in error
    assert (checkpoint / "state.json").exists()

    assert main(["train-online", *overrides(**values, out="run/", threads=2,
                                            overwrite=True)]) == 0
    assert f"resuming run from step {n} " in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"] == [n] and summary["steps"] == 500
    after = [r["time/total_timesteps"] for r in _rows(out / "progress.csv")]
    assert after[:len(before)] == before and len(after) > len(before)
    assert [int(x) for x in after] == sorted({int(x) for x in after})  # none logged twice
    assert [int(r["timesteps"]) for r in _rows(out / "eval.csv")] == [200, 400, 500]
    assert [int(r["timesteps"]) for r in _rows(out / "rounds.csv")] == [100, 200, 300]
    assert not (tmp_path / ".run.online").exists()


def _crash_at_call(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """Make the skip teacher's ``call``-th answer (a round) raise, as a crash would."""
    skip = TEACHERS.get("skip")
    label, calls = skip.label, []

    def crashing(self: Teacher, pairs: PairRewards, rng: np.random.Generator) -> np.ndarray:
        calls.append(len(pairs.rewards_a))
        if len(calls) == call:
            raise RuntimeError("simulated crash")
        return label(self, pairs, rng)

    monkeypatch.setattr(skip, "label", crashing)


def test_all_skipped_rounds_crashes_and_overwrite(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A teacher that skips every query: rounds count against the budget and the run goes
    on. A crash before the first checkpoint leaves nothing, after it the checkpoint (which
    resumes); overwrite=true with other settings starts again from step 0."""
    values = {**QUICK, "steps": 300, "feedback": 20, "teacher": "skip",
              "teacher_params.epsilon": 2}
    out = tmp_path / "run"
    command = ["train-online", *overrides(**values, out=out)]
    _crash_at_call(monkeypatch, 1)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(command)
    assert list(tmp_path.iterdir()) == []
    _crash_at_call(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(command)
    assert [p.name for p in tmp_path.iterdir()] == [".run.online"]
    monkeypatch.undo()

    assert main(command) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"] == [100]
    assert (summary["labels"], summary["answered"], summary["rounds"]) == (20, 0, 2)
    assert [(r["asked"], r["skipped"], r["epochs"]) for r in _rows(out / "rounds.csv")] == [
        ("10", "10", "0")] * 2
    assert [p.name for p in tmp_path.iterdir()] == ["run"]

    other = tmp_path / "other"
    _crash_at_call(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(["train-online", *overrides(**values, out=other)])
    monkeypatch.undo()
    capsys.readouterr()
    fresh = overrides(**{**values, "seed": 1}, out=other, overwrite=True)
    assert main(["train-online", *fresh]) == 0
    assert "resuming" not in capsys.readouterr().err
    summary = json.loads((other / "summary.json").read_text())
    assert summary["resumed_from"] == [] and summary["seed"] == 1


class PreferFirst:
    """A stand-in for a human queue: says "a is better" to everything and counts the asks."""

    name = "human:test"

    def __init__(self) -> None:
        self.asked: list[int] = []

    def label(self, queries: PairRewards, rng: np.random.Generator) -> np.ndarray:
        assert isinstance(queries, Queries)  # the windows to show people
        self.asked.append(len(queries))
        assert queries.rewards_a.shape == (len(queries), queries.length)
        return np.ones(len(queries))

    def params(self) -> dict[str, float]:
        return {}


def test_any_teacher_plugs_into_the_loop(tmp_path: Path) -> None:
    values = {**QUICK, "steps": 300, "feedback": 20, "eval_every": 0}
    cfg = make_config([*overrides(**values), f"out={tmp_path / 'run'}"])
    teacher = PreferFirst()
    online = OnlineRun(OnlineSettings.from_config(cfg), tmp_path / "work", teacher=teacher)
    online.learn()
    online.env.close()
    assert teacher.asked == [10, 10]
    assert online.state.labels.label == [1.0] * 20


def test_pessimism_pays_mean_minus_kappa_std_in_envs_and_buffer(tmp_path: Path) -> None:
    """reward_pessimism=κ: the relabelled replay buffer and the envs both hold
    mean − κ·std of r̂'s two members, computed here by hand from the members' outputs."""
    values = {**QUICK, "steps": 300, "feedback": 20, "eval_every": 0, "model.members": 2,
              "reward_pessimism": 1.5}
    cfg = make_config([*overrides(**values), f"out={tmp_path / 'run'}"])
    online = OnlineRun(OnlineSettings.from_config(cfg), tmp_path / "work")
    online.learn()
    reward = online.learner.reward

    def by_hand(obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        members = np.asarray(reward(obs.astype(np.float32), actions).members, np.float64)
        mean = members.sum(0) / 2
        spread = np.sqrt(((members - mean) ** 2).sum(0) / 2)  # population std
        assert (spread > 1e-6).all()  # the members disagree: the penalty bites
        return mean - 1.5 * spread

    n = online.buffer.buffer_size if online.buffer.full else online.buffer.pos
    assert n >= 200
    stored = online.buffer.rewards[:n].reshape(-1)
    np.testing.assert_allclose(stored, by_hand(online.buffer.observations[:n].reshape(n, -1),
                                               online.buffer.actions[:n].reshape(n, -1)),
                               rtol=1e-5, atol=1e-6)
    obs = online.env.reset()
    actions = np.random.default_rng(1).uniform(-1, 1, (len(obs), 4)).astype(np.float32)
    _, paid, _, _ = online.env.step(actions)
    np.testing.assert_allclose(paid, by_hand(obs, actions), rtol=1e-5, atol=1e-6)
    online.env.close()


def test_reward_normalize_scales_sampled_batches_and_is_checkpointed(tmp_path: Path) -> None:
    """reward_normalize=true: the buffer holds the raw r̂ of the last relabelling; SAC's
    batches are r̂ / sqrt(var + 1e-8) of the running discounted return, clipped at ±10
    (SB3's VecNormalize, computed here by hand); a restarted run gets the statistics of the
    checkpoint back."""
    values = {**QUICK, "steps": 300, "feedback": 20, "eval_every": 0, "reward_normalize": True}
    settings = OnlineSettings.from_config(
        make_config([*overrides(**values), f"out={tmp_path / 'run'}"]))
    online = OnlineRun(settings, tmp_path / "work")
    online.learn()
    scaler = online.model.get_vec_normalize_env()
    assert scaler is online.env  # what SAC samples its batches through
    reward = online.learner.reward
    n = online.buffer.buffer_size if online.buffer.full else online.buffer.pos
    raw = np.asarray(reward(online.buffer.observations[:n].reshape(n, -1),
                            online.buffer.actions[:n].reshape(n, -1)).total, np.float64)
    np.testing.assert_allclose(online.buffer.rewards[:n].reshape(-1), raw, rtol=1e-5, atol=1e-6)
    batch = online.buffer.sample(64, env=scaler)
    by_hand = np.clip(np.asarray(reward(batch.observations.numpy(), batch.actions.numpy()).total)
                      / np.sqrt(scaler.ret_rms.var + 1e-8), -10, 10)
    np.testing.assert_allclose(batch.rewards.numpy().reshape(-1), by_hand, rtol=1e-4, atol=1e-6)
    assert abs(np.sqrt(scaler.ret_rms.var) - 1) > 0.05  # the scale is not the identity
    checkpoint = find_checkpoint(tmp_path / "work")
    assert checkpoint is not None
    saved = json.loads((checkpoint / "state.json").read_text())["reward_scale"]["reward_scale"]
    online.env.close()
    again = OnlineRun(settings, tmp_path / "work")
    assert again.state.resumed_from
    assert float(again.env.ret_rms.var) == pytest.approx(saved["var"], rel=1e-12)
    assert float(again.env.ret_rms.count) == saved["count"]
    again.env.close()


def test_the_oracle_teacher_labels_known_returns() -> None:
    rewards_a = np.array([[2.0, 1.0], [0.0, 1.0], [1.0, 1.0]])  # returns 3, 1, 2 against 2
    labels = make_teacher("oracle", None).label(PairRewards(rewards_a, np.ones((3, 2))),
                                                np.random.default_rng(0))
    np.testing.assert_array_equal(labels, [1, 0, 0.5])


def _episodes(n: int, length: int, seed: int) -> dict[int, EpisodeArrays]:
    rng = np.random.default_rng(seed)
    return {i: EpisodeArrays(rng.normal(size=(length, 39)).astype(np.float32),
                             rng.uniform(-1, 1, (length, 4)).astype(np.float32),
                             rng.random(length)) for i in range(n)}


@pytest.mark.parametrize("strategy", ["disagreement", "entropy"])
def test_uncertainty_sampling_picks_the_most_uncertain_pairs(strategy: str) -> None:
    """disagreement: largest std over members of P(a ≻ b); entropy: largest mean binary
    entropy of the members' P(a ≻ b), both computed here directly from the ensemble."""
    episodes = _episodes(6, 40, 0)
    model = RewardNetwork(reward_spec(
        {"network": "mlp", "inputs": ["observation.state", "action"], "prior": "zero",
         "prior_weight": 0.0, "negate_prior": False, "prior_as_input": False,
         "hidden": 16, "layers": 2, "members": 3}, {"observation.state": 39, "action": 4},
        None)).eval()
    chosen = next_queries(episodes.__getitem__, list(episodes), 5, 10, strategy,
                          model, 8, np.random.default_rng(3))
    pool = random_pairs(episodes.__getitem__, list(episodes), 40, 10, np.random.default_rng(3))
    with torch.no_grad():
        returns = segment_returns(model, pair_inputs(episodes.__getitem__, pool))
        p = torch.sigmoid(preference_logits(returns)).double()  # (members, pairs)
    if strategy == "disagreement":
        score = p.std(dim=0, correction=0).numpy()
    else:
        score = (-(p * p.log() + (1 - p) * (1 - p).log())).mean(dim=0).numpy()
    top = np.argsort(-score)[:5]
    assert np.array_equal(chosen.episode_a, pool.episode_a[top])
    assert np.array_equal(chosen.start_a, pool.start_a[top])
    assert np.array_equal(chosen.start_b, pool.start_b[top])
    assert (chosen.episode_a != chosen.episode_b).all()
    assert len(np.unique(score[top])) == 5  # a strict ranking, not a tie picked by chance


def test_knn_state_entropy_matches_brute_force() -> None:
    points = torch.randn(50, 5)
    queries = points[:7]
    brute = torch.cdist(queries, points).sort(dim=1).values[:, 3]  # self is the 0th neighbour
    assert torch.allclose(knn_distance(queries, points, k=3, chunk=16), brute)


@pytest.mark.parametrize(("args", "message"), [
    (["strategy=most_fun"], "unknown strategy 'most_fun'"),
    (["feedback=5"], "smaller than one round"),
    (["teacher=grumpy"], "unknown teacher 'grumpy'"),
    (["recipe=nope"], "unknown recipe 'nope'"),
    (["sac.learning_starts=40"], "comes before the first episodes end (step 50 = 50 steps"),
    (["sac.ent_coef=lots"], "sac.ent_coef must be"),
    (["reward_pessimism=1", "model.members=1", "strategy=uniform"],
     "needs an ensemble to disagree"),
    (["reward_pessimism=-1"], "reward_pessimism must"),
])
def test_bad_input_gets_one_line(args: list[str], message: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-online", *overrides(**QUICK, steps=300, out=tmp_path / "r"),
                 *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing made, not even a work folder


def test_refuses_an_existing_out(online_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-online", *overrides(**QUICK, steps=300, out=online_run)]) == 2
    assert "already holds an earlier train-online run" in capsys.readouterr().err


def test_restore_keeps_every_episode_when_fewer_than_recent(tmp_path: Path) -> None:
    """A restart with fewer episodes on disk than ``recent`` keeps them all in memory, as
    the uninterrupted run had them."""
    store = EpisodeStore(tmp_path, TASK, recent=5)
    env = EpisodeLog(task_env(TASK, 0, episode_steps=5), store)
    for episode in range(3):
        env.reset(seed=episode)
        for _ in range(5):
            env.step(env.action_space.sample())
    env.close()
    assert store.recent() == [0, 1, 2]
    restarted = EpisodeStore(tmp_path, TASK, recent=5)
    restarted.restore(3)
    assert restarted.recent() == [0, 1, 2]
