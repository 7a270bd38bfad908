"""Sequence rewards (recipes state_sequence*, image_sequence): r̂_t from the window of k steps
ending at t, trained from runs of steps gathered by the one window builder, and scored
through the reward contract by score, evaluate, gallery, query, train-sac and learned by
train-online. Values are checked against windows built here by a plain loop over the
stored steps (padding with the episode's first step), and per-step rewards sum to the
segment scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from helpers import one_line_error, overrides
from safetensors.torch import load_file
from torch import nn

from rrm_data.cli import main
from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import step_columns
from rrm_data.dataset.reader import open_dataset
from rrm_data.reward.artifact import ARTIFACT_DIR, WEIGHTS_FILE, load_reward
from rrm_data.reward.loss import segment_returns
from rrm_data.reward.networks import EnsembleLayerNorm, EnsembleTransformer
from rrm_data.reward.spec import Window
from rrm_data.reward.window import dataset_windows
from rrm_data.rl.online.episodes import EpisodeArrays
from rrm_data.rl.online.queries import Queries, pair_inputs
from rrm_data.rl.relabel import relabel
from rrm_data.rl.wrapper import LiveWindows
from rrm_data.training.datamodule import PairBatches
from rrm_data.training.pairs import segment_windows
from rrm_data.training.trainer import make_datamodule
from rrm_data.workflows.train_reward import make_config

WINDOW = Window(4, 2)  # span 7: the first six steps of an episode are padded
TRAIN = ["recipe=state_sequence_residual", "model.dim=16", "model.members=2",
         f"model.window={WINDOW.length}", f"model.stride={WINDOW.stride}",
         "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "data.batch_size=16",
         "seed=5"]


@pytest.fixture(scope="module")
def sequence_run(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seq") / "run"
    assert main(["train-reward", f"data={small_dataset}", f"out={out}", *TRAIN]) == 0
    return out


def hand_window(rows: np.ndarray, first: int, window: Window) -> list[int]:
    """The window of each row by a plain loop: row − (k−1−j)·stride, never before ``first``."""
    return [[max(int(r) - (window.length - 1 - j) * window.stride, first)
             for j in range(window.length)] for r in rows]


def episode_starts(dataset: Path) -> list[tuple[int, int]]:
    episodes = open_dataset(dataset).table("episodes").to_pandas()
    return list(zip(episodes.index_from, episodes.length, strict=True))


def test_scores_equal_the_network_on_hand_built_windows(sequence_run: Path,
                                                        small_dataset: Path) -> None:
    reward = load_reward(sequence_run)
    assert reward.window == WINDOW and reward.model.sequence
    dataset = open_dataset(small_dataset)
    scored = reward.score(dataset_windows(dataset, reward.columns, reward.window))
    plain = step_columns(dataset, reward.columns)
    for first, length in episode_starts(small_dataset)[:3]:
        rows = np.arange(first, first + length)
        index = np.asarray(hand_window(rows, first, WINDOW))  # (length, k)
        with torch.no_grad():
            direct = reward.model({c: torch.from_numpy(v[index].copy()) for c, v in plain.items()})
            # the training path: one run of the episode, padded by repeating its first step
            run = np.concatenate([np.full(WINDOW.span - 1, first), rows])
            trained = reward.model.segment_rewards(
                {c: torch.from_numpy(v[run].copy()) for c, v in plain.items()})
        np.testing.assert_allclose(scored.total[rows], direct.total.numpy(), rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(scored.members[:, rows], trained.members.numpy(),
                                   rtol=1e-4, atol=1e-5)
        # the prior part is r0 of step t itself (gripper_object = -||hand - object||)
        state = plain[fmt.STATE][rows]
        np.testing.assert_allclose(scored.prior[rows],
                                   -np.linalg.norm(state[:, 0:3] - state[:, 4:7], axis=1),
                                   rtol=1e-5, atol=1e-6)
    # the window matters: a step's reward changes when an earlier step in its window does
    first, _ = episode_starts(small_dataset)[0]
    index = np.asarray(hand_window(np.array([first + 10]), first, WINDOW))
    columns = {c: torch.from_numpy(v[index].copy()) for c, v in plain.items()}
    with torch.no_grad():
        before = reward.model(columns).total
        columns[fmt.ACTION][:, 0] += 1.0
        assert not torch.allclose(before, reward.model(columns).total)


def test_training_batches_are_runs_padded_at_episode_starts(small_dataset: Path) -> None:
    cfg = make_config([f"data={small_dataset}", *TRAIN])
    dm = make_datamodule(cfg, open_dataset(small_dataset))
    dm.setup("fit")
    pairs = dm.train_pairs
    assert pairs is not None
    batch = PairBatches(dm.steps, pairs, dm.segment_length, WINDOW).__getitems__(
        range(len(pairs)))
    action = batch["inputs"][fmt.ACTION]
    assert action.shape == (len(pairs), 2, dm.segment_length + WINDOW.span - 1, 4)
    assert (pairs.first - pairs.start < WINDOW.span - 1).any()  # some windows are padded
    for p in range(len(pairs)):
        for side in range(2):
            first, start = int(pairs.first[p, side]), int(pairs.start[p, side])
            rows = [max(r, start) for r in range(first - WINDOW.span + 1,
                                                 first + dm.segment_length)]
            assert torch.equal(action[p, side], dm.steps[fmt.ACTION][rows])


def test_score_evaluate_gallery_query_sum_per_step_rewards(
        sequence_run: Path, small_dataset: Path, tmp_path: Path) -> None:
    reward = load_reward(sequence_run)
    dataset = open_dataset(small_dataset)
    scored = reward.score(dataset_windows(dataset, reward.columns, reward.window))
    first, length = segment_windows(dataset)

    def segment_sum(values: np.ndarray, s: int) -> np.ndarray:
        return values[..., first[s]:first[s] + length].sum(axis=-1)

    out = tmp_path / "scores.parquet"
    assert main(["score", f"reward={sequence_run}", f"data={small_dataset}", "split=train",
                 f"out={out}"]) == 0
    scores = pq.read_table(out).to_pandas()
    for side in ("a", "b"):
        np.testing.assert_allclose(
            scores[f"score_{side}"], [segment_sum(scored.total, s)
                                      for s in scores[f"segment_{side}"]], rtol=1e-5)

    report = tmp_path / "eval"
    assert main(["evaluate", f"reward={sequence_run}", f"data={small_dataset}",
                 f"out={report}", "episodes=1"]) == 0
    assert json.loads((report / "report.json").read_text())["views"]

    gallery = tmp_path / "gallery"
    assert main(["gallery", f"data={small_dataset}", f"out={gallery}",
                 f"reward={sequence_run}", "k=1", "frames=2", "image_size=32"]) == 0
    assert (gallery / "index.html").exists()

    queried = tmp_path / "queried"
    assert main(["query", f"data={small_dataset}", f"reward={sequence_run}",
                 "strategy=disagreement", "n=4", "pool=20", "seed=3", f"out={queried}"]) == 0
    queries = pq.read_table(next((queried / "queries").glob("*.parquet"))).to_pandas()
    for row in queries.itertuples():
        diff = segment_sum(scored.members, row.segment_a) - segment_sum(scored.members,
                                                                         row.segment_b)
        assert row.p_a == pytest.approx((1 / (1 + np.exp(-diff))).mean(), rel=1e-4, abs=1e-6)


def test_same_seed_same_weights(sequence_run: Path, small_dataset: Path,
                                tmp_path: Path) -> None:
    """(Before train-sac, which sets torch's thread count: sums over other thread counts
    may round differently.)"""
    again = tmp_path / "again"
    assert main(["train-reward", f"data={small_dataset}", f"out={again}", *TRAIN]) == 0
    a = load_file(str(sequence_run / ARTIFACT_DIR / WEIGHTS_FILE))
    b = load_file(str(again / ARTIFACT_DIR / WEIGHTS_FILE))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_sac_on_a_sequence_reward(sequence_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "sac"
    assert main(["train-sac", *overrides(
        task="button-press-v3", reward=sequence_run, steps=200, seed=0, out=out, **{
            "sac.batch_size": 32, "sac.learning_starts": 100, "sac.net_arch": [32, 32],
            "eval_every": 200, "eval_episodes": 1, "episode_steps": 50,
            "checkpoint_every": 200})]) == 0
    assert (out / "policy.zip").exists()


def test_train_online_learns_a_sequence_reward(tmp_path: Path) -> None:
    """train-online with a windowed model: the exported reward's per-step rewards over each
    recorded episode, as SAC's wrapper and the replay relabelling compute them, equal
    ``forward`` on each step's hand-built window (padded at the episode start), and the
    segment scores the online learner fits and queries rank (``pair_inputs`` →
    ``segment_returns``) equal the sums of those per-step rewards."""
    out = tmp_path / "online"
    assert main(["train-online", "model=sequence_residual", *overrides(
        task="reach-v3", steps=300, seed=0, out=out, episode_steps=50, feedback=20,
        labels_per_round=10, round_every=100, segment_length=10, pool_factor=3,
        strategy="disagreement", reward_max_epochs=2, eval_every=300, eval_episodes=1,
        **{"sac.learning_starts": 100, "sac.batch_size": 32, "sac.net_arch": [32, 32],
           "model.dim": 16, "model.layers": 1, "model.heads": 2, "model.members": 2,
           "model.window": WINDOW.length, "model.stride": WINDOW.stride})]) == 0
    reward = load_reward(out)
    assert reward.window == WINDOW and reward.model.sequence
    dataset = open_dataset(out / "feedback")
    plain = step_columns(dataset, [fmt.STATE, fmt.ACTION])
    episodes: dict[int, EpisodeArrays] = {}
    per_step: dict[int, np.ndarray] = {}
    for e, (first, length) in enumerate(episode_starts(out / "feedback")):
        obs, act = plain[fmt.STATE][first:first + length], plain[fmt.ACTION][first:first + length]
        episodes[e] = EpisodeArrays(obs, act, np.zeros(length))
        index = np.asarray(hand_window(np.arange(length), 0, WINDOW))  # (length, k)
        with torch.no_grad():
            direct = reward.model({fmt.STATE: torch.from_numpy(obs[index].copy()),
                                   fmt.ACTION: torch.from_numpy(act[index].copy())}).total.numpy()
        per_step[e] = relabel(reward, obs, act)  # the replay buffer's relabelling
        np.testing.assert_allclose(per_step[e], direct, rtol=1e-5, atol=1e-6)
        live = LiveWindows(reward.window, 1)  # SAC's wrapper, one step at a time
        wrapped = [reward.score(live.push({fmt.STATE: obs[t:t + 1], fmt.ACTION: act[t:t + 1]}))
                   .total[0] for t in range(length)]
        np.testing.assert_allclose(wrapped, direct, rtol=1e-5, atol=1e-6)
    segments = dataset.table("segments", columns=["episode_index", "start"]).to_pandas()
    pairs = dataset.preferences("train", ["segment_a", "segment_b"]).to_pandas()
    a, b = segments.iloc[pairs.segment_a], segments.iloc[pairs.segment_b]
    # and pairs whose windows reach back past the episode start
    ea = np.r_[a.episode_index.to_numpy(), 0, 1]
    sa = np.r_[a.start.to_numpy(), 0, 3]
    eb, sb = np.r_[b.episode_index.to_numpy(), 1, 0], np.r_[b.start.to_numpy(), 1, 5]
    queries = Queries(episode_a=ea, start_a=sa, episode_b=eb, start_b=sb, length=10,
                      rewards_a=np.zeros((len(ea), 0)), rewards_b=np.zeros((len(ea), 0)))
    with torch.no_grad():
        returns = segment_returns(reward.model, pair_inputs(episodes.__getitem__, queries,
                                                            reward.window)).mean(0).numpy()
    for side, (eps, starts) in enumerate(((ea, sa), (eb, sb))):
        summed = [per_step[int(e)][s:s + 10].sum() for e, s in zip(eps, starts, strict=True)]
        np.testing.assert_allclose(returns[:, side], summed, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("argv", "message"), [
    (["train-reward", "recipe=state_mlp", "model.window=4", "data=x"],
     "network 'mlp' scores one step: its window must be 1, not 4"),
    (["train-online", "model.window=4", "task=reach-v3"],
     "network 'mlp' scores one step: its window must be 1, not 4"),
])
def test_windows_a_model_cannot_read_are_refused(argv: list[str], message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in one_line_error(capsys)


def test_batched_transformer_equals_torch_encoder_layers_per_member() -> None:
    """The one batched computation of all members (newest step only in the last layer)
    against torch's own pre-norm TransformerEncoderLayer, run member by member on every
    position with the causal mask, given the same weights."""
    torch.manual_seed(0)
    members, length, dim, heads = 3, 5, 16, 4
    net = EnsembleTransformer(7, length, dim=dim, layers=2, heads=heads, members=members)
    for p in net.parameters():  # away from the initial ones and zeros of the norms
        p.data.normal_(0, 0.3)
    tokens = torch.randn(members, 2, 3, length, dim)

    def norm(layer_norm: EnsembleLayerNorm, m: int) -> nn.LayerNorm:
        out = nn.LayerNorm(dim)
        out.weight.data, out.bias.data = layer_norm.weight[m, 0], layer_norm.bias[m, 0]
        return out

    def linear(weight: torch.Tensor, bias: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"weight": weight.T, "bias": bias.reshape(-1)}

    expected = []
    with torch.no_grad():
        for m in range(members):
            x = tokens[m].reshape(-1, length, dim) + net.position[m]
            for block in net.blocks:
                layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0,
                                                   batch_first=True, norm_first=True)
                projections = (block.query, block.key, block.value)
                layer.self_attn.in_proj_weight.data = torch.cat(
                    [p.weight[m] for p in projections], 1).T
                layer.self_attn.in_proj_bias.data = torch.cat([p.bias[m, 0] for p in projections])
                layer.self_attn.out_proj.load_state_dict(linear(block.out.weight[m],
                                                                block.out.bias[m]))
                layer.linear1.load_state_dict(linear(block.feed_forward[0].weight[m],
                                                     block.feed_forward[0].bias[m]))
                layer.linear2.load_state_dict(linear(block.feed_forward[2].weight[m],
                                                     block.feed_forward[2].bias[m]))
                layer.norm1, layer.norm2 = (norm(block.attention_norm, m),
                                            norm(block.feed_forward_norm, m))
                x = layer(x, src_mask=nn.Transformer.generate_square_subsequent_mask(length),
                          is_causal=True)
            newest = norm(net.final_norm, m)(x[:, -1])
            expected.append((newest @ net.head.weight[m] + net.head.bias[m, 0]).reshape(2, 3))
        np.testing.assert_allclose(net.aggregate(tokens).numpy(), torch.stack(expected).numpy(),
                                   rtol=1e-5, atol=1e-5)
