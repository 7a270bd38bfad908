"""Steady-state env steps/s of `train-sac` ÷ a bare loop of the same SAC in plain PyTorch.

Both run in this process on one thread, on the true reward, after `learning_starts`
random steps: `train-sac` (Stable-Baselines3, through the CLI, as a user runs it; its
summary's `steady_steps_per_s` leaves out the warm-up and evaluation) and
`bare_sac.bare_loop_steps_per_s` (env.step + one update of the same networks and losses
per step, nothing else). Runs alternate (train-sac, bare, train-sac, bare, ...); the
ratio of the best of each is the headline (load from other processes only slows runs
down), the median of the paired ratios is reported next to it. The gap is then
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
from omegaconf import OmegaConf

from rrm_data.cli import main
from rrm_data.recipes import load_recipe
from rrm_data.reward.base import TrueReward
from rrm_data.rl.sac import SacSettings, make_sac, make_vec_env

TASK = "reach-v3"


def train_sac_steps_per_s(recipe: str, steps: int, learning_starts: int, out: Path) -> float:
    assert main(["train-sac", f"recipe={recipe}", f"task={TASK}", "reward=true",
                 f"steps={learning_starts + steps}", "seed=0", "threads=1", "sac.device=cpu",
                 f"sac.learning_starts={learning_starts}", "eval_every=0", "eval_episodes=1",
                 "checkpoint_every=0", f"out={out}", "overwrite=true"]) == 0
    return json.loads((out / "summary.json").read_text())["steady_steps_per_s"]


def update_costs(settings: SacSettings, fills: int, updates: int) -> dict[str, float]:
    """Milliseconds of one SB3 gradient step and of one bare update, on full buffers."""
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
        t = time.perf_counter()
        model.train(gradient_steps=updates, batch_size=settings.batch_size)
        times["sb3_update_ms"].append((time.perf_counter() - t) / updates * 1e3)
        t = time.perf_counter()
        for _ in range(updates):
            bare.update()
        times["bare_update_ms"].append((time.perf_counter() - t) / updates * 1e3)
    env.close()
    return {k: round(min(v), 3) for k, v in times.items()}


def main_benchmark(recipe: str, steps: int, learning_starts: int, repeats: int) -> dict:
    torch.set_num_threads(1)
    settings = SacSettings(**{**OmegaConf.to_container(load_recipe(recipe, "sac").sac),
                              "learning_starts": learning_starts, "device": "cpu"})
    rates: dict[str, list[float]] = {"train_sac": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            rates["train_sac"].append(train_sac_steps_per_s(recipe, steps, learning_starts,
                                                            Path(tmp) / "run"))
            rates["bare"].append(round(bare_loop_steps_per_s(TASK, settings, steps), 2))
    best = {k: max(v) for k, v in rates.items()}
    costs = update_costs(settings, fills=2000, updates=100)
    ratio = round(best["train_sac"] / best["bare"], 3)
    paired = [round(a / b, 3) for a, b in zip(rates["train_sac"], rates["bare"], strict=True)]
    return {
        "task": TASK, "recipe": recipe, "steps_timed": steps, "learning_starts": learning_starts,
        "repeats": repeats, "torch_threads": 1, "device": "cpu",
        "machine": platform.processor() or platform.machine(),
        "settings": {"batch_size": settings.batch_size, "net_arch": list(settings.net_arch)},
        "train_sac_steps_per_s": best["train_sac"], "bare_steps_per_s": best["bare"],
        "ratio": ratio, "target_ratio": 0.9, "meets_target": ratio >= 0.9,
        "paired_ratios": paired, "median_paired_ratio": float(np.median(paired)),
        "all_runs": rates, **costs,
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
