"""Turn a reward reference from the command line into a reward function."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rrm_data.dataset.priors import PRIORS
from rrm_data.errors import RrmError
from rrm_data.reward.artifact import load_reward, read_spec
from rrm_data.reward.base import PriorReward, RewardFunction, TrueReward


def reward_ref(value: Any) -> str:
    """A ``reward=`` value as the text typed: YAML reads a bare ``true`` as a boolean."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def is_task_agnostic(ref: str) -> bool:
    """``true`` and ``prior:<name>`` are defined for every task; a trained reward is not."""
    return ref == "true" or ref.startswith("prior:")


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


def trained_tasks(ref: str) -> list[str]:
    """The tasks a trained reward's artifact records (``training.tasks`` from train-reward,
    ``training.task`` from train-online); empty for task-agnostic or unrecorded ones."""
    if is_task_agnostic(ref) or not Path(ref).expanduser().exists():
        return []
    training = read_spec(ref).get("training") or {}
    tasks = training.get("tasks", [training["task"]] if "task" in training else [])
    return [str(t) for t in tasks]


def check_reward_tasks(refs: Sequence[str], tasks: Sequence[str], allow_other_task: bool) -> None:
    """Refuse a reward trained on other tasks than those it is used on, unless asked for:
    a reward learned on one task scores another task's steps without any warning."""
    if allow_other_task:
        return
    for ref in refs:
        trained = trained_tasks(ref)
        other = [t for t in tasks if t not in trained]
        if trained and other:
            raise RrmError(f"reward {ref} was trained on {', '.join(trained)}, not on "
                           f"{', '.join(other)}; pass allow_other_task=true to use it anyway")
