"""Steady env steps/s of `train-sac` (sbx) ÷ sbx's own bare `learn`, and ÷ SB3's SAC.

All in this process, pinned to one core (``sched_setaffinity``; torch and XLA single
threaded), on the true reward, a recipe's settings (default `sac_cpu` on drawer-close-v3),
after `learning_starts` random steps:

- `train-sac`: through the CLI as a user runs it (reward wrapper scoring in batches,
  callbacks, progress bar, CSV logs, final evaluation);
- `sbx`: the engine's own ``learn`` on the bare task environment, no callbacks, the
  model that ``make_sac`` builds;
- `sb3`: Stable-Baselines3's PyTorch SAC, the engine before, with the arguments today's
  main gave it (``target_update_interval``, ``device=cpu``), bare ``learn``: at least as
  fast as `train-sac` on SB3 was, so the ratio against it is a lower bound.

Steps/s are in CPU time of this process, from the difference of a long and a short run, so
start-up, warm-up, JIT compilation and the final evaluation cancel out; the machine is
shared, so wall-time figures of the same differences are reported beside them, with the
load average. Runs alternate. Targets: train-sac / sbx >= 0.9 and train-sac / sb3 >= 1.6.

    python benchmarks/sac.py [--recipe sac_cpu] [--steps 1200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from common import Clock, alternate, clock, ratio, save_result, since
from stable_baselines3.common.vec_env import DummyVecEnv

from rrm_data.benchmark.runner import ONE_CORE
from rrm_data.cli import main
from rrm_data.config import config_dict
from rrm_data.recipes import load_recipe
from rrm_data.rl.sac import SacSettings, entropy_coefficient, make_sac, sac_device
from rrm_data.rl.wrapper import task_env

SINGLE_THREAD_XLA = ONE_CORE["XLA_FLAGS"]  # as the grid runs each run


def train_sac(task: str, recipe: str, steps: int, learning_starts: int, out: Path) -> Clock:
    """One `train-sac` run of ``learning_starts + steps`` env steps: its (CPU, wall) time."""
    start = clock()
    assert main(["train-sac", f"recipe={recipe}", f"task={task}", "reward=true",
                 f"steps={learning_starts + steps}", "seed=0", "threads=1",
                 f"sac.learning_starts={learning_starts}", "eval_every=0", "eval_episodes=1",
                 "checkpoint_every=0", f"out={out}", "overwrite=true"]) == 0
    return since(start)


def bare_sbx(task: str, settings: SacSettings, steps: int) -> Clock:
    """sbx's own ``learn`` on the task env (no wrapper, no callbacks): (CPU, wall) time."""
    start = clock()
    env = DummyVecEnv([lambda: task_env(task, 0)])
    make_sac(env, settings, 0, settings.learning_starts + steps).learn(
        settings.learning_starts + steps)
    return since(start)


def bare_sb3(task: str, settings: SacSettings, steps: int) -> Clock:
    """SB3's SAC as today's main built it, bare ``learn``: (CPU, wall) time."""
    from stable_baselines3 import SAC

    start = clock()
    env = DummyVecEnv([lambda: task_env(task, 0)])
    total = settings.learning_starts + steps
    SAC("MlpPolicy", env, learning_rate=settings.learning_rate,
        buffer_size=max(1, min(settings.buffer_size, total)),
        learning_starts=settings.learning_starts, batch_size=settings.batch_size,
        tau=settings.tau, gamma=settings.gamma, train_freq=settings.train_freq,
        gradient_steps=settings.gradient_steps, ent_coef=entropy_coefficient(settings.ent_coef),
        target_update_interval=settings.target_update_interval,
        policy_kwargs={"net_arch": list(settings.net_arch)}, seed=0, device="cpu").learn(total)
    return since(start)


def main_benchmark(recipe: str, task: str, steps: int, learning_starts: int, repeats: int,
                   core: int) -> dict:
    os.sched_setaffinity(0, {core})
    os.environ["XLA_FLAGS"] = SINGLE_THREAD_XLA  # before JAX starts (make_sac imports it)
    torch.set_num_threads(1)
    settings = SacSettings(**{**config_dict(load_recipe(recipe, "sac").sac),
                              "learning_starts": learning_starts, "device": "cpu"})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        train_sac(task, recipe, 10, learning_starts, out)  # imports and first-call costs, once
        runs: dict[str, Callable[[int], Clock]] = {
            "train_sac": lambda n: train_sac(task, recipe, n, learning_starts, out),
            "sbx": lambda n: bare_sbx(task, settings, n),
            "sb3": lambda n: bare_sb3(task, settings, n)}
        cpu, wall, load = alternate(runs, steps, repeats)
        summary = json.loads((out / "summary.json").read_text())  # the last (short) run's

    vs_sbx, vs_sb3 = ratio(cpu, "train_sac", "sbx"), ratio(cpu, "train_sac", "sb3")
    return {
        "task": task, "recipe": recipe, "steps_timed": steps - steps // 4,
        "learning_starts": learning_starts, "repeats": repeats, "core": core,
        "threads": 1, "xla_flags": SINGLE_THREAD_XLA, "sac_device": sac_device(),
        "machine": platform.processor() or platform.machine(),
        "load_average_1min": [round(x, 2) for x in load],
        "settings": {k: v for k, v in asdict(settings).items() if k != "device"},
        "ratio_train_sac_over_sbx": vs_sbx, "target_over_sbx": 0.9,
        "ratio_train_sac_over_sb3": vs_sb3, "target_over_sb3": 1.6,
        "meets_targets": vs_sbx >= 0.9 and vs_sb3 >= 1.6,
        "ratios_are": "median CPU-time steady steps/s of train-sac / of the other",
        "ratio_sbx_over_sb3": ratio(cpu, "sbx", "sb3"),
        "wall_ratio_train_sac_over_sbx": ratio(wall, "train_sac", "sbx"),
        "wall_ratio_train_sac_over_sb3": ratio(wall, "train_sac", "sb3"),
        "cpu_steps_per_s": cpu, "wall_steps_per_s": wall,
        "train_sac_summary_steady_steps_per_s": summary["steady_steps_per_s"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="sac_cpu")
    parser.add_argument("--task", default="drawer-close-v3")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)))
    args = parser.parse_args()
    result = main_benchmark(args.recipe, args.task, args.steps, args.learning_starts,
                            args.repeats, args.core)
    save_result(f"sac_{args.recipe}", result)
