"""One reward-fitting routine: train-reward's Lightning trainer and train-online's learner
give the same network from the same labels, seed and settings; the named random streams."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from helpers import TINY_TRAIN
from torch.utils.data import DataLoader

import rrm_data
from rrm_data.cli import main
from rrm_data.dataset.reader import open_dataset
from rrm_data.reward.artifact import LearnedReward
from rrm_data.reward.networks import RewardNetwork
from rrm_data.reward.spec import reward_spec
from rrm_data.rl.online.learner import OnlineRewardLearner
from rrm_data.streams import CampaignStream, Stream, stream
from rrm_data.training.datamodule import PairBatches
from rrm_data.training.fit import PairOrder, seeded_start
from rrm_data.training.trainer import make_datamodule
from rrm_data.workflows.train_reward import make_config

EPOCHS = 3
# batch 16 over the small dataset's ~80 training pairs: several steps per epoch, the last
# one short; weight decay and label smoothing stay 0 (the online learner has neither)
SETTINGS = [*TINY_TRAIN, f"trainer.max_epochs={EPOCHS}", "data.batch_size=16",
            "optim.lr=0.003", "model.normalize=true", "seed=7"]


def test_online_learner_and_lightning_trainer_fit_bit_identical_weights(
        small_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train-reward", f"data={small_dataset}", f"out={out}", *SETTINGS]) == 0
    trained = rrm_data.load_reward(out)
    assert isinstance(trained, LearnedReward)

    # the same labelled pairs, gathered whole, fitted by the online loop's learner
    cfg = make_config([f"data={small_dataset}", *SETTINGS])
    dm = make_datamodule(cfg, open_dataset(small_dataset))
    dm.setup("fit")
    pairs = dm.train_pairs
    assert pairs is not None and len(pairs) % cfg.data.batch_size != 0
    batch = PairBatches(dm.steps, pairs, dm.segment_length).__getitems__(range(len(pairs)))
    learner = OnlineRewardLearner(
        reward_spec(cfg.model, dm.column_widths, None), lr=cfg.optim.lr,
        batch_size=cfg.data.batch_size, max_epochs=EPOCHS, target_agreement=2.0,
        seed=cfg.seed)
    segment_steps = (np.unique(pairs.first)[:, None] + np.arange(dm.segment_length)).ravel()
    learner.set_normalization({c: dm.steps[c][segment_steps] for c in cfg.model.inputs})
    assert learner.reward.spec.network == trained.spec.network  # normalization included
    fit = learner.fit(batch["inputs"], batch["label"])
    assert fit.epochs == EPOCHS

    online, offline = learner.model.state_dict(), trained.model.state_dict()
    assert online.keys() == offline.keys()
    for name, weights in offline.items():
        assert torch.equal(online[name], weights), name
    # and the fit moved them: the same seed's untrained network differs
    fresh = OnlineRewardLearner(reward_spec(cfg.model, dm.column_widths, None), lr=1.0,
                                batch_size=1, max_epochs=1, target_agreement=1.0,
                                seed=cfg.seed).model.state_dict()
    assert not all(torch.equal(fresh[k], v) for k, v in offline.items() if "input_" not in k)


def test_pair_order_is_torch_random_sampler_continuing_the_seeded_initialization() -> None:
    """The order rule train-reward had when Lightning drew it from torch's global stream:
    ``torch.manual_seed(seed)``, the network built, then each epoch a shuffled train
    DataLoader (its base seed, then its RandomSampler's seed) and the validation DataLoader
    (its base seed). Changing the rule changes every reward trained from a seed."""
    spec = reward_spec({"network": "mlp", "inputs": ["observation.state", "action"],
                        "prior": "zero", "prior_weight": 0.0, "negate_prior": False,
                        "prior_as_input": False, "hidden": 8, "layers": 2, "members": 2},
                       {"observation.state": 5, "action": 2}, None)
    seed, size, epochs = 7, 37, 4
    before = torch.get_rng_state()
    network, generator = seeded_start(spec, seed)
    order = PairOrder(size, generator)
    got = [order.permutation() for _ in range(epochs)]
    assert torch.equal(torch.get_rng_state(), before)  # the global stream untouched

    with torch.random.fork_rng(devices=[]):  # the old rule, by torch's own loaders
        torch.manual_seed(seed)
        reference = RewardNetwork(spec)
        train = DataLoader(range(size), batch_size=8, shuffle=True)
        validation = DataLoader(range(5), batch_size=8)
        expected = []
        for _ in range(epochs):
            expected.append(torch.cat(list(train)))
            list(validation)
    for name, weights in reference.state_dict().items():
        assert torch.equal(network.state_dict()[name], weights), name
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(got[0], got[1])


def test_train_reward_leaves_the_process_random_state_alone(small_dataset: Path,
                                                            tmp_path: Path) -> None:
    states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    assert main(["train-reward", f"data={small_dataset}", f"out={tmp_path / 'run'}",
                 *TINY_TRAIN, "trainer.max_epochs=1"]) == 0
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1])
    assert random.getstate() == states[2]


def test_normalization_is_mean_and_population_std_with_constant_features_unscaled() -> None:
    rng = np.random.default_rng(0)
    state = rng.normal(3.0, 2.0, (4, 5, 3))
    state[..., 1] = 7.0  # a constant feature
    action = rng.normal(size=(4, 5, 2))
    learner = OnlineRewardLearner(
        reward_spec({"network": "mlp", "inputs": ["observation.state", "action"],
                     "prior": "zero", "prior_weight": 0.0, "negate_prior": False,
                     "prior_as_input": False, "hidden": 4, "layers": 1, "members": 1},
                    {"observation.state": 3, "action": 2}, None),
        lr=1e-3, batch_size=4, max_epochs=1, target_agreement=1.0, seed=0)
    learner.set_normalization({"observation.state": torch.as_tensor(state),
                               "action": torch.as_tensor(action)})
    x = np.concatenate([state.reshape(-1, 3), action.reshape(-1, 2)], axis=1)
    expected_std = np.sqrt(((x - x.mean(axis=0)) ** 2).mean(axis=0))
    expected_std[1] = 1.0
    norm = learner.reward.spec.network.normalization  # type: ignore[union-attr]
    assert norm is not None
    np.testing.assert_allclose(norm.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(norm.std, expected_std, rtol=1e-12)
    np.testing.assert_array_equal(learner.model.input_std.numpy(),
                                  np.float32(expected_std))


def test_stream_numbers_never_change() -> None:
    """Datasets' bytes depend on these numbers: renumbering one changes every collection."""
    assert {s.name: int(s) for s in Stream} == {
        "SEGMENTS": 1, "PAIRS": 2, "TEACHER": 3, "VALIDATION": 4, "QUERIES": 5,
        "ONLINE_TEACHER": 7, "FEEDBACK_TEST": 11}
    assert {s.name: int(s) for s in CampaignStream} == {"CALIBRATION": 1, "SIDES": 2}
    a = stream(np.int64(12), Stream.TEACHER, 99, 2).random(4)
    assert np.array_equal(a, np.random.default_rng([12, 3, 99, 2]).random(4))
