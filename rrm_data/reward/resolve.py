"""Turn a reward reference from the command line into a reward function.

A reference is ``<kind>`` or ``<kind>:<argument>`` of a kind in ``REFERENCES`` (``true``,
``prior:<name>``), or else a path to a run directory or exported reward artifact. A new
kind of reference is one ``@REFERENCES.register(kind)`` factory taking the argument
("" when there is none); tests register windowed rewards this way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rrm_data.errors import RrmError
from rrm_data.registry import Registry
from rrm_data.reward.artifact import load_reward
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
