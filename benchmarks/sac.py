"""Env steps/s of `train-sac` on a learned reward vs. on the true reward, in one process.

The learned reward (a real `state_residual` artifact, PEBBLE's 3 x 256 ensemble of 3)
scores every env step in the vector wrapper; the ratio says how much that costs next to
SAC itself (target >= 0.8). Two phases: `learning` runs PEBBLE's recipe (batch 512,
one gradient step per env step after the seed steps); `rollout_only` has no gradient
steps at all (learning_starts = steps), the harshest case for the reward model.
Runs alternate (true, learned, true, learned, ...) and the best of each is kept, so
load from other processes on the machine hurts both sides alike.

    python benchmarks/sac.py [--steps 2000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch
from common import save_result

from rrm_data.cli import main

TASK = "reach-v3"


def learned_reward(work: Path) -> Path:
    """Collect a small dataset and train a state_residual reward on it (one epoch)."""
    data, run = work / "data", work / "reward"
    assert main(["collect", f"task={TASK}", "episodes=10", "max_steps=100", "segment_length=25",
                 "segments_per_episode=4", "pairs=200", f"out={data}"]) == 0
    assert main(["train-reward", "recipe=state_residual", f"data={data}",
                 "trainer.max_epochs=1", f"out={run}"]) == 0
    return run


def steps_per_second(reward: str, steps: int, learning_starts: int, out: Path) -> float:
    assert main(["train-sac", f"task={TASK}", f"reward={reward}", f"steps={steps}", "seed=0",
                 f"sac.learning_starts={learning_starts}", "eval_every=0", "eval_episodes=1",
                 "checkpoint_every=0", f"out={out}", "overwrite=true"]) == 0
    return json.loads((out / "summary.json").read_text())["env_steps_per_s"]


def main_benchmark(steps: int, repeats: int) -> dict:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rewards = {"true": "true", "learned": str(learned_reward(work))}
        phases = {"learning": min(1000, steps // 2), "rollout_only": steps}
        result: dict = {"task": TASK, "steps": steps, "repeats": repeats,
                        "recipe": "sac_metaworld (batch 512, 3x256, n_envs 1)",
                        "machine": platform.processor() or platform.machine(),
                        "torch_threads": 1}
        for phase, learning_starts in phases.items():
            rates: dict[str, list[float]] = {name: [] for name in rewards}
            for _ in range(repeats):
                for name, reward in rewards.items():
                    rates[name].append(steps_per_second(reward, steps, learning_starts,
                                                        work / f"sac-{name}"))
            best = {name: max(r) for name, r in rates.items()}
            result[phase] = {"learning_starts": learning_starts,
                             "true_steps_per_s": best["true"],
                             "learned_steps_per_s": best["learned"],
                             "ratio": round(best["learned"] / best["true"], 3),
                             "all_runs": rates}
    result["target_ratio"] = 0.8
    result["meets_target"] = result["learning"]["ratio"] >= 0.8
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    result = main_benchmark(args.steps, args.repeats)
    save_result("sac", result)
