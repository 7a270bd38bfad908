"""Turn a reward reference from the command line into a reward function.

A reference is ``<kind>`` or ``<kind>:<argument>`` of a kind in ``REFERENCES`` (``true``,
``prior:<name>``, ``zero``, ``random:<recipe or run>[@seed]``), or else a path to a run
directory or exported reward artifact. A new kind of reference is one
``@REFERENCES.register(kind)`` factory taking the argument ("" when there is none); tests
register windowed rewards this way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rrm_data.dataset import format as fmt
from rrm_data.dataset.observation import ACTION_DIM, STATE_DIM
from rrm_data.errors import RrmError
from rrm_data.recipes import load_recipe
from rrm_data.registry import Registry
from rrm_data.reward.artifact import LearnedReward, load_reward, read_spec
from rrm_data.reward.base import PriorReward, RewardFunction, TrueReward, ZeroReward
from rrm_data.reward.spec import NetworkSpec, RewardSpec, reward_spec
from rrm_data.training.fit import seeded_network

REFERENCES: Registry[Callable[[str], RewardFunction]] = Registry("reward reference")


def _no_argument(kind: str, argument: str) -> None:
    if argument:
        raise RrmError(f"the reward reference '{kind}' takes no argument, got "
                       f"'{kind}:{argument}'")


@REFERENCES.register("true")
def _true(argument: str) -> RewardFunction:
    _no_argument("true", argument)
    return TrueReward()


@REFERENCES.register("prior")
def _prior(argument: str) -> RewardFunction:
    return PriorReward(argument)


@REFERENCES.register("zero")
def _zero(argument: str) -> RewardFunction:
    _no_argument("zero", argument)
    return ZeroReward()


@REFERENCES.register("random")
def _random(argument: str) -> RewardFunction:
    """An untrained network of a learned model's shape (``random:state_residual``, a reward
    recipe or online recipe; or ``random:RUN``, a trained reward's spec), its weights drawn
    with seed ``@N`` (default 0): the control that a learned reward must beat — the shape,
    prior included, without what the labels taught."""
    source, _, seed_text = argument.partition("@")
    if not source:
        raise RrmError("the reward reference 'random' needs a recipe or run: "
                       "random:<recipe or run>[@seed]")
    if seed_text and not seed_text.isdigit():
        raise RrmError(f"random:{argument}: the seed after '@' must be a whole number")
    network = _network_of(source)
    model = seeded_network(network, int(seed_text or 0))
    name = f"random:{Path(source).name}" + (f"@{seed_text}" if seed_text else "")
    return LearnedReward(model, RewardSpec.learned(name, network))


def _network_of(source: str) -> NetworkSpec:
    """The network spec of a trained reward (run directory or artifact), or of a recipe's
    ``model:`` section on state and action inputs."""
    if Path(source).expanduser().is_dir():
        spec = RewardSpec.from_json(read_spec(source))
        if spec.network is None:
            raise RrmError(f"random:{source}: its reward has no network")
        return spec.network
    model = load_recipe(source, "model").model
    widths = {fmt.STATE: STATE_DIM, fmt.ACTION: ACTION_DIM}
    images = [c for c in model.inputs if c not in widths]
    if images:
        raise RrmError(f"random:{source}: only state and action inputs, not {', '.join(images)}")
    return reward_spec(model, widths, None)


def reward_ref(value: Any) -> str:
    """A ``reward=`` value as the text typed: YAML reads a bare ``true`` as a boolean."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def is_task_agnostic(ref: str) -> bool:
    """Registered references (``true``, ``prior:<name>``, ``zero``, ``random:…``) are defined
    for every task; a trained reward is not."""
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
