"""The training loop every offline algorithm shares: seeded batches, evaluation on the same
fixed Meta-World episodes as ``train-sac``, and a checkpoint that a restarted run resumes.

A resumed run ends with the same weights as an uninterrupted one: the checkpoint holds every
network (targets included), the optimizer, the batch generator's state and torch's global
generator's (TD3+BC's target noise draws from it; evaluation acts deterministically).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from rrm_data.io import replaced_directory
from rrm_data.progress import progress
from rrm_data.rl.offline.networks import GaussianActor
from rrm_data.rl.offline.policy import OfflinePolicy
from rrm_data.rl.sac import EVAL_SEED_OFFSET, evaluate
from rrm_data.rl.workdir import CHECKPOINT
from rrm_data.rl.wrapper import task_env


class Learner(Protocol):
    """An offline algorithm: its actor, optimizer, networks to checkpoint, the number of
    items (transitions, pairs) it samples batches from, and one gradient step on a batch."""

    actor: GaussianActor
    optimizer: torch.optim.Optimizer

    def modules(self) -> dict[str, nn.Module]: ...

    def size(self) -> int: ...

    def update(self, rows: torch.Tensor) -> dict[str, float]: ...


@dataclass(frozen=True)
class Schedule:
    task: str
    steps: int
    batch_size: int
    seed: int
    eval_every: int
    eval_episodes: int
    episode_steps: int | None
    checkpoint_every: int


@dataclass
class Progress:
    """What a checkpoint restores besides the networks and the optimizer."""

    step: int = 0
    rows: list[dict[str, float]] = field(default_factory=list)
    losses: dict[str, float] | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    resumed_from: list[int] = field(default_factory=list)


def save_checkpoint(workdir: Path, learner: Learner, generator: torch.Generator,
                    state: Progress) -> None:
    with replaced_directory(workdir / CHECKPOINT) as tmp:
        torch.save({"modules": {k: m.state_dict() for k, m in learner.modules().items()},
                    "optimizer": learner.optimizer.state_dict(),
                    "generator": generator.get_state(), "global_rng": torch.get_rng_state(),
                    "progress": vars(state)},
                   tmp / "state.pt")


def load_checkpoint(workdir: Path, learner: Learner, generator: torch.Generator) -> Progress:
    """The saved state put back into ``learner`` and ``generator``; a fresh one when none."""
    file = workdir / CHECKPOINT / "state.pt"
    if not file.is_file():
        return Progress()
    saved: dict[str, Any] = torch.load(file, map_location="cpu", weights_only=False)
    for name, module in learner.modules().items():
        module.load_state_dict(saved["modules"][name])
    learner.optimizer.load_state_dict(saved["optimizer"])
    generator.set_state(saved["generator"])
    torch.set_rng_state(saved["global_rng"])
    state = Progress(**saved["progress"])
    state.resumed_from.append(state.step)
    return state


def train(learner: Learner, s: Schedule, workdir: Path, name: str) -> Progress:
    """Run the gradient steps left in ``s`` (from the checkpoint in ``workdir`` if any)."""
    generator = torch.Generator().manual_seed(s.seed)
    state = load_checkpoint(workdir, learner, generator)
    env = task_env(s.task, s.seed + EVAL_SEED_OFFSET, s.episode_steps)
    device = next(learner.actor.parameters()).device
    policy = OfflinePolicy(learner.actor)

    def evaluation() -> None:
        started = time.perf_counter()
        state.rows.append({"timesteps": state.step, **evaluate(
            policy, env, s.eval_episodes, s.seed + EVAL_SEED_OFFSET)})
        state.eval_seconds += time.perf_counter() - started

    try:
        with progress(name, total=s.steps, unit="steps", done=state.step) as bar:
            started = time.perf_counter()
            while state.step < s.steps:
                rows = torch.randint(learner.size(), (s.batch_size,), generator=generator)
                state.losses = learner.update(rows.to(device))
                state.step += 1
                bar.advance()
                if s.eval_every and state.step % s.eval_every == 0 and state.step < s.steps:
                    state.train_seconds += time.perf_counter() - started
                    evaluation()
                    started = time.perf_counter()
                if s.checkpoint_every and state.step % s.checkpoint_every == 0:
                    state.train_seconds += time.perf_counter() - started
                    save_checkpoint(workdir, learner, generator, state)
                    started = time.perf_counter()
            state.train_seconds += time.perf_counter() - started
        if not state.rows or state.rows[-1]["timesteps"] != state.step:
            evaluation()
    finally:
        env.close()
    return state
