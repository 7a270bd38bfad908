"""The run state a restarted train-online continues from, in one folder replaced whole:
the policy and its replay buffer, the reward and its optimizer, the labels, the random
generators and the logs written so far."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from stable_baselines3.common.vec_env import VecEnv

from rrm_data.io import clean_leftovers, remove_owned, replaced_directory, write_json
from rrm_data.reward.spec import RewardSpec
from rrm_data.rl.online.feedback import LabelLog
from rrm_data.rl.online.learner import OnlineRewardLearner
from rrm_data.rl.sac import load_sac

if TYPE_CHECKING:
    from sbx import SAC

CHECKPOINT = "checkpoint"
LOGS = ("eval.csv", "progress.csv")  # appended to while training, kept with each checkpoint


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


def save_checkpoint(workdir: Path, *, model: SAC, learner: OnlineRewardLearner,
                    state: LoopState) -> None:
    """Replace the checkpoint in ``workdir`` by this state, in one step."""
    with replaced_directory(workdir / CHECKPOINT) as tmp:
        model.save(tmp / "sac.zip")
        model.save_replay_buffer(tmp / "replay.pkl")
        torch.save({"model": learner.model.state_dict(), "spec": learner.reward.spec.to_json(),
                    **learner.state()}, tmp / "reward.pt")
        saved = asdict(state)
        saved["labels"] = state.labels.to_dict()
        saved["timesteps"] = int(model.num_timesteps)
        write_json(tmp / "state.json", saved)
        for log in LOGS:
            if (workdir / log).exists():
                shutil.copy(workdir / log, tmp / log)


def load_checkpoint(checkpoint: Path, *, learner: OnlineRewardLearner, env: VecEnv,
                    device: str) -> tuple[LoopState, SAC]:
    """The loop state and SAC (with its buffer) of ``checkpoint``; ``learner`` gets its
    weights and optimizer back, and the logs in the run folder are those of the checkpoint."""
    saved = json.loads((checkpoint / "state.json").read_text())
    labels = LabelLog.from_dict(saved.pop("labels"))
    timesteps = saved.pop("timesteps")
    state = LoopState(**{**saved, "labels": labels})
    state.resumed_from.append(int(timesteps))
    reward = torch.load(checkpoint / "reward.pt", map_location=device, weights_only=False)
    learner.model.load_state_dict(reward["model"])
    learner.reward.spec = RewardSpec.from_json(reward["spec"])
    learner.load_state(reward)
    model = load_sac(checkpoint / "sac.zip", env)
    model.load_replay_buffer(checkpoint / "replay.pkl")
    # SB3 saves the last observation of the killed run's environments; these are new
    # ones, so let learn() reset them (and the episode log with them).
    model._last_obs = None
    workdir = checkpoint.parent
    for log in LOGS:  # their rows up to the checkpoint; the resumed run appends
        remove_owned(workdir / log)
        if (checkpoint / log).exists():
            shutil.copy(checkpoint / log, workdir / log)
    return state, model


def find_checkpoint(workdir: Path) -> Path | None:
    """The last complete checkpoint (it is replaced in one step), after removing what a
    killed writer of the next one left."""
    path = workdir / CHECKPOINT
    clean_leftovers(path)
    return path if (path / "state.json").exists() else None
