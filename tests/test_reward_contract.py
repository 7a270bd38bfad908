"""The reward contract: a reward with a window of k > 1 steps flows unchanged through score,
evaluate, gallery, query, relabelling, the vector wrapper and train-sac, and gives the
values computed here by hand (plain numpy loops over the stored tables), at episode starts
and inside episodes; a learned Markovian reward scores exactly as its bare network does."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from helpers import overrides
from stable_baselines3.common.buffers import ReplayBuffer

from rrm_data.cli import main
from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import step_columns
from rrm_data.dataset.reader import open_dataset
from rrm_data.errors import RrmError
from rrm_data.evaluation.scoring import load_split, score_steps
from rrm_data.reward.artifact import CHUNK, load_reward
from rrm_data.reward.base import RewardFunction, RewardOutput
from rrm_data.reward.resolve import REFERENCES, resolve_reward
from rrm_data.reward.spec import RewardSpec, Window
from rrm_data.reward.window import dataset_windows, window_index
from rrm_data.rl.relabel import relabel_replay_buffer
from rrm_data.rl.sac import make_vec_env
from rrm_data.rl.wrapper import task_env

TASK = "reach-v3"
LENGTHS = (2, 3)
REF = "lastsum:2-3"


class LastStepsSum(RewardFunction):
    """Members m: r̂ᵐ_t = Σ of the true rewards of the last Lₘ steps (t included); the
    total is their mean. A real function of stored columns with a window of max(L) steps."""

    def __init__(self, lengths: tuple[int, ...]) -> None:
        self.lengths = lengths
        self.spec = RewardSpec(f"lastsum:{'-'.join(map(str, lengths))}", (fmt.REWARD,),
                               Window(max(lengths)))

    def score(self, columns: Mapping[str, np.ndarray]) -> RewardOutput:
        rewards = np.asarray(columns[fmt.REWARD], np.float64)  # (N, k)
        members = np.stack([rewards[:, -n:].sum(axis=1) for n in self.lengths])
        total = members.mean(axis=0)
        return RewardOutput(total, np.zeros_like(total), total, members)


@REFERENCES.register("lastsum")
def _last_steps_sum(argument: str) -> RewardFunction:
    return LastStepsSum(tuple(int(n) for n in argument.split("-")))


def hand_members(rewards: np.ndarray, first: np.ndarray) -> np.ndarray:
    """(members, N): for each step t, Σ_{j<L} r[max(t − j, first[t])], by plain loops."""
    out = np.zeros((len(LENGTHS), len(rewards)))
    for m, n in enumerate(LENGTHS):
        for t in range(len(rewards)):
            out[m, t] = sum(float(rewards[max(t - j, first[t])]) for j in range(n))
    return out


@pytest.fixture(scope="module")
def truth(small_dataset: Path) -> dict[str, np.ndarray]:
    """Stored true rewards, each step's episode first row, and the hand-computed r̂."""
    steps = pq.read_table(small_dataset / "steps").sort_by("index")
    rewards = steps.column(fmt.REWARD).to_numpy()
    episodes = pq.read_table(small_dataset / "episodes").to_pandas()
    first = np.zeros(len(rewards), np.int64)
    for row in episodes.itertuples():
        first[row.index_from:row.index_from + row.length] = row.index_from
    members = hand_members(rewards, first)
    return {"rewards": rewards, "first": first, "members": members,
            "total": members.mean(axis=0)}


def segment_returns(values: np.ndarray, dataset: Path) -> dict[int, np.ndarray]:
    """Each segment's return (per row of ``values`` (..., N)), by segment_index."""
    seg = pq.read_table(dataset / "segments").to_pandas()
    eps = pq.read_table(dataset / "episodes").to_pandas().set_index("episode_index")
    out = {}
    for row in seg.itertuples():
        start = int(eps.loc[row.episode_index, "index_from"]) + int(row.start)
        out[int(row.segment_index)] = values[..., start:start + int(row.length)].sum(axis=-1)
    return out


def test_window_index_repeats_the_episode_first_step() -> None:
    rows = np.array([10, 11, 12, 13, 17])
    first = np.array([10, 10, 10, 10, 10])
    got = window_index(rows, first, Window(length=3, stride=2))
    assert got.tolist() == [[10, 10, 10], [10, 10, 11], [10, 10, 12], [10, 11, 13],
                            [13, 15, 17]]
    assert window_index(rows, first, Window()).tolist() == [[r] for r in rows]
    with pytest.raises(RrmError, match="length and stride"):
        Window(length=0)


def test_old_artifacts_without_a_window_are_markovian(trained_reward: Path) -> None:
    spec = json.loads((trained_reward / "reward" / "reward.json").read_text())
    spec.pop("window")
    assert RewardSpec.from_json(spec).window == Window(1, 1, "first")
    assert load_reward(trained_reward).spec.window.length == 1


def test_scored_steps_match_hand_values(small_dataset: Path, truth: dict) -> None:
    data = load_split(open_dataset(small_dataset), "test")
    steps = score_steps(resolve_reward(REF), data, whole_episodes=True)
    np.testing.assert_allclose(steps.output.total, truth["total"][steps.rows], rtol=1e-12)
    np.testing.assert_allclose(steps.output.members, truth["members"][:, steps.rows],
                               rtol=1e-12)
    starts = data.episodes["index_from"].to_numpy()
    r = truth["rewards"]
    for f in starts:  # the first steps repeat the first reward; inside, plain sums
        np.testing.assert_allclose(steps.window(int(f), 3).members[1],
                                   [3 * r[f], 2 * r[f] + r[f + 1], r[f] + r[f + 1] + r[f + 2]])
        np.testing.assert_allclose(steps.window(int(f) + 10, 1).members[0],
                                   [r[f + 9] + r[f + 10]])


def test_score_and_evaluate_use_window_sums(small_dataset: Path, truth: dict,
                                            tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    assert main(["score", f"reward={REF}", f"data={small_dataset}", "split=train",
                 f"out={out}"]) == 0
    scores = pq.read_table(out).to_pandas()
    hand = segment_returns(truth["total"], small_dataset)
    np.testing.assert_allclose(scores["score_a"], [hand[s] for s in scores["segment_a"]],
                               rtol=1e-9)
    np.testing.assert_allclose(scores["score_b"], [hand[s] for s in scores["segment_b"]],
                               rtol=1e-9)

    report_dir = tmp_path / "eval"
    assert main(["evaluate", f"reward={REF}", f"data={small_dataset}", f"out={report_dir}",
                 "episodes=1"]) == 0
    view = json.loads((report_dir / "report.json").read_text())["views"][REF]
    test = open_dataset(small_dataset).preferences("test").to_pandas()
    test = test[test.teacher == "oracle"]
    diff = np.array([hand[a] - hand[b] for a, b in zip(test.segment_a, test.segment_b,
                                                       strict=True)])
    label = test.label.to_numpy(float)
    decisive = label != 0.5
    assert view["agreement"]["value"] == pytest.approx(
        np.mean((diff > 0)[decisive] == (label > 0.5)[decisive]), abs=1e-12)
    p = 1 / (1 + np.exp(-diff))
    assert view["log_loss"] == pytest.approx(
        np.mean(-(label * np.log(p) + (1 - label) * np.log(1 - p))), rel=1e-6)


def test_gallery_shows_window_returns(small_dataset: Path, truth: dict, tmp_path: Path) -> None:
    out = tmp_path / "gallery"
    assert main(["gallery", f"data={small_dataset}", f"out={out}", f"reward={REF}", "k=1",
                 "frames=2", "image_size=32"]) == 0
    episodes = open_dataset(small_dataset).table("episodes").to_pandas()
    data = load_split(open_dataset(small_dataset), "test", teacher=None)
    used = episodes[episodes.episode_index.isin(data.episodes.episode_index)]
    returns = [truth["total"][f:f + n].sum() for f, n in zip(used.index_from, used.length,
                                                             strict=True)]
    assert f"{max(returns):.2f}" in (out / "index.html").read_text()


def test_query_ranks_pairs_by_the_windowed_ensemble(small_dataset: Path, truth: dict,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "queried"
    assert main(["query", f"data={small_dataset}", f"reward={REF}", "strategy=disagreement",
                 "n=5", "pool=30", "seed=3", f"out={out}"]) == 0
    queries = pq.read_table(next((out / "queries").glob("*.parquet"))).to_pandas()
    returns = segment_returns(truth["members"], small_dataset)
    for row in queries.itertuples():
        p = 1 / (1 + np.exp(-(returns[row.segment_a] - returns[row.segment_b])))
        assert row.score == pytest.approx(p.std(), rel=1e-5, abs=1e-7)
        assert row.p_a == pytest.approx(p.mean(), rel=1e-5, abs=1e-7)
    assert (np.diff(queries.score.to_numpy()) <= 0).all()


def test_replay_buffer_relabels_each_env_within_its_episodes() -> None:
    """Two environments, episodes ending at different steps, and a buffer that wrapped."""
    env = task_env(TASK, seed=0)
    size, steps = 10, 13
    buffer = ReplayBuffer(2 * size, env.observation_space, env.action_space, device="cpu",
                          n_envs=2)  # SB3 splits the size over the environments
    rng = np.random.default_rng(0)
    rewards = rng.uniform(0, 1, (steps, 2))
    dones = np.zeros((steps, 2), bool)
    dones[[5, 9], 0] = True
    dones[[3, 4, 11], 1] = True
    obs = np.zeros((2, 39), np.float32)
    for t in range(steps):
        buffer.add(obs, obs, np.zeros((2, 4), np.float32), rewards[t], dones[t],
                   [{}, {}])
    assert relabel_replay_buffer(buffer, resolve_reward(REF), batch_size=4) == 20
    kept = np.arange(steps - size, steps)  # steps 3 … 12, oldest first; step 3 starts
    for e in range(2):
        first = np.zeros(size, np.int64)
        for i in range(1, size):
            first[i] = i if dones[kept[i - 1], e] else first[i - 1]
        expected = hand_members(rewards[kept, e], first).mean(axis=0)
        np.testing.assert_allclose(buffer.rewards[kept % size, e], expected, rtol=1e-6)


def test_vec_wrapper_keeps_each_env_window_across_resets() -> None:
    venv = make_vec_env(TASK, resolve_reward(REF), n_envs=2, seed=0, episode_steps=4)
    venv.reset()
    history: list[list[float]] = [[], []]
    rng = np.random.default_rng(1)
    for _ in range(7):  # two episodes' ends in each env
        _, rewards, dones, infos = venv.step(rng.uniform(-1, 1, (2, 4)).astype(np.float32))
        for e in range(2):
            history[e].append(infos[e]["true_reward"])
            mine = np.asarray(history[e])
            expected = hand_members(mine, np.zeros(len(mine), np.int64)).mean(axis=0)[-1]
            assert rewards[e] == pytest.approx(expected, rel=1e-5)
            if dones[e]:
                history[e] = []


def test_train_sac_on_a_windowed_reward(tmp_path: Path) -> None:
    out = tmp_path / "sac"
    assert main(["train-sac", *overrides(
        task=TASK, reward=REF, steps=200, seed=0, out=out, **{
            "sac.batch_size": 32, "sac.learning_starts": 100, "sac.net_arch": [32, 32],
            "eval_every": 200, "eval_episodes": 1, "episode_steps": 50,
            "checkpoint_every": 200})]) == 0
    assert (out / "policy.zip").exists()
    assert json.loads((out / "summary.json").read_text())["reward"] == REF


def test_learned_markovian_scores_equal_the_bare_network(trained_reward: Path,
                                                         small_dataset: Path) -> None:
    """The contract adds nothing to a learned k = 1 reward: scores are bit-identical to its
    network run on the same CHUNK-step slices of the steps columns (what scoring ran before
    windows existed)."""
    reward = load_reward(trained_reward)
    dataset = open_dataset(small_dataset)
    got = reward.score(dataset_windows(dataset, reward.columns, reward.window))
    plain = step_columns(dataset, reward.columns)
    n = len(plain[fmt.STATE])
    with torch.no_grad():
        parts = [reward.model({c: torch.from_numpy(v[i:i + CHUNK].copy())
                               for c, v in plain.items()}) for i in range(0, n, CHUNK)]
    for k in range(4):
        expected = np.concatenate([p[k].numpy() for p in parts], axis=-1)
        assert np.array_equal(got[k], expected)
