"""Speed of `rrm-data collect` against a bare Meta-World loop, in one process.

``collect_vs_bare``: steps/s of the whole collect command (state only, 1 worker: rollouts,
recording, segments, labels, Parquet) over steps/s of a bare loop of the same scripted
expert and ``env.step`` on the same env for the same number of steps (target >= 0.85).
``workers2_vs_workers1``: wall-clock time of ``workers=2`` over ``workers=1`` (below 1 is
faster). The first ratio is taken on this process's CPU time (threads included), which
other jobs on a shared machine disturb far less than wall-clock time; each figure is the
best of ``REPEATS`` alternated runs. ``collect_vs_bare_median_paired`` is the median of the
ratios of runs taken back to back: a check on the best-of figure when the machine's speed
drifts (this VM's does, by ±10-20%).

    .venv/bin/python benchmarks/collect.py [episodes] [episode_steps]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
from common import save_result, timed
from metaworld.policies import ENV_POLICY_MAP

from rrm_data.cli import main
from rrm_data.sim.envs import make_env, num_variations, reset_to_variation
from rrm_data.sim.policies import parse_policy
from rrm_data.sim.rollout import plan_episodes

TASK = "button-press-v3"
REPEATS = 5


def bare_loop(env: gym.Env, episodes: int, episode_steps: int) -> int:
    """The scripted expert stepping the env in the episodes collect plays, recording nothing."""
    expert = ENV_POLICY_MAP[TASK]()
    steps = 0
    for plan in plan_episodes([TASK], [parse_policy("expert:0")], episodes, seed=0):
        variation = int(np.random.default_rng(plan.seed).integers(num_variations(env)))
        obs, _ = reset_to_variation(env, variation, seed=plan.seed)
        for _ in range(episode_steps):
            obs, _, terminated, truncated, _ = env.step(expert.get_action(obs).astype(np.float32))
            steps += 1
            if terminated or truncated:
                break
    return steps


def collect(episodes: int, episode_steps: int, workers: int, root: Path) -> int:
    """The collect command, run in this process into a fresh folder; returns its steps."""
    out = Path(tempfile.mkdtemp(dir=root)) / "data"
    args = [f"task={TASK}", "policy=[expert:0]", f"episodes={episodes}",
            f"episode_steps={episode_steps}", "segment_length=50", "pairs=200",
            f"workers={workers}", f"out={out}"]
    assert main(["collect", *args]) == 0
    return json.loads((out / "meta" / "info.json").read_text())["counts"]["steps"]


def measure(episodes: int, episode_steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        collect(4, 60, 1, root)  # warm up imports and collect's cached env
        env = make_env(TASK, 0)
        bare, one, two = [], [], []
        for _ in range(REPEATS):
            bare.append(timed(bare_loop, env, episodes, episode_steps))
            one.append(timed(collect, episodes, episode_steps, 1, root))
            two.append(timed(collect, episodes, episode_steps, 2, root))
    counts = {runs[0][2] for runs in (bare, one, two)}
    assert len(counts) == 1, counts
    steps = counts.pop()
    bare_cpu, one_cpu = min(r[0] for r in bare), min(r[0] for r in one)
    bare_s, one_s, two_s = (min(r[1] for r in runs) for runs in (bare, one, two))
    return {
        "task": TASK, "policy": "expert:0", "episodes": episodes, "episode_steps": episode_steps,
        "steps": steps, "repeats": REPEATS, "cpus": os.cpu_count(),
        "bare_steps_per_cpu_s": round(steps / bare_cpu, 1),
        "collect_steps_per_cpu_s": round(steps / one_cpu, 1),
        "collect_vs_bare": round(bare_cpu / one_cpu, 3),
        "collect_vs_bare_median_paired": round(float(np.median(
            [b[0] / c[0] for b, c in zip(bare, one, strict=True)])), 3),
        "target_collect_vs_bare": 0.85,
        "collect_vs_bare_wall": round(bare_s / one_s, 3),
        "bare_wall_s": round(bare_s, 3), "workers1_wall_s": round(one_s, 3),
        "workers2_wall_s": round(two_s, 3),
        "workers2_vs_workers1": round(two_s / one_s, 3),
    }

if __name__ == "__main__":
    episodes = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    episode_steps = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    result = measure(episodes, episode_steps)
    save_result("collect", result)
