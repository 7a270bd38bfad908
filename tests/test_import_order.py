"""Torch and OSMesa rendering in one process, whatever was imported first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TINY_TRAIN

SCRIPT = """
import metaworld  # first, with MUJOCO_GL=osmesa: OSMesa's LLVM is in the process from here on
import numpy as np
from rrm_data.sim.envs import get_physics_state, make_env, reset_to_variation, sawyer_env
from rrm_data.sim.rendering import FrameRenderer, FrameSpec

env = make_env("button-press-v3", 0)
reset_to_variation(env, 0, seed=0)
renderer = FrameRenderer(sawyer_env(env).model, FrameSpec(("corner",), 32))
frames = np.stack([renderer.render(get_physics_state(env))["corner"] for _ in range(2)])

from rrm_data.rl.sac import SacSettings, make_sac, make_vec_env  # library use, no CLI set-up
from rrm_data.reward.base import TrueReward

venv = make_vec_env("reach-v3", TrueReward(), 1, 0, episode_steps=20)
sac = make_sac(venv, SacSettings(batch_size=8, net_arch=[16], learning_starts=10), 0, 12)
sac.learn(total_timesteps=12)  # two SAC updates: Adam steps, where torch loads Triton
assert sac.num_timesteps == 12

from rrm_data.vision.encoders import load_encoder

features = load_encoder()(frames)  # a frozen CNN on the rendered frames
assert features.shape == (2, 1280) and np.isfinite(features).all()

from rrm_data.cli import main

assert main(["train-reward", "data=DATA", "out=RUN", *TINY]) == 0
print("ok")
"""


@pytest.mark.slow
def test_metaworld_first_then_training_scoring_frames_and_sac(small_dataset: Path,
                                                               tmp_path: Path) -> None:
    script = (SCRIPT.replace("DATA", str(small_dataset)).replace("RUN", str(tmp_path / "run"))
              .replace("*TINY", ", ".join(repr(a) for a in TINY_TRAIN)))
    env = {**os.environ, "MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "ok"
