"""Env steps/s of `train-online` ÷ `train-sac` on a fixed learned reward of the same size.

`train-online` (recipe `rrm`: residual reward, PEBBLE's 3 x 256 ensemble of 3) runs with
its querying, labelling, reward training and relabelling; `train-sac` then runs the same
SAC on the reward that run produced (a fixed artifact of the same size), so the only
difference is the online work. Both report steady-state steps/s (after
`learning_starts`, evaluation left out). Rounds come every `--round-every` steps (B-Pref:
5,000; default here 1,000, five times harsher, to keep the run short). Target >= 0.8.

    python benchmarks/online.py [--rounds 2] [--round-every 1000] [--sac cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
from common import save_result

from rrm_data.cli import main
from rrm_data.recipes import load_recipe
from rrm_data.reward.spec import reward_spec
from rrm_data.rl.online.learner import OnlineRewardLearner

TASK = "reach-v3"


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def epoch_seconds(labels: int, segment_length: int = 50) -> float:
    """Seconds of one reward epoch over ``labels`` pairs (the rrm recipe's ensemble)."""
    spec = reward_spec(load_recipe("rrm", "online").model, {"observation.state": 39,
                                                           "action": 4}, None)
    learner = OnlineRewardLearner(spec, lr=3e-4, batch_size=128, max_epochs=1,
                                  target_agreement=2.0, seed=0)
    inputs = {"observation.state": torch.randn(labels, 2, segment_length, 39),
              "action": torch.rand(labels, 2, segment_length, 4) * 2 - 1}
    label = torch.randint(0, 2, (labels,)).float()
    started = time.perf_counter()
    learner.fit(inputs, label)
    return time.perf_counter() - started


def projection(sac_steps_per_s: float, per_label_epoch: float, epochs: float,
               budget: int = 2000, per_round: int = 50, every: int = 5000,
               steps: int = 1_000_000) -> float:
    """Predicted steps/s ratio of a whole B-Pref run (rounds of ``per_round`` labels every
    ``every`` steps until ``budget``), if every round trains ``epochs`` epochs and an
    epoch costs ``per_label_epoch`` seconds per label so far."""
    sac_seconds = steps / sac_steps_per_s
    labels = [per_round * r for r in range(1, budget // per_round + 1)]
    round_seconds = sum(epochs * per_label_epoch * n for n in labels)
    return round(sac_seconds / (sac_seconds + round_seconds), 3)


def main_benchmark(rounds: int, round_every: int, labels_per_round: int, sac: str,
                   learning_starts: int) -> dict:
    torch.set_num_threads(1)
    steps = learning_starts + rounds * round_every
    common = [f"task={TASK}", f"steps={steps}", "seed=0", "threads=1", "eval_every=0",
              "eval_episodes=1", f"sac={sac}", f"sac.learning_starts={learning_starts}",
              "sac.device=cpu"]
    with tempfile.TemporaryDirectory() as tmp:
        online, fixed = Path(tmp) / "online", Path(tmp) / "sac"
        assert main(["train-online", "recipe=rrm", *common, f"round_every={round_every}",
                     f"labels_per_round={labels_per_round}",
                     f"feedback={rounds * labels_per_round}", f"out={online}"]) == 0
        assert main(["train-sac", f"reward={online / 'reward'}", *common,
                     "checkpoint_every=0", f"out={fixed}"]) == 0
        on, off = summary(online), summary(fixed)
        rounds_csv = (online / "rounds.csv").read_text().splitlines()
    ratio = round(on["steady_steps_per_s"] / off["steady_steps_per_s"], 3)
    per_label_epoch = epoch_seconds(2000) / 2000
    used_epochs = [int(row.split(",")[4]) for row in rounds_csv[1:]]
    # Load from other processes moves both speeds; the share of the online run's steady
    # time spent in rounds (querying, labelling, reward training, relabelling) does not.
    round_seconds = sum(float(row.split(",")[-1]) for row in rounds_csv[1:])
    steady_seconds = (steps - learning_starts) / on["steady_steps_per_s"]
    return {
        "task": TASK, "sac": sac, "steps": steps, "learning_starts": learning_starts,
        "round_every": round_every, "labels_per_round": labels_per_round, "rounds": rounds,
        "torch_threads": 1, "device": "cpu",
        "machine": platform.processor() or platform.machine(),
        "train_online_steps_per_s": on["steady_steps_per_s"],
        "train_sac_steps_per_s": off["steady_steps_per_s"],
        "ratio": ratio, "target_ratio": 0.8, "meets_target": ratio >= 0.8,
        "round_seconds": round(round_seconds, 2),
        "round_share_of_steady_time": round(round_seconds / steady_seconds, 3),
        "ratio_from_round_share": round(1 - round_seconds / steady_seconds, 3),
        "round_log": rounds_csv,
        # Reward training grows with the labels so far; what a whole run would cost:
        "reward_epoch_seconds_per_label": round(per_label_epoch, 5),
        "projected_ratio_bpref_run": {
            "schedule": "2,000 labels, 50 every 5,000 steps, 1M steps (PEBBLE/RRM paper)",
            "every_round_at_epoch_cap_10": projection(off["steady_steps_per_s"],
                                                      per_label_epoch, 10),
            "epochs_as_in_this_run": projection(off["steady_steps_per_s"], per_label_epoch,
                                                sum(used_epochs) / len(used_epochs)),
            "epochs_2": projection(off["steady_steps_per_s"], per_label_epoch, 2)},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--round-every", type=int, default=1000)
    parser.add_argument("--labels-per-round", type=int, default=50)
    parser.add_argument("--sac", default="cpu", help="option of recipes/sac/")
    parser.add_argument("--learning-starts", type=int, default=1000)
    args = parser.parse_args()
    save_result("online", main_benchmark(args.rounds, args.round_every, args.labels_per_round,
                                         args.sac, args.learning_starts))
