"""Speed of `rrm-data collect camera=...` (fast scene) against a bare `env.render()` loop.

``collect_fast_vs_bare_render``: frames/s of the whole collect command with one camera at
the fast setting (rollouts, rendering every state, PNG encoding, labels, Parquet; one
worker) over frames/s of a bare loop that steps the same scripted expert and calls
gymnasium's ``env.render()`` at MuJoCo's default scene settings (shadows, 4× multisampling)
for the same number of steps. Also: the cost of frames inside collect (collect with a
camera vs. state-only collect). Rates use this process's CPU time (OSMesa's render threads
included), which other jobs on a shared machine disturb less than wall-clock time; each
figure is the best of ``REPEATS`` alternated runs.

    .venv/bin/python benchmarks/render.py [episodes] [episode_steps] [image_size]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
from common import save_result, timed

from rrm_data.cli import main
from rrm_data.sim.envs import RenderSpec, make_env, num_variations, reset_to_variation
from rrm_data.sim.policies import make_policy, parse_policy
from rrm_data.sim.rollout import plan_episodes

TASK = "button-press-v3"
CAMERA = "corner"
REPEATS = 2


def bare_render_loop(env: gym.Env, episodes: int, episode_steps: int) -> int:
    """Step the expert through collect's episodes and render every pre-step state."""
    spec = parse_policy("expert:0")
    expert = make_policy(TASK, spec)
    frames = 0
    for plan in plan_episodes([TASK], [spec], episodes, seed=0):
        rng = np.random.default_rng(plan.seed)
        variation = int(rng.integers(num_variations(env)))
        obs, _ = reset_to_variation(env, variation, seed=plan.seed)
        # gymnasium's viewer renders into whichever GL context is current; collect's renderer
        # leaves its own current, so make the viewer's current, as in a process of its own.
        env.unwrapped.mujoco_renderer._get_viewer("rgb_array").make_context_current()
        for _ in range(episode_steps):
            env.render()
            frames += 1
            obs, _, terminated, truncated, _ = env.step(expert.act(obs, rng).astype(np.float32))
            if terminated or truncated:
                break
    return frames


def collect(episodes: int, episode_steps: int, size: int, camera: bool, root: Path) -> int:
    out = Path(tempfile.mkdtemp(dir=root)) / "data"
    args = [f"task={TASK}", "policy=[expert:0]", f"episodes={episodes}",
            f"episode_steps={episode_steps}", "segment_length=20", "pairs=50", f"out={out}"]
    if camera:
        args += [f"camera={CAMERA}", f"image_size={size}", "render_quality=fast"]
    assert main(["collect", *args]) == 0
    return json.loads((out / "meta" / "info.json").read_text())["counts"]["steps"]


def best_rate(runs: list[tuple[float, float, int]], index: int) -> float:
    return max(r[2] / r[index] for r in runs)


def measure(episodes: int, episode_steps: int, size: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        collect(4, 20, size, True, root)  # warm up imports, GL context and collect's env cache
        env = make_env(TASK, 0, render=RenderSpec(CAMERA, size))
        bare, fast, state = [], [], []
        for _ in range(REPEATS):
            bare.append(timed(bare_render_loop, env, episodes, episode_steps))
            fast.append(timed(collect, episodes, episode_steps, size, True, root))
            state.append(timed(collect, episodes, episode_steps, size, False, root))
    counts = {runs[0][2] for runs in (bare, fast, state)}
    assert len(counts) == 1, counts
    result = {
        "task": TASK, "camera": CAMERA, "image_size": size, "episodes": episodes,
        "episode_steps": episode_steps, "frames": counts.pop(), "repeats": REPEATS,
        "bare_render_default_frames_per_s_cpu": best_rate(bare, 0),
        "collect_fast_frames_per_s_cpu": best_rate(fast, 0),
        "collect_state_only_steps_per_s_cpu": best_rate(state, 0),
        "bare_render_default_frames_per_s_wall": best_rate(bare, 1),
        "collect_fast_frames_per_s_wall": best_rate(fast, 1),
    }
    result["collect_fast_vs_bare_render"] = (result["collect_fast_frames_per_s_cpu"]
                                             / result["bare_render_default_frames_per_s_cpu"])
    result["collect_fast_vs_bare_render_wall"] = (result["collect_fast_frames_per_s_wall"]
                                                  / result["bare_render_default_frames_per_s_wall"])
    result["frames_cost_in_collect"] = (result["collect_state_only_steps_per_s_cpu"]
                                        / result["collect_fast_frames_per_s_cpu"])
    return result


if __name__ == "__main__":
    episodes, episode_steps, size = (int(a) for a in (sys.argv[1:] + ["4", "50", "84"][len(
        sys.argv[1:]):]))
    result = measure(episodes, episode_steps, size)
    save_result("render", result)
