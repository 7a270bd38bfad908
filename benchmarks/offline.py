"""Gradient steps/s of `train-offline algo=iql` ÷ TorchRL's own bare IQL loop, same
transitions, same process.

All in this process, pinned to one core (``sched_setaffinity``; torch single threaded), on
one collected dataset's transitions rewarded by the true reward (min-max scaled), the
default networks (2 x 256) and batch (256):

- `train-offline`: through the CLI as a user runs it (dataset read, transitions and their
  last s′ simulated, reward scaled, batches from a seeded generator, progress bar, final
  evaluation, policy and summary written);
- `torchrl`: TorchRL's offline IQL loop as its example (``sota-implementations/iql``)
  writes it: the transitions in a ``ReplayBuffer`` on ``LazyTensorStorage``, ``sample()``,
  ``IQLLoss`` on the same networks, one Adam each for actor, Q pair and V, ``SoftUpdate``.

Steps/s are in CPU time of this process, from the difference of a long and a short run, so
reading the dataset, start-up and the final evaluation cancel out; wall-time figures of
the same differences are reported beside them, with the load average (the machine is
shared). Runs alternate. Target: train-offline / torchrl >= 0.9.

    python benchmarks/offline.py [--steps 600] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from common import Clock, alternate, clock, ratio, save_result, since

from rrm_data.cli import main
from rrm_data.dataset.observation import ACTION_DIM, STATE_DIM
from rrm_data.dataset.reader import open_dataset
from rrm_data.rl.offline.data import TransitionTensors, normalize_rewards
from rrm_data.rl.offline.iql import IQLSettings, iql_loss
from rrm_data.rl.offline.networks import GaussianActor
from rrm_data.sim.transitions import dataset_transitions

HIDDEN, BATCH, LR, GAMMA = [256, 256], 256, 3e-4, 0.99


def train_offline(data: Path, steps: int, out: Path) -> Clock:
    start = clock()
    assert main(["train-offline", f"data={data}", f"steps={steps}", "eval_every=0",
                 "eval_episodes=1", "episode_steps=20", "checkpoint_every=0", "threads=1",
                 "device=cpu", f"out={out}", "overwrite=true"]) == 0
    return since(start)


def torchrl_loop(data: TransitionTensors, steps: int) -> Clock:
    """TorchRL's bare offline IQL loop on the same transitions and networks."""
    from tensordict import TensorDict
    from torchrl.data import LazyTensorStorage, ReplayBuffer
    from torchrl.objectives import SoftUpdate

    start = clock()
    torch.manual_seed(0)
    settings = IQLSettings()
    loss = iql_loss(GaussianActor(STATE_DIM, ACTION_DIM, HIDDEN), STATE_DIM, ACTION_DIM,
                    HIDDEN, settings, GAMMA)
    updater = SoftUpdate(loss, tau=settings.tau)
    buffer = ReplayBuffer(storage=LazyTensorStorage(len(data)), batch_size=BATCH)
    buffer.extend(TensorDict({"observation": data.observation, "action": data.action,
                              "next": {"observation": data.next_observation,
                                       "reward": data.reward, "done": data.done,
                                       "terminated": data.done}}, batch_size=[len(data)]))
    actor = torch.optim.Adam(loss.actor_network_params.flatten_keys().values(), lr=LR)
    critic = torch.optim.Adam(loss.qvalue_network_params.flatten_keys().values(), lr=LR)
    value = torch.optim.Adam(loss.value_network_params.flatten_keys().values(), lr=LR)
    for _ in range(steps):
        losses = loss(buffer.sample())
        total = losses["loss_actor"] + losses["loss_qvalue"] + losses["loss_value"]
        for optimizer in (actor, critic, value):
            optimizer.zero_grad()
        total.backward()
        for optimizer in (actor, critic, value):
            optimizer.step()
        updater.step()
    return since(start)


def main_benchmark(task: str, episodes: int, steps: int, repeats: int, core: int) -> dict:
    os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data", Path(tmp) / "run"
        assert main(["collect", f"task={task}", f"episodes={episodes}", "episode_steps=100",
                     "pairs=20",
                     f"out={data}"]) == 0
        transitions = dataset_transitions(open_dataset(data))
        tensors = TransitionTensors.of(transitions, normalize_rewards(transitions.rewards)[0],
                                       "cpu")
        train_offline(data, 10, out)  # imports and first-call costs, once
        runs: dict[str, Callable[[int], Clock]] = {
            "train_offline": lambda n: train_offline(data, n, out),
            "torchrl": lambda n: torchrl_loop(tensors, n)}
        cpu, wall, load = alternate(runs, steps, repeats)
    vs_torchrl = ratio(cpu, "train_offline", "torchrl")

    import torchrl

    return {
        "task": task, "transitions": len(tensors), "steps_timed": steps - steps // 4,
        "repeats": repeats, "core": core, "threads": 1, "hidden": HIDDEN, "batch_size": BATCH,
        "torch": torch.__version__, "torchrl": torchrl.__version__,
        "machine": platform.processor() or platform.machine(),
        "load_average_1min": [round(x, 2) for x in load],
        "ratio_train_offline_over_torchrl": vs_torchrl, "target": 0.9,
        "meets_target": vs_torchrl >= 0.9,
        "ratio_is": "median CPU-time gradient steps/s of train-offline / of TorchRL's loop",
        "wall_ratio_train_offline_over_torchrl": ratio(wall, "train_offline", "torchrl"),
        "cpu_steps_per_s": cpu, "wall_steps_per_s": wall,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="button-press-v3")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)))
    args = parser.parse_args()
    save_result("offline_iql", main_benchmark(args.task, args.episodes, args.steps,
                                              args.repeats, args.core))
