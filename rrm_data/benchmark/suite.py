"""A benchmark suite: tasks × conditions × seeds, read from YAML and checked whole before
anything runs.

A condition is one command line (``train-sac reward=true``) or a pipeline of them
(``collect …`` → ``train-reward …`` → ``train-sac``), each ``COMMAND key=value …``. Every
run gets ``task=``, ``seed=``, ``out=`` and one thread; in a pipeline ``train-reward``
reads the previous step's dataset (``data=``) and ``train-sac`` its reward (``reward=``),
``train-offline`` the last ``collect``'s dataset and the last ``train-reward``'s reward,
unless the line says otherwise. ``{task}``, ``{seed}`` and ``{run}`` (the run's folder) in
a line are filled per run, so a step can read what an earlier one wrote beside its output
(``train-sac record_out={run}/replay``, then ``train-offline data={run}/replay``).
A suite's ``shared:`` steps (a dataset every condition trains on) run once per task and
seed, in ``<task>/shared/seed<seed>``, and come before each condition's own steps: a
condition's ``train-offline`` reads a shared ``collect`` as it would its own, and
``{shared}`` names that folder (``data={shared}/replay``).
Per-task overrides (``tasks: {drawer-close-v3: {collect: [policy=[…]]}}``) and per-command
defaults (``defaults: {train-sac: [steps=30000]}``) are added before the line's own.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rrm_data.errors import RrmError
from rrm_data.registry import unknown_name
from rrm_data.sim.envs import check_task

# The commands a condition may run, and what each needs from the run and the step before.
COMMANDS = ("collect", "train-reward", "train-sac", "train-online", "train-offline")
FINAL = ("train-sac", "train-online", "train-offline")  # what a condition may end with
SUITE_KEYS = ("name", "description", "tasks", "seeds", "defaults", "shared", "conditions",
              "pairs")
CONDITION_KEYS = ("run", "description", "axis")
AXES = ("steps", "labels")  # what a condition's sample-efficiency curve is drawn against
# The keys a command reads earlier steps' outputs through: (key, the last step of that
# command, or None: the step just before).
INPUTS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "train-reward": (("data", None),), "train-sac": (("reward", None),),
    "train-offline": (("data", "collect"), ("reward", "train-reward"))}
THREADED = ("train-sac", "train-online", "train-offline")  # commands with a threads= key
# What a line's {…} is filled with per run: its task, its seed, its folder (for outputs
# beside the steps', e.g. train-sac record_out={run}/replay read by data={run}/replay) and
# the folder of the suite's shared steps for this task and seed.
PLACEHOLDERS = ("task", "seed", "run", "shared")
SHARED = "shared"  # the shared steps' name in run ids and folders; no condition may take it
# The keys that set a condition's label budget (train-online's feedback, train-reward's
# data.num_labels, CPL's num_labels): conditions whose lines differ only in them (and in
# labels_per_round, which scales with the budget) are one method at several budgets.
BUDGET_KEYS = ("feedback", "data.num_labels", "num_labels")
PER_BUDGET_KEYS = ("labels_per_round",)


@dataclass(frozen=True)
class Step:
    command: str
    defaults: tuple[str, ...]  # the suite's defaults for this command
    overrides: tuple[str, ...]  # the condition's own (after the task's)


@dataclass(frozen=True)
class Condition:
    name: str
    steps: tuple[Step, ...]
    axis: str  # "steps" or "labels"

    def budget(self) -> tuple[str, int] | None:
        """(method, labels): the label budget the condition's own lines set (``BUDGET_KEYS``)
        and those lines without it, the method the budget is given to; None without one."""
        labels = None
        lines = []
        for step in self.steps:
            kept = []
            for override in step.overrides:
                key, _, value = override.partition("=")
                if key in BUDGET_KEYS and value.isdigit():
                    labels = int(value)
                elif key not in PER_BUDGET_KEYS:
                    kept.append(override)
            lines.append(" ".join([step.command, *kept]))
        return None if labels is None else (" → ".join(lines), labels)


@dataclass(frozen=True)
class Run:
    """One cell of the grid: its folder under the grid's ``out`` is
    ``<task>/<condition>/seed<seed>``. With the suite's shared steps (``shared``), their run
    for the same task and seed (``prerequisite``) must finish before this one starts."""

    task: str
    condition: Condition
    seed: int
    task_overrides: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (command, overrides)
    shared: Condition | None = None

    @property
    def id(self) -> str:
        return f"{self.task}/{self.condition.name}/seed{self.seed}"

    @property
    def prerequisite(self) -> Run | None:
        """The shared steps' run for this task and seed, if the suite has shared steps."""
        if self.shared is None:
            return None
        return Run(self.task, self.shared, self.seed, self.task_overrides)

    def argvs(self, out: Path) -> list[list[str]]:
        """The command lines of this run (``rrm-data`` arguments) in the grid ``out``."""
        return [argv for argv, _ in self.commands(out)]

    def commands(self, out: Path) -> list[tuple[list[str], Path]]:
        """Each step's command line and output folder; the shared steps' outputs count as
        earlier steps' (a condition's ``train-offline`` reads a shared ``collect``)."""
        folder = out / self.id
        before = self.prerequisite.commands(out) if self.prerequisite else []
        shared = out / self.prerequisite.id if self.prerequisite else folder
        previous: Path | None = before[-1][1] if before else None
        latest: dict[str, Path] = {argv[0]: path for argv, path in before}
        lines = []
        for i, step in enumerate(self.condition.steps):
            step_out = folder / f"{i}-{step.command}"
            task_extra = dict(self.task_overrides).get(step.command, ())
            overrides = (*step.defaults, *task_extra, *step.overrides)
            given = {o.partition("=")[0] for o in overrides}
            argv = [step.command, *(o.format(task=self.task, seed=self.seed, run=folder,
                                             shared=shared) for o in overrides)]
            argv.append(f"seed={self.seed}")
            if step.command != "train-reward":
                argv.append(f"task={self.task}")
            if step.command in THREADED and "threads" not in given:
                argv.append("threads=1")
            for key, source in INPUTS.get(step.command, ()):
                found = previous if source is None else latest.get(source)
                if key not in given and found is not None:
                    argv.append(f"{key}={found}")
            argv.append(f"out={step_out}")
            lines.append((argv, step_out))
            previous = latest[step.command] = step_out
        return lines

    def final(self, out: Path) -> Path:
        """The folder of the last step, whose eval.csv and summary.json are the result."""
        return self.commands(out)[-1][1]


@dataclass(frozen=True)
class Suite:
    name: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    conditions: tuple[Condition, ...]
    pairs: tuple[tuple[str, str], ...]
    task_overrides: Mapping[str, tuple[tuple[str, tuple[str, ...]], ...]]
    text: str  # the YAML as read, copied next to the runs for the report
    shared: Condition | None = None  # steps run once per task and seed, before conditions'

    def step_unit(self) -> str:
        """What its curves' steps count: env steps, or train-offline's gradient steps."""
        offline = [c.steps[-1].command == "train-offline" for c in self.conditions]
        if all(offline):
            return "gradient steps"
        return "steps (gradient steps for train-offline, else env steps)" if any(offline) \
            else "env steps"

    def label_budgets(self) -> dict[str, tuple[str, int]]:
        """Each condition with a label budget: its (method, labels)."""
        return {c.name: budget for c in self.conditions if (budget := c.budget())}

    def runs(self) -> list[Run]:
        """Every run, in a fixed order (task, condition, seed as declared)."""
        return [Run(t, c, s, self.task_overrides.get(t, ()), self.shared) for t in self.tasks
                for c in self.conditions for s in self.seeds]


def load_suite(path: str | Path) -> Suite:
    """Read a suite file; structure errors are one line naming the key."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise RrmError(f"suite file {file} not found")
    text = file.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RrmError(f"{file}: not YAML ({str(exc).splitlines()[0]})") from None
    return parse_suite(data, text, file.stem)


def same_suite(text: str, other: str) -> bool:
    """Whether two suite files declare the same grid: their YAML, comments and layout apart
    (a comment edited between sessions keeps a grid's records its own)."""
    try:
        return bool(yaml.safe_load(text) == yaml.safe_load(other))
    except yaml.YAMLError:
        return False


def parse_suite(data: Any, text: str = "", default_name: str = "suite") -> Suite:
    if not isinstance(data, dict):
        raise RrmError("a suite is a mapping with tasks, seeds and conditions")
    _known(data, SUITE_KEYS, "the suite")
    tasks_field = data.get("tasks") or []
    tasks = list(tasks_field) if isinstance(tasks_field, list | dict) else [tasks_field]
    if not tasks:
        raise RrmError("the suite names no tasks")
    for task in tasks:
        check_task(str(task))
    seeds = _seeds(data.get("seeds"))
    defaults = _per_command(data.get("defaults") or {}, "defaults")
    task_extra = ({str(t): tuple((c, tuple(o)) for c, o in
                                 _per_command(v or {}, f"tasks.{t}").items())
                   for t, v in tasks_field.items()} if isinstance(tasks_field, dict) else {})
    conditions = data.get("conditions") or {}
    if not isinstance(conditions, dict) or not conditions:
        raise RrmError("the suite declares no conditions (conditions: {name: {run: …}})")
    if SHARED in map(condition_name, conditions):
        raise RrmError(f"'{SHARED}' names the suite's shared steps; call the condition "
                       "otherwise")
    shared = (_steps(SHARED, data["shared"], defaults) if data.get("shared") is not None
              else None)
    parsed = tuple(_condition(condition_name(n), c, defaults) for n, c in conditions.items())
    if shared is None and any("{shared}" in o for c in parsed for s in c.steps
                              for o in (*s.defaults, *s.overrides)):
        raise RrmError("a line uses {shared} but the suite has no shared: steps")
    names = [c.name for c in parsed]
    pairs = []
    for pair in data.get("pairs") or []:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise RrmError(f"pairs: each pair is [condition, condition], got {pair!r}")
        x, y = condition_name(pair[0]), condition_name(pair[1])
        for name in (x, y):
            if name not in names:
                raise RrmError(f"pairs: unknown condition '{name}'; known: {', '.join(names)}")
        pairs.append((x, y))
    return Suite(str(data.get("name") or default_name), tuple(str(t) for t in tasks), seeds,
                 parsed, tuple(pairs), task_extra, text, shared)


def condition_name(value: Any) -> str:
    """A condition's name as typed: YAML reads a bare ``true`` as a boolean."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _known(data: Mapping[str, Any], keys: tuple[str, ...], where: str,
           what: str = "key") -> None:
    for key in data:
        if key not in keys:
            raise RrmError(unknown_name(f"{what} in {where}", str(key), list(keys)))


def _seeds(value: Any) -> tuple[int, ...]:
    """``seeds: 5`` is 0..4; ``seeds: [0, 3]`` as listed."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return tuple(range(value))
    if (isinstance(value, list) and value and len(set(value)) == len(value)
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)):
        return tuple(value)
    raise RrmError(f"seeds must be a positive count or a list of distinct seeds, got {value!r}")


def _per_command(value: Any, where: str) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise RrmError(f"{where}: a mapping of command → [key=value, …]")
    _known(value, COMMANDS, where, "command")
    out = {str(k): [str(o) for o in (v or [])] for k, v in value.items()}
    for overrides in out.values():
        for o in overrides:
            _check_placeholders(o, where)
    return out


def _check_placeholders(word: str, where: str) -> None:
    """Only ``{task}``, ``{seed}``, ``{run}`` (the run's folder) and ``{shared}`` (the shared
    steps' folder) are filled in a line."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(word) if f is not None]
    except ValueError as exc:
        raise RrmError(f"{where}: '{word}': {exc} (write {{{{ and }}}} for braces)") from None
    for field_name in fields:
        if field_name not in PLACEHOLDERS:
            raise RrmError(f"{where}: '{word}' has {{{field_name}}}; a line may use "
                           + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))


def _condition(name: str, value: Any, defaults: dict[str, list[str]]) -> Condition:
    if isinstance(value, str | list):
        value = {"run": value}
    if not isinstance(value, dict):
        raise RrmError(f"condition '{name}': a command line, a list of them, or {{run: …}}")
    _known(value, CONDITION_KEYS, f"condition '{name}'")
    steps = _steps(name, value.get("run"), defaults).steps
    if steps[-1].command not in FINAL:
        raise RrmError(f"condition '{name}' must end with {', '.join(FINAL)}")
    default_axis = "labels" if steps[-1].command == "train-online" else "steps"
    axis = str(value.get("axis", default_axis))
    if axis not in AXES:
        raise RrmError(f"condition '{name}': axis must be one of {', '.join(AXES)}")
    return Condition(name, steps, axis)


def _steps(name: str, lines: Any, defaults: dict[str, list[str]]) -> Condition:
    """A pipeline of ``COMMAND key=value …`` lines (a condition's or the shared steps')."""
    where = "shared" if name == SHARED else f"condition '{name}'"
    lines = [lines] if isinstance(lines, str) else lines
    if not lines or not isinstance(lines, list):
        raise RrmError(f"{where} runs nothing (COMMAND key=value …, or a list of them)")
    steps = []
    for line in lines:
        words = shlex.split(str(line))
        if not words or words[0] not in COMMANDS:
            raise RrmError(f"{where}: '{line}' does not start with one of {', '.join(COMMANDS)}")
        for word in words[1:]:
            if "=" not in word or word.startswith("="):
                raise RrmError(f"{where}: '{word}' is not key=value")
            _check_placeholders(word, where)
            if word.partition("=")[0] in ("out", "task", "seed"):
                raise RrmError(f"{where}: {word.partition('=')[0]}= is set per run")
        steps.append(Step(words[0], tuple(defaults.get(words[0], [])), tuple(words[1:])))
    return Condition(name, tuple(steps), "steps")


def shard(runs: list[Run], index: int, count: int) -> list[Run]:
    """Run ``i`` of the sorted ids goes to shard ``i mod count``: deterministic, disjoint, and
    every shard gets a share of every condition."""
    ordered = sorted(runs, key=lambda r: r.id)
    return [r for i, r in enumerate(ordered) if i % count == index]


def check_commands(suite: Suite, runs: list[Run], out: Path,
                   build: Callable[[str, list[str]], object]) -> None:
    """Build every command's config (its recipe, the overrides, range checks) with the CLI's
    own builder before anything runs: an unknown key or bad value is one line naming the
    run, not a failure an hour in. Built as in a grid where nothing has run yet (``out``
    read as a folder that does not exist): what a step reads from an earlier one is not
    there before it is made, and a half-made one (a failed or interrupted try's) is made
    again before it is read."""
    unmade = out.parent / f".{out.name}.unmade"
    prerequisites = {r.prerequisite for r in runs if r.prerequisite}
    for run in [*sorted(prerequisites, key=lambda r: r.id), *runs]:
        for argv in run.argvs(unmade):
            try:
                build(argv[0], argv[1:])
            except RrmError as exc:
                where = ("the shared steps" if run.condition.name == SHARED
                         else f"condition '{run.condition.name}'")
                message = str(exc).replace(str(unmade), str(out))
                raise RrmError(f"{where} on {run.task}: {argv[0]}: {message}") from None
