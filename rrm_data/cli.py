"""Command line: ``rrm-data <command> [key=value ...] [--cfg] [--debug]``.

A thin layer: each command lives in a workflow module that exposes ``Config`` (a
dataclass of defaults), optionally ``make_config(overrides)``, and ``run(cfg)``.
Adding a command is one line in ``SUMMARIES`` plus its workflow module. The program, not
the library, sets up the process (rendering backend, warning filters) before a command runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass, fields, is_dataclass
from types import ModuleType
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from rrm_data.config import build_config, to_yaml
from rrm_data.errors import Interrupted, RrmError, environment_error
from rrm_data.process import configure_process
from rrm_data.recipes import group_names, group_options
from rrm_data.registry import Registry


@dataclass(frozen=True)
class Command:
    """A command's workflow module (imported only when the command runs) and its summary."""

    module: str
    summary: str


COMMANDS: Registry[Command] = Registry("command")
# What Ctrl-C leaves, unless the workflow says otherwise (``ON_INTERRUPT``).
NOTHING_WRITTEN = "interrupted; nothing was written (what was at out= before is unchanged)"


# Each command runs the workflow module of its name (``train-reward`` → ``train_reward``).
SUMMARIES = {
    "collect": "roll out policies and write a preference dataset",
    "merge": "join collection shards into one dataset",
    "render": "add camera frames to a state-only dataset",
    "embed": "cache frozen-encoder features of every frame",
    "train-reward": "train a reward model from a recipe",
    "evaluate": "agreement and calibration report of a reward",
    "score": "per-pair scores of a reward model as Parquet",
    "gallery": "HTML gallery of best and worst trajectories",
    "publish": "upload a dataset to the Hugging Face Hub",
    "export-trl": "chosen/rejected view for TRL trainers",
    "train-sac": "train SAC on a learned or given reward",
    "train-online": "online PbRL: SAC while a teacher labels (RRM, PEBBLE)",
    "train-offline": "offline RL on a dataset: IQL or TD3+BC on any reward, or CPL on its labels",
    "info": "print a short summary of a dataset",
    "validate": "check a dataset against the rrm-data/1 format",
    "query": "choose the next pairs to label (uniform, ensemble)",
    "label": "add a scripted teacher's labels to a dataset (new version)",
    "annotate": "browser app to label pairs; export=true exports",
    "benchmark": "run a suite's grid of RL runs (resumable, sharded, Ray)",
    "benchmark-report": "rliable statistics and plots of benchmark runs",
}
for _name, _summary in SUMMARIES.items():
    COMMANDS.register(_name)(Command(f"rrm_data.workflows.{_name.replace('-', '_')}", _summary))


def _config(module: ModuleType, overrides: list[str]) -> DictConfig:
    if hasattr(module, "make_config"):
        return module.make_config(overrides)
    return build_config(module.Config(), overrides)


def command_config(name: str, overrides: list[str]) -> DictConfig:
    """The config ``rrm-data NAME overrides…`` would run with (what ``--cfg`` prints); an
    unknown command, key or value is an RrmError. The benchmark checks its grid with it."""
    if name not in COMMANDS:
        raise RrmError(COMMANDS.unknown(name))
    return _config(importlib.import_module(COMMANDS.get(name).module), overrides)


def _describe(module: ModuleType, overrides: list[str]) -> str:
    """List a command's config keys with the values it would run with (its recipe and the
    given overrides applied) and their help text."""
    config_cls: type = module.Config
    if not is_dataclass(config_cls):
        return ""
    try:
        values: Any = _config(module, overrides)
    except RrmError:  # e.g. a required key missing: show the plain defaults
        values = config_cls()
    lines = ["config keys (key=value):"]
    for f in fields(config_cls):
        help_text = f.metadata.get("help", "")
        value = values[f.name] if isinstance(values, DictConfig) else getattr(values, f.name)
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value, resolve=True)
        lines.append(f"  {f.name}={value!r}  {help_text}".rstrip())
    groups = [g for g in group_names() if g in {f.name for f in fields(config_cls)}]
    if groups:
        lines.append("config groups (GROUP=OPTION replaces the recipe's choice, recipes/GROUP/):")
        lines += [f"  {g}={'|'.join(group_options(g))}" for g in groups]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rrm-data",
        description="Preference datasets from Meta-World rollouts, and reward models on them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {n:<16} {c.summary}" for n, c in COMMANDS.items())
        + "\n\nrun 'rrm-data COMMAND --help' for a command's config keys",
    )
    parser.add_argument("command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # the reader went away (`--help | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # flushing at exit
        return 1


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    show_cfg = "--cfg" in argv
    argv = [a for a in argv if a not in ("--debug", "--cfg")]
    if not argv or argv[0] in ("-h", "--help"):
        _parser().print_help()
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"rrm-data: error: {COMMANDS.unknown(name)}", file=sys.stderr)
        return 2
    configure_process()
    module = importlib.import_module(COMMANDS.get(name).module)
    if any(a in ("-h", "--help") for a in rest):
        print(f"usage: rrm-data {name} [key=value ...] [--cfg] [--debug]\n")
        print((module.__doc__ or COMMANDS.get(name).summary).strip() + "\n")
        print(_describe(module, [a for a in rest if a not in ("-h", "--help")]))
        return 0
    try:
        cfg = _config(module, [a for a in rest])
        if show_cfg:
            print(to_yaml(cfg), end="")
            return 0
        module.run(cfg)
    except RrmError as exc:
        if debug:
            raise
        print(f"rrm-data {name}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        line = environment_error(exc)
        if debug or line is None:
            raise
        print(f"rrm-data {name}: error: {line}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        print(f"rrm-data {name}: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"rrm-data {name}: {getattr(module, 'ON_INTERRUPT', NOTHING_WRITTEN)}",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
