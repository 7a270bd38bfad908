"""Reward-model parts: torch priors, the residual model, step columns and the data module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import step_columns
from rrm_data.dataset.priors import PRIORS
from rrm_data.dataset.reader import open_dataset
from rrm_data.errors import RrmError
from rrm_data.reward.networks import RewardNetwork
from rrm_data.reward.spec import NetworkSpec
from rrm_data.training.datamodule import PairBatches, PreferenceDataModule

COLUMNS = [fmt.STATE, fmt.ACTION]


def spec(prior: str = "gripper_object", weight: float = 2.0, negate: bool = False,
         as_input: bool = False) -> NetworkSpec:
    return NetworkSpec.from_json({
        "network": "mlp", "params": {"hidden": 16, "layers": 2, "members": 3},
        "inputs": [{"column": fmt.STATE, "width": 39}, {"column": fmt.ACTION, "width": 4}],
        "prior": {"name": prior, "weight": weight, "negate": negate, "as_input": as_input},
        "normalization": None})


@pytest.fixture(scope="module")
def steps(small_dataset: Path) -> dict[str, np.ndarray]:
    return step_columns(open_dataset(small_dataset), [fmt.STATE, fmt.ACTION, "index"])


def test_step_columns_in_index_order(steps: dict, small_dataset: Path) -> None:
    assert steps[fmt.STATE].shape == (600, 39) and steps[fmt.STATE].dtype == np.float32
    assert steps[fmt.ACTION].shape == (600, 4)
    assert np.array_equal(steps["index"], np.arange(600))
    with pytest.raises(RrmError, match="steps table has no column prior.nothing"):
        step_columns(open_dataset(small_dataset), ["prior.nothing"])


def test_torch_priors_match_the_numpy_priors(steps: dict) -> None:
    obs = steps[fmt.STATE].astype(np.float64)
    for _, fn in PRIORS.items():
        np.testing.assert_allclose(fn(torch.from_numpy(obs)).numpy(), fn(obs))


@pytest.mark.parametrize(("negate", "as_input"), [(False, False), (True, False), (False, True)])
def test_residual_model_parts(steps: dict, negate: bool, as_input: bool) -> None:
    torch.manual_seed(0)
    model = RewardNetwork(spec(negate=negate, as_input=as_input))
    columns = {c: torch.from_numpy(steps[c]) for c in COLUMNS}
    parts = model(columns)
    r0 = PRIORS.get("gripper_object")(steps[fmt.STATE].astype(np.float64))
    np.testing.assert_allclose(parts.prior.numpy(), (-2.0 if negate else 2.0) * r0, rtol=1e-5)
    assert parts.members.shape == (3, 600)
    torch.testing.assert_close(parts.total, parts.prior + parts.residual)
    torch.testing.assert_close(parts.total, parts.members.mean(0))


def test_zero_prior_is_a_plain_tanh_mlp(steps: dict) -> None:
    model = RewardNetwork(spec(prior="zero"))
    parts = model({c: torch.from_numpy(steps[c]) for c in COLUMNS})
    assert torch.count_nonzero(parts.prior) == 0
    assert parts.total.abs().max() <= 1.0


def datamodule(data: Path, **kw: object) -> PreferenceDataModule:
    dm = PreferenceDataModule(open_dataset(data), COLUMNS, batch_size=8, **kw)
    dm.setup("fit")
    return dm


def test_batches_gather_the_segments_of_each_pair(small_dataset: Path, steps: dict) -> None:
    dataset = open_dataset(small_dataset)
    segments = dataset.table("segments").to_pandas().set_index("segment_index")
    episodes = dataset.table("episodes").to_pandas().set_index("episode_index")
    prefs = dataset.preferences("train").to_pandas()
    prefs = prefs[prefs.teacher == "mistake"].sort_values("pair_index")
    dm = datamodule(small_dataset, teacher="mistake", num_labels=20, val_split="test")
    batch = next(iter(dm.val_dataloader()))
    assert batch["inputs"][fmt.STATE].shape == (8, 2, 20, 39)
    assert dm.train_pairs is not None
    batch = PairBatches(dm.steps, dm.train_pairs, dm.segment_length).__getitems__(range(20))
    for i, row in enumerate(prefs.head(20).itertuples()):  # reference: a loop per pair
        for side, seg in enumerate((row.segment_a, row.segment_b)):
            s = segments.loc[seg]
            first = int(episodes.loc[int(s.episode_index), "index_from"] + s.start)
            expected = steps[fmt.STATE][first:first + int(s.length)]
            assert np.array_equal(batch["inputs"][fmt.STATE][i, side].numpy(), expected)
        assert batch["label"][i] == row.label


def test_validation_split_and_held_out_fraction(small_dataset: Path) -> None:
    dm = datamodule(small_dataset, val_split="test")
    assert (len(dm.train_pairs), len(dm.val_pairs)) == (96, 24)
    held = datamodule(small_dataset, val_split="pairs", val_fraction=0.25)
    assert (len(held.train_pairs), len(held.val_pairs)) == (72, 24)
    assert np.array_equal(held.val_pairs.first, dm.train_pairs.first[72:])
    stats = dm.input_stats(COLUMNS)
    assert len(stats.mean) == 43 and min(stats.std) > 0
