"""Turn a reward reference from the command line into a reward function.

A reference is ``<kind>`` or ``<kind>:<argument>`` of a kind in ``REFERENCES`` (``true``,
``prior:<name>``), or else a path to a run directory or exported reward artifact. A new
kind of reference is one ``@REFERENCES.register(kind)`` factory taking the argument
("" when there is none); tests register windowed rewards this way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rrm_data.errors import RrmError
from rrm_data.registry import Registry
from rrm_data.reward.artifact import load_reward, read_spec
from rrm_data.reward.base import PriorReward, RewardFunction, TrueReward

REFERENCES: Registry[Callable[[str], RewardFunction]] = Registry("reward reference")


@REFERENCES.register("true")
def _true(argument: str) -> RewardFunction:
    if argument:
        raise RrmError(f"the reward reference 'true' takes no argument, got 'true:{argument}'")
    return TrueReward()


@REFERENCES.register("prior")
def _prior(argument: str) -> RewardFunction:
    return PriorReward(argument)


def reward_ref(value: Any) -> str:
    """A ``reward=`` value as the text typed: YAML reads a bare ``true`` as a boolean."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def is_task_agnostic(ref: str) -> bool:
    """Registered references (``true``, ``prior:<name>``) are defined for every task; a
    trained reward is not."""
    return ref.partition(":")[0] in REFERENCES


def resolve_reward(ref: str | Path) -> RewardFunction:
    """A registered reference (``true``, ``prior:<name>``, …), or a path to a run directory
    or exported reward artifact."""
    text = str(ref)
    kind, _, argument = text.partition(":")
    if kind in REFERENCES:
        return REFERENCES.get(kind)(argument)
    path = Path(text).expanduser()
    if not path.exists():
        kinds = ", ".join(f"{k}[:…]" for k in REFERENCES.names())
        raise RrmError(f"unknown reward '{text}': expected one of {kinds}, "
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
