"""Steady-state env steps/s of `train-sac` ÷ a bare loop of the same SAC in plain PyTorch.

Both run in this process on one thread, on the true reward, after `learning_starts`
random steps: `train-sac` (Stable-Baselines3, through the CLI, as a user runs it; its
summary's `steady_steps_per_s` leaves out the warm-up and evaluation) and
`bare_sac.bare_loop_steps_per_s` (env.step + one update of the same networks and losses
per step, nothing else). Runs alternate. The machine is shared, so wall time swings with
other processes' load (2x between runs here); the headline ratio is therefore in CPU time
of this process (train-sac's steady CPU cost per step is the difference of a long and a
short run, which cancels start-up, warm-up and evaluation), with the wall-time figures
reported next to it. The gap is then
split: one SB3 gradient step (`SAC.train(1, batch)`) against one bare update, timed on
the same replay data. Target ratio >= 0.9.

    python benchmarks/sac.py [--recipe sac_cpu] [--steps 600] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bare_sac import BareSac, bare_loop_steps_per_s
from common import save_result

from rrm_data.cli import main
from rrm_data.config import config_dict
from rrm_data.recipes import load_recipe
from rrm_data.reward.base import TrueReward
from rrm_data.rl.sac import SacSettings, make_sac, make_vec_env

TASK = "reach-v3"


def train_sac(recipe: str, steps: int, learning_starts: int, out: Path) -> tuple[float, float]:
    """One train-sac run: (its steady wall steps/s, this process's CPU seconds for it)."""
    cpu = time.process_time()
    assert main(["train-sac", f"recipe={recipe}", f"task={TASK}", "reward=true",
                 f"steps={learning_starts + steps}", "seed=0", "threads=1", "sac.device=cpu",
                 f"sac.learning_starts={learning_starts}", "eval_every=0", "eval_episodes=1",
                 "checkpoint_every=0", f"out={out}", "overwrite=true"]) == 0
    cpu = time.process_time() - cpu
    return json.loads((out / "summary.json").read_text())["steady_steps_per_s"], cpu


def update_costs(settings: SacSettings, fills: int, updates: int) -> dict[str, float]:
    """CPU milliseconds of one SB3 gradient step and of one bare update, same data."""
    env = make_vec_env(TASK, TrueReward(), 1, 0)
    model = make_sac(env, settings, 0, fills)
    bare = BareSac(39, 4, settings, fills)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(fills, 39)).astype(np.float32)
    act = rng.uniform(-1, 1, (fills, 4)).astype(np.float32)
    for i in range(fills):
        model.replay_buffer.add(obs[i:i + 1], obs[i:i + 1], act[i:i + 1], np.ones(1),
                                np.zeros(1), [{}])
        bare.add(obs[i], act[i], 1.0, obs[i], False)
    model._setup_learn(fills, None)  # a logger for train()
    times: dict[str, list[float]] = {"sb3_update_ms": [], "bare_update_ms": []}
    for _ in range(3):
        t = time.process_time()
        model.train(gradient_steps=updates, batch_size=settings.batch_size)
        times["sb3_update_ms"].append((time.process_time() - t) / updates * 1e3)
        t = time.process_time()
        for _ in range(updates):
            bare.update()
        times["bare_update_ms"].append((time.process_time() - t) / updates * 1e3)
    env.close()
    return {k: round(min(v), 3) for k, v in times.items()}


def main_benchmark(recipe: str, steps: int, learning_starts: int, repeats: int) -> dict:
    torch.set_num_threads(1)
    settings = SacSettings(**{**config_dict(load_recipe(recipe, "sac").sac),
                              "learning_starts": learning_starts, "device": "cpu"})
    wall: dict[str, list[float]] = {"train_sac": [], "bare": []}
    cpu: dict[str, list[float]] = {"train_sac": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        train_sac(recipe, 10, learning_starts, out)  # imports and first-call costs, once
        for _ in range(repeats):
            # CPU steps/s of train-sac: the difference of a long and a short run, so start-up,
            # warm-up and the final evaluation (the same in both) cancel out.
            rate, long_cpu = train_sac(recipe, steps, learning_starts, out)
            _, short_cpu = train_sac(recipe, steps // 4, learning_starts, out)
            wall["train_sac"].append(rate)
            cpu["train_sac"].append(round((steps - steps // 4) / (long_cpu - short_cpu), 2))
            bare_wall, bare_cpu = bare_loop_steps_per_s(TASK, settings, steps)
            wall["bare"].append(round(bare_wall, 2))
            cpu["bare"].append(round(bare_cpu, 2))
    costs = update_costs(settings, fills=2000, updates=100)
    ratio_cpu = round(float(np.median(cpu["train_sac"]) / np.median(cpu["bare"])), 3)
    paired = [round(a / b, 3) for a, b in zip(wall["train_sac"], wall["bare"], strict=True)]
    return {
        "task": TASK, "recipe": recipe, "steps_timed": steps, "learning_starts": learning_starts,
        "repeats": repeats, "torch_threads": 1, "device": "cpu",
        "machine": platform.processor() or platform.machine(),
        "settings": {"batch_size": settings.batch_size, "net_arch": list(settings.net_arch)},
        "ratio": ratio_cpu, "target_ratio": 0.9, "meets_target": ratio_cpu >= 0.9,
        "ratio_is": "median CPU-time steps/s of train-sac / of the bare loop",
        "cpu_steps_per_s": cpu,
        "wall_steps_per_s": wall,
        "wall_ratio_best": round(max(wall["train_sac"]) / max(wall["bare"]), 3),
        "wall_paired_ratios": paired,
        **costs,
        "update_cost_ratio": round(costs["bare_update_ms"] / costs["sb3_update_ms"], 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="sac_cpu")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--learning-starts", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    result = main_benchmark(args.recipe, args.steps, args.learning_starts, args.repeats)
    save_result(f"sac_{args.recipe}", result)
