"""Scripted teachers follow B-Pref's formulas: on constructed rewards, and on a real dataset
whose segment returns are recomputed here from the steps table, independently of the builder."""

from __future__ import annotations

import numpy as np
import pytest

from rrm_data.dataset import format as fmt
from rrm_data.dataset.reader import open_dataset
from rrm_data.errors import RrmError
from rrm_data.labels.teachers import (
    Equal,
    Mistake,
    Myopic,
    Oracle,
    PairRewards,
    Skip,
    Stochastic,
    make_teacher,
)

EPSILON = {"skip": 0.8, "equal": 0.3}  # large enough that both outcomes occur on small data


def hard(diff: np.ndarray) -> np.ndarray:
    return np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))


def random_pairs(n: int = 20_000, horizon: int = 10, seed: int = 0) -> PairRewards:
    rng = np.random.default_rng(seed)
    return PairRewards(rng.uniform(0, 1, (n, horizon)), rng.uniform(0, 1, (n, horizon)), 5.0)


# --- constructed rewards ---------------------------------------------------------------------

def test_oracle_prefers_the_higher_return_and_ties_are_half():
    pairs = PairRewards(np.array([[1.0, 2.0], [0.0, 0.0], [1.0, 1.0]]),
                        np.array([[0.0, 2.0], [0.0, 1.0], [2.0, 0.0]]), 1.0)
    assert Oracle().label(pairs, np.random.default_rng(0)).tolist() == [1.0, 0.0, 0.5]


def test_mistake_flips_about_epsilon_of_the_labels():
    pairs = random_pairs()
    oracle = Oracle().label(pairs, np.random.default_rng(0))
    for epsilon in (0.1, 0.3):
        labels = Mistake(epsilon).label(pairs, np.random.default_rng(1))
        flipped = labels != oracle
        assert np.array_equal(labels[flipped], 1.0 - oracle[flipped])
        assert abs(flipped.mean() - epsilon) < 0.01


def test_stochastic_follows_the_sigmoid_of_beta_times_the_return_gap():
    gap = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    n = 20_000
    rewards_a = np.repeat(gap, n)[:, None]
    pairs = PairRewards(rewards_a, np.zeros_like(rewards_a), 1.0)
    for beta in (1.0, 3.0):
        labels = Stochastic(beta).label(pairs, np.random.default_rng(2)).reshape(len(gap), n)
        assert set(np.unique(labels)) <= {0.0, 1.0}
        np.testing.assert_allclose(labels.mean(axis=1), 1 / (1 + np.exp(-beta * gap)), atol=0.015)


def test_equal_gives_half_exactly_below_epsilon_times_mean_return():
    # mean segment return 10, ε = 0.1: threshold 1.0; the gap is a - b.
    gaps = np.array([-1.5, -1.0, -0.999, 0.0, 0.5, 0.999, 1.0, 3.0])
    pairs = PairRewards(gaps[:, None] + 4.0, np.full((len(gaps), 1), 4.0), 10.0)
    labels = Equal(0.1).label(pairs, np.random.default_rng(0))
    assert labels.tolist() == [0.0, 0.0, 0.5, 0.5, 0.5, 0.5, 1.0, 1.0]


def test_skip_drops_pairs_whose_better_return_is_below_threshold():
    # threshold 0.1 × 20 = 2: a pair is kept when either return reaches 2.
    returns_a = np.array([0.0, 1.9, 2.0, 5.0, 1.0])
    returns_b = np.array([1.0, 1.0, 0.0, 0.0, 1.99])
    pairs = PairRewards(returns_a[:, None], returns_b[:, None], 20.0)
    labels = Skip(0.1).label(pairs, np.random.default_rng(0))
    assert np.isnan(labels).tolist() == [True, True, False, False, True]
    assert labels[2:4].tolist() == [1.0, 1.0]


def test_myopic_weights_step_t_by_gamma_to_the_h_minus_1_minus_t():
    np.testing.assert_allclose(Myopic(0.9).weights(4), [0.9**3, 0.9**2, 0.9, 1.0])
    # a earns 1 at the first step, b earns 0.5 at the last: the oracle picks a, myopic b.
    rewards_a = np.zeros((1, 10))
    rewards_a[0, 0] = 1.0
    rewards_b = np.zeros((1, 10))
    rewards_b[0, -1] = 0.5
    pairs = PairRewards(rewards_a, rewards_b, 1.0)
    assert Oracle().label(pairs, np.random.default_rng(0)).tolist() == [1.0]
    assert Myopic(0.9).label(pairs, np.random.default_rng(0)).tolist() == [0.0]
    assert Myopic(1.0).label(pairs, np.random.default_rng(0)).tolist() == [1.0]

    pairs = random_pairs(n=2000, horizon=7)
    weights = np.array([0.8 ** (7 - 1 - t) for t in range(7)])
    expected = hard((pairs.rewards_a * weights).sum(1) - (pairs.rewards_b * weights).sum(1))
    assert np.array_equal(Myopic(0.8).label(pairs, np.random.default_rng(0)), expected)


def test_unknown_teacher_and_parameter_are_refused():
    with pytest.raises(RrmError, match="unknown teacher 'psychic'"):
        make_teacher("psychic")
    with pytest.raises(RrmError, match="has no parameter 'beta'"):
        make_teacher("mistake", {"beta": 1.0})


# --- a real dataset ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def labelled(make_dataset):
    """A dataset with many pairs and all six teachers, and its segment rewards recomputed."""
    root = make_dataset(pairs=2000, episodes=20, segments_per_episode=12,
                        **{f"teacher_params.{name}.epsilon": eps
                                       for name, eps in EPSILON.items()})
    data = open_dataset(root)
    rewards = data.table("steps", columns=[fmt.REWARD]).column(fmt.REWARD).to_numpy()
    episodes = data.table("episodes").to_pandas().set_index("episode_index")
    segments = data.table("segments").to_pandas()
    first = episodes.loc[segments["episode_index"], "index_from"].to_numpy() + segments["start"]
    window = first.to_numpy()[:, None] + np.arange(segments["length"].iloc[0])[None, :]
    segment_rewards = rewards[window].astype(np.float64)
    return data, segment_rewards


def labels_of(data, split: str, teacher: str):
    table = data.preferences(split).to_pandas()
    return table[table["teacher"] == teacher].set_index("pair_index")


def all_pairs(data, split: str):
    """Every pair of the split: the oracle labels all of them."""
    return labels_of(data, split, "oracle")


@pytest.mark.parametrize("split", ["train", "test"])
def test_oracle_agrees_with_the_sign_of_the_return_gap_on_every_pair(labelled, split):
    data, seg = labelled
    pairs = all_pairs(data, split)
    assert len(pairs) == data.info.counts.pairs[split]
    gap = seg[pairs["segment_a"]].sum(1) - seg[pairs["segment_b"]].sum(1)
    assert np.array_equal(pairs["label"].to_numpy(), hard(gap))


def test_mistake_flips_close_to_epsilon_of_the_oracle_labels(labelled):
    data, _ = labelled
    oracle = all_pairs(data, "train")["label"]
    mistake = labels_of(data, "train", "mistake")["label"]
    assert mistake.index.equals(oracle.index)
    flipped = (mistake != oracle).to_numpy()
    assert np.array_equal(mistake.to_numpy()[flipped], 1.0 - oracle.to_numpy()[flipped])
    assert abs(flipped.mean() - 0.1) < 0.03, flipped.mean()


def threshold(data, seg, teacher: str) -> float:
    mean_return = seg.sum(1).mean()
    assert mean_return == pytest.approx(data.info.labelling["mean_segment_return"], rel=1e-9)
    return EPSILON[teacher] * mean_return


def test_equal_gives_half_exactly_when_the_gap_is_below_threshold(labelled):
    data, seg = labelled
    small_gaps = []
    for split in ("train", "test"):
        pairs = labels_of(data, split, "equal")
        gap = seg[pairs["segment_a"]].sum(1) - seg[pairs["segment_b"]].sum(1)
        small = np.abs(gap) < threshold(data, seg, "equal")
        labels = pairs["label"].to_numpy()
        assert np.all(labels[small] == 0.5)
        assert np.array_equal(labels[~small], hard(gap[~small]))
        small_gaps.append(small)
    small = np.concatenate(small_gaps)
    assert 0 < small.sum() < len(small), "both outcomes should occur"


def test_skip_drops_exactly_the_pairs_below_threshold(labelled):
    data, seg = labelled
    dropped = []
    for split in ("train", "test"):
        pairs = all_pairs(data, split)
        best = np.maximum(seg[pairs["segment_a"]].sum(1), seg[pairs["segment_b"]].sum(1))
        low = best < threshold(data, seg, "skip")
        kept = labels_of(data, split, "skip")
        assert set(kept.index) == set(pairs.index[~low])
        assert data.info.counts.skipped[split]["skip"] == int(low.sum())
        assert np.array_equal(kept["label"].to_numpy(), pairs.loc[kept.index, "label"].to_numpy())
        dropped.append(low)
    low = np.concatenate(dropped)
    assert 0 < low.sum() < len(low), "both outcomes should occur"


def test_myopic_labels_use_discounted_returns(labelled):
    data, seg = labelled
    pairs = labels_of(data, "train", "myopic")
    horizon = seg.shape[1]
    weights = np.array([0.9 ** (horizon - 1 - t) for t in range(horizon)])
    gap = seg[pairs["segment_a"]] @ weights - seg[pairs["segment_b"]] @ weights
    assert np.array_equal(pairs["label"].to_numpy(), hard(gap))
    oracle = all_pairs(data, "train")["label"]
    assert (pairs["label"] != oracle).any(), "myopic should disagree with the oracle sometimes"


def test_every_pair_gets_one_row_per_teacher(labelled):
    data, _ = labelled
    table = data.preferences("train").to_pandas()
    per_teacher = table.groupby("teacher").size()
    n = data.info.counts.pairs["train"]
    assert per_teacher.drop("skip").eq(n).all()
    assert set(per_teacher.index) == {"oracle", "stochastic", "mistake", "skip", "equal", "myopic"}
    assert set(np.unique(table["label"])) <= {0.0, 0.5, 1.0}
