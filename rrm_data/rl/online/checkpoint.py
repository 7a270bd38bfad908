"""The run state a restarted train-online continues from, in one folder replaced whole:
the policy and its replay buffer, the reward and its optimizer, the labels, the random
generators and the logs written so far. train-sac's checkpoint is the same folder without
the reward (``rl.sac.save_sac_run``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from stable_baselines3.common.vec_env import VecEnv

from rrm_data.reward.spec import RewardSpec
from rrm_data.rl.online.feedback import LabelLog
from rrm_data.rl.online.learner import OnlineRewardLearner
from rrm_data.rl.sac import load_sac_run, save_sac_run

if TYPE_CHECKING:
    from sbx import SAC



@dataclass
class LoopState:
    """What a checkpoint restores besides the networks and the buffer."""

    next_tick: int
    rounds: list[dict[str, Any]] = field(default_factory=list)
    labels: LabelLog = field(default_factory=LabelLog)
    next_episode: int = 0
    rng: dict[str, Any] = field(default_factory=dict)
    teacher_rng: dict[str, Any] = field(default_factory=dict)
    resumed_from: list[int] = field(default_factory=list)
    reward_scale: dict[str, Any] = field(default_factory=dict)  # rl.sac.reward_scale_state


def save_checkpoint(workdir: Path, *, model: SAC, learner: OnlineRewardLearner,
                    state: LoopState) -> None:
    """Replace the checkpoint in ``workdir`` by this state, in one step."""
    saved = asdict(state)
    saved["labels"] = state.labels.to_dict()

    def reward(tmp: Path) -> None:
        torch.save({"model": learner.model.state_dict(), "spec": learner.reward.spec.to_json(),
                    **learner.state()}, tmp / "reward.pt")

    save_sac_run(workdir, model, saved, reward)


def load_checkpoint(checkpoint: Path, *, learner: OnlineRewardLearner, env: VecEnv,
                    device: str) -> tuple[LoopState, SAC]:
    """The loop state and SAC (with its buffer) of ``checkpoint``; ``learner`` gets its
    weights and optimizer back, and the logs in the run folder are those of the checkpoint."""
    saved, model = load_sac_run(checkpoint, env)
    labels = LabelLog.from_dict(saved.pop("labels"))
    timesteps = saved.pop("timesteps")
    state = LoopState(**{**saved, "labels": labels})
    state.resumed_from.append(int(timesteps))
    reward = torch.load(checkpoint / "reward.pt", map_location=device, weights_only=False)
    learner.model.load_state_dict(reward["model"])
    learner.reward.spec = RewardSpec.from_json(reward["spec"])
    learner.load_state(reward)
    return state, model
