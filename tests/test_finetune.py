"""Fine-tuning the image encoder's last blocks (model.finetune_blocks): real EfficientNet-Lite0
weights, a real small collection with 32 × 32 frames, one epoch on the CPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import one_line_error, overrides
from safetensors.torch import load_file

from rrm_data.cli import main
from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import step_columns
from rrm_data.dataset.reader import open_dataset
from rrm_data.reward.artifact import LearnedReward, load_reward
from rrm_data.reward.networks import RewardNetwork
from rrm_data.reward.spec import NetworkSpec, PriorSpec, RewardSpec, Window
from rrm_data.reward.window import dataset_windows
from rrm_data.rl.relabel import relabel
from rrm_data.rl.wrapper import reward_frame_spec
from rrm_data.training.datamodule import PreferenceDataModule
from rrm_data.training.module import RewardLearner
from rrm_data.vision.encoders import load_encoder
from rrm_data.vision.finetune import tuned_encoder, tuned_parts, tuning_record

# test_embed's collection (shared with it through the session's make_dataset cache).
IMAGES = {"episodes": 6, "episode_steps": 30, "segment_length": 10, "segments_per_episode": 4,
          "pairs": 40, "image_size": 32}
CAMERA = fmt.image_column("corner")
TABLE = "embeddings/tf_efficientnet_lite0"
TINY = {"trainer.max_epochs": 1, "data.batch_size": 16, "model.hidden": 32, "model.trunk": 16,
        "trainer.enable_progress_bar": False}
# EfficientNet-Lite0's last block (stage 7 of timm's `blocks`) and the layers after it.
LAST_BLOCK = ("blocks.6.", "conv_head.", "bn2.")


@pytest.fixture(scope="module")
def rendered(make_dataset) -> Path:
    return make_dataset(**IMAGES, camera="corner")


def train(data: Path, out: Path, **extra: object) -> int:
    return main(["train-reward", "recipe=image_frozen", f"data={data}", f"out={out}",
                 *overrides(**{**TINY, **extra})])


@pytest.fixture(scope="module")
def tuned_run(rendered, tmp_path_factory) -> Path:
    """One epoch fine-tuning the last block, on frames (the dataset has no features table)."""
    out = tmp_path_factory.mktemp("tuned") / "run"
    assert train(rendered, out, **{"model.finetune_blocks": 1}) == 0
    return out


def encoder_tensors(run: Path) -> dict[str, torch.Tensor]:
    prefix = "encoder.model."
    return {k.removeprefix(prefix): v for k, v in load_file(str(run / "reward" /
                                                               "weights.safetensors")).items()
            if k.startswith(prefix)}


def test_only_the_last_block_and_head_train(tuned_run, rendered):
    pretrained = load_encoder().model.state_dict()
    tuned = encoder_tensors(tuned_run)
    assert tuned.keys() == pretrained.keys()
    last = [k for k in tuned if k.startswith(LAST_BLOCK)]
    frozen = [k for k in tuned if not k.startswith(LAST_BLOCK)]
    assert len(frozen) > 250 and len(last) > 10
    for key in frozen:  # weights and BatchNorm statistics, bit for bit
        assert torch.equal(tuned[key], pretrained[key]), key
    for key in last:  # every weight, and the BatchNorm statistics, moved
        assert not torch.equal(tuned[key], pretrained[key]), key
    # the features table was not needed, so it was not built
    assert TABLE not in open_dataset(rendered).info.embeddings


def test_tuned_encoder_freezes_everything_before_the_last_blocks():
    frozen = load_encoder()
    encoder = tuned_encoder(tuning_record(frozen, ["corner"], 2))
    tuned = {id(m) for part in tuned_parts(encoder.model, 2) for m in part.modules()}
    assert len(tuned_parts(encoder.model, 2)) == 2 + 4  # blocks 6, 7; conv_head, bn2, pool, fc
    encoder.train()
    for module in encoder.model.modules():
        if id(module) in tuned:
            assert module.training
            assert all(p.requires_grad for p in module.parameters(recurse=False))
        else:
            assert not module.training, module  # BatchNorm statistics stay frozen
            assert not any(p.requires_grad for p in module.parameters(recurse=False)), module
    encoder.eval()
    assert not any(m.training for m in encoder.modules())


def test_artifact_scores_frames_with_its_own_encoder(tuned_run, rendered):
    reward = load_reward(tuned_run)
    record = reward.spec.network.encoder
    assert record["encoder"] == "tf_efficientnet_lite0" and record["finetune_blocks"] == 1
    assert record["weights_sha256"] == load_encoder().weights_sha256
    assert record["preprocessing"]["mean"] == [0.5] * 3 and record["cameras"] == ["corner"]
    assert set(reward.columns) == {CAMERA, fmt.ACTION, fmt.STATE} and not reward.spec.encoders
    assert reward_frame_spec(reward).cameras == ("corner",)  # train-sac renders these
    assert reward_frame_spec(reward).size == 32

    columns = step_columns(open_dataset(rendered), reward.columns, rows=np.arange(40))
    scores = reward.score({c: v[:, None] for c, v in columns.items()})

    # the in-training module, restored from the run's checkpoint, on the same frames
    learner = RewardLearner.load_from_checkpoint(tuned_run / "checkpoints" / "last.ckpt",
                                                 weights_only=False).eval()
    with torch.no_grad():
        forward = learner.reward({c: torch.from_numpy(v) for c, v in columns.items()})
    np.testing.assert_allclose(scores.total, forward.total.numpy(), rtol=0, atol=1e-5)
    assert np.ptp(scores.residual) > 1e-3

    # obs/act/frames and relabelling (train-sac's path) read the same encoder
    direct = reward(columns[fmt.STATE], columns[fmt.ACTION], frames=columns[CAMERA])
    np.testing.assert_allclose(direct.total, scores.total, rtol=0, atol=1e-5)
    relabelled = relabel(reward, columns[fmt.STATE], columns[fmt.ACTION],
                         frames={"corner": columns[CAMERA]})
    np.testing.assert_allclose(relabelled, scores.total, rtol=0, atol=1e-5)

    # the same network on the pretrained (frozen) encoder scores otherwise
    reward.model.encoder.start_from(load_encoder())
    frozen = reward.score({c: v[:, None] for c, v in columns.items()})
    assert np.abs(frozen.residual - scores.residual).max() > 1e-4


def spec_without_name(run: Path) -> dict:
    return {k: v for k, v in json.loads((run / "reward" / "reward.json").read_text()).items()
            if k != "name"}


def test_same_seed_gives_the_same_weights(tuned_run, rendered, tmp_path):
    again = tmp_path / "again"
    assert train(rendered, again, **{"model.finetune_blocks": 1}) == 0
    assert (again / "reward" / "weights.safetensors").read_bytes() == \
        (tuned_run / "reward" / "weights.safetensors").read_bytes()
    assert spec_without_name(again) == spec_without_name(tuned_run)


def test_score_reads_the_frames(tuned_run, rendered, tmp_path):
    out = tmp_path / "scores.parquet"
    assert main(["score", f"reward={tuned_run}", f"data={rendered}", "split=test",
                 f"out={out}"]) == 0
    scores = pd.read_parquet(out)
    assert len(scores) > 0 and np.isfinite(scores["score_a"]).all()
    assert scores["score_a"].nunique() > 1


def test_zero_blocks_is_the_frozen_run(rendered, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(rendered, data)
    assert main(["embed", f"data={data}"]) == 0
    assert train(data, tmp_path / "frozen", **{"trainer.max_epochs": 2}) == 0
    assert train(data, tmp_path / "zero", **{"trainer.max_epochs": 2,
                                             "model.finetune_blocks": 0}) == 0
    frozen, zero = tmp_path / "frozen", tmp_path / "zero"
    assert (frozen / "reward" / "weights.safetensors").read_bytes() == \
        (zero / "reward" / "weights.safetensors").read_bytes()
    spec = spec_without_name(zero)
    assert spec == spec_without_name(frozen)
    assert spec["inputs"][0]["column"] == TABLE and "encoder" not in spec


def test_sequence_batches_encode_each_distinct_frame_once(rendered):
    """A window of frames in training (distinct frames + frame_index) scores as the artifact
    scores the same windows of stored steps."""
    dataset = open_dataset(rendered)
    window = Window(4, 2)
    spec = NetworkSpec("transformer", {"dim": 8, "layers": 1, "heads": 2, "members": 2},
                       ((CAMERA, 1280), (fmt.ACTION, 4)), PriorSpec("zero", 0.0, False, False),
                       window=window, encoder=tuning_record(load_encoder(), ["corner"], 1))
    network = RewardNetwork(spec).eval()
    network.encoder.start_from(load_encoder())
    module = PreferenceDataModule(dataset, spec.columns, window=window, batch_size=4)
    module.setup("fit")
    batch = next(iter(module._loader(module.train_pairs, shuffle=False)))
    frames, index = batch["inputs"][CAMERA], batch["frame_index"]
    assert index.shape == (4, 2, 10 + window.span - 1)
    assert len(frames) == len(np.unique(index)) < index.numel()
    with torch.no_grad():
        trained = network.segment_rewards(network.encoded(batch["inputs"], index)).total

    reward = LearnedReward(network, RewardSpec.learned("seq", spec))
    first = module.train_pairs.first[:4]
    rows = (first[..., None] + np.arange(10)).ravel()
    steps, at = np.unique(rows, return_inverse=True)
    scored = reward.score(dataset_windows(dataset, reward.columns, window, steps)).total
    np.testing.assert_allclose(scored[at].reshape(trained.shape), trained.numpy(), rtol=0,
                               atol=1e-5)


@pytest.mark.parametrize(("extra", "message"), [
    ({"model.finetune_blocks": -1}, "model.finetune_blocks must lie in [0, 1024], got -1"),
    ({"model.finetune_blocks": 8},
     "model.finetune_blocks=8, but encoder 'tf_efficientnet_lite0' has 7 blocks"),
    ({"recipe": "state_residual", "model.finetune_blocks": 1},
     "fine-tunes an image encoder, but the model reads no frames"),
    ({"model.inputs": ["embeddings/resnet18", "action"], "model.finetune_blocks": 1},
     "encoder 'resnet18' has no `blocks` to fine-tune"),
])
def test_bad_settings_are_refused_in_one_line(extra, message, rendered, tmp_path, capsys):
    assert train(rendered, tmp_path / "bad", **extra) == 2
    assert message in one_line_error(capsys, "train-reward")
    assert not (tmp_path / "bad").exists()


def test_data_without_the_frames_is_refused_in_one_line(make_dataset, rendered, tmp_path,
                                                       capsys):
    frameless = make_dataset(**IMAGES)  # no camera: no frames
    capsys.readouterr()
    assert train(frameless, tmp_path / "bad", **{"model.finetune_blocks": 1}) == 2
    assert "has no camera frames; add some first: rrm-data render" in one_line_error(
        capsys, "train-reward")
    assert not (tmp_path / "bad").exists()

    # features of a camera whose frames the dataset lacks
    data = tmp_path / "data"
    shutil.copytree(rendered, data)
    assert main(["embed", f"data={data}"]) == 0
    info = json.loads((data / "meta" / "info.json").read_text())
    info["embeddings"][TABLE]["cameras"] = ["topview"]
    (data / "meta" / "info.json").write_text(json.dumps(info))
    capsys.readouterr()
    assert train(data, tmp_path / "bad", **{"model.finetune_blocks": 1}) == 2
    assert "has no frames of camera topview, which its embeddings/tf_efficientnet_lite0 " \
           "features come from" in one_line_error(capsys, "train-reward")
    assert not (tmp_path / "bad").exists()
