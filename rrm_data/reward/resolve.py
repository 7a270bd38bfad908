"""Turn a reward reference from the command line into a reward function."""

from __future__ import annotations

from pathlib import Path

from rrm_data.dataset.priors import PRIORS
from rrm_data.errors import RrmError
from rrm_data.reward.artifact import load_reward
from rrm_data.reward.base import PriorReward, RewardFunction, TrueReward


def resolve_reward(ref: str | Path) -> RewardFunction:
    """``true``, ``prior:<name>``, or a path to a run directory or exported reward artifact."""
    text = str(ref)
    if text == "true":
        return TrueReward()
    if text.startswith("prior:"):
        name = text.removeprefix("prior:")
        PRIORS.get(name)
        return PriorReward(name)
    path = Path(text).expanduser()
    if not path.exists():
        raise RrmError(f"unknown reward '{text}': expected true, prior:<name>, "
                       "or a path to a run directory or reward artifact")
    return load_reward(path)
