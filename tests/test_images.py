"""Camera frames: collect with cameras, exact re-rendering, `datasets` Image loading, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import one_line_error, overrides
from PIL import Image

from rrm_data.cli import main
from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import decode_column
from rrm_data.dataset.reader import open_dataset
from rrm_data.sim.envs import RenderSpec, get_physics_state, make_env, reset_to_rand_vec
from rrm_data.sim.rendering import FrameRenderer, FrameSpec, physics_states

# Small on purpose: 6 episodes × 30 steps of 32 × 32 frames.
IMAGES = {"episodes": 6, "episode_steps": 30, "segment_length": 10, "segments_per_episode": 4,
          "pairs": 40, "image_size": 32}
CAMERA = fmt.image_column("corner")


@pytest.fixture(scope="module")
def rendered(make_dataset) -> Path:
    return make_dataset(**IMAGES, camera="corner")


@pytest.fixture(scope="module")
def state_only(make_dataset) -> Path:
    return make_dataset(**IMAGES)


def steps_table(path: Path):
    return open_dataset(path).table("steps")


@pytest.mark.slow
def test_collect_stores_upright_frames_that_datasets_decodes(rendered, tmp_path):
    info = json.loads((rendered / "meta" / "info.json").read_text())
    assert info["cameras"] == ["corner"]
    assert info["features"]["steps"][CAMERA]["dtype"] == "image"

    loaded = datasets.load_dataset(str(rendered), "steps", split="train",
                                   cache_dir=str(tmp_path / "cache"))
    assert isinstance(loaded.features[CAMERA], datasets.Image)
    first = loaded[0][CAMERA]
    assert isinstance(first, Image.Image) and first.size == (32, 32) and first.mode == "RGB"
    assert len(loaded) == info["counts"]["steps"]

    # Row 0 shows the state before the first action, upright: Meta-World's corner camera
    # looks at the scene upside down, so the frame is gymnasium's env.render() turned 180°.
    steps = steps_table(rendered)
    episode = open_dataset(rendered).table("episodes").to_pylist()[0]
    env = make_env(episode["task"], seed=0)
    reset_to_rand_vec(env, episode["rand_vec"])
    assert get_physics_state(env).qpos == pytest.approx(steps.column("sim.qpos")[0].as_py())
    renderer = FrameRenderer(env.unwrapped.model, FrameSpec(("corner",), 32, "full"))
    upright = renderer.render(get_physics_state(env))["corner"]
    raw = make_env(episode["task"], seed=0, render=RenderSpec("corner", 32))
    reset_to_rand_vec(raw, episode["rand_vec"])
    assert np.array_equal(upright, raw.render()[::-1, ::-1])
    # The stored frame (fast scene: no shadows, no multisampling) shows the same, less smoothly.
    stored = np.asarray(first)
    assert np.abs(stored.astype(int) - upright.astype(int)).mean() < 20


def test_frames_do_not_change_the_rollouts(rendered, state_only):
    with_frames = steps_table(rendered).drop_columns([CAMERA])
    assert with_frames.equals(steps_table(state_only))


@pytest.mark.slow
def test_render_adds_frames_equal_to_collected_ones_pixel_exactly(rendered, state_only, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(state_only, data)
    assert main(["render", *overrides(data=data, camera="corner", image_size=32)]) == 0

    again, original = steps_table(data), steps_table(rendered)
    assert np.array_equal(decode_column(again.column(CAMERA)),
                          decode_column(original.column(CAMERA)))
    assert again.drop_columns([CAMERA]).equals(original.drop_columns([CAMERA]))
    info = open_dataset(data).info
    assert info.cameras == ["corner"] and info.render["image_size"] == 32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary leftovers
    assert main(["validate", f"data={data}"]) == 0

    # A second camera goes next to the first; the same camera twice is refused.
    assert main(["render", *overrides(data=data, camera="topview", image_size=32)]) == 0
    assert open_dataset(data).info.cameras == ["corner", "topview"]
    assert main(["render", *overrides(data=data, camera="corner", image_size=32)]) == 2


def test_renderer_fast_and_full_differ_and_states_round_trip(state_only):
    steps = steps_table(state_only).slice(0, 3)
    episode = open_dataset(state_only).table("episodes").to_pylist()[0]
    frames = {}
    for quality in ("fast", "full"):
        env = make_env(episode["task"], seed=0)
        reset_to_rand_vec(env, episode["rand_vec"])
        renderer = FrameRenderer(env.unwrapped.model, FrameSpec(("corner", "topview"), 24,
                                                                quality))
        frames[quality] = [renderer.render(s) for s in physics_states(steps)]
        renderer.close()
    assert frames["fast"][0]["corner"].shape == (24, 24, 3)
    assert not np.array_equal(frames["fast"][0]["corner"], frames["full"][0]["corner"])
    assert not np.array_equal(frames["fast"][0]["corner"], frames["fast"][0]["topview"])


@pytest.mark.parametrize(("args", "message"), [
    ({"camera": "nope"}, "valid cameras: topview, corner"),
    ({"camera": "corner", "image_size": 8}, "image_size must lie in [16, 512]"),
    ({"camera": "corner", "image_size": 4096}, "image_size must lie in [16, 512]"),
    ({"camera": "corner", "render_quality": "ultra"}, "render_quality must be one of fast, full"),
])
def test_collect_bad_image_settings_fail_in_one_line(args, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["collect", *overrides(**{**IMAGES, **args, "out": out})]) == 2
    assert message in one_line_error(capsys, "collect")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_render_bad_input_leaves_the_dataset_untouched(state_only, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(state_only, data)
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    for args, message in [({"camera": "nope"}, "unknown camera 'nope'; valid cameras:"),
                          ({"camera": "corner", "image_size": 2}, "image_size must lie"),
                          ({"camera": "corner", "out": state_only}, "holds an earlier dataset")]:
        assert main(["render", *overrides(data=data, **args)]) == 2
        assert message in capsys.readouterr().err
    assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_rendering_unavailable_names_the_package_to_install(tmp_path):
    """Without OSMesa (no MUJOCO_GL backend chosen) collect with a camera stops at once."""
    env = {**os.environ, "MUJOCO_GL": ""}
    out = tmp_path / "out"
    args = overrides(**{**IMAGES, "camera": "corner", "out": out})
    done = subprocess.run([sys.executable, "-m", "rrm_data.cli", "collect", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "apt-get install libosmesa6" in done.stderr.strip().splitlines()[-1]
    assert not out.exists()


def test_image_column_is_png_struct(rendered):
    schema = pq.read_schema(open_dataset(rendered).files("steps")[0])
    field = schema.field(CAMERA)
    assert [f.name for f in field.type] == ["bytes", "path"]
    assert json.loads(schema.metadata[b"huggingface"])["info"]["features"][CAMERA] == {
        "_type": "Image"}


@pytest.mark.slow
def test_collect_with_frames_in_worker_processes_matches_one_process(make_dataset):
    """Workers fork before any GL context exists (a context made first would hang them)."""
    tiny = {**IMAGES, "episodes": 4, "episode_steps": 10, "segment_length": 5, "pairs": 8,
            "image_size": 16, "camera": "corner"}
    one, two = make_dataset(**tiny), make_dataset(**tiny, workers=2)
    assert steps_table(one).equals(steps_table(two))
