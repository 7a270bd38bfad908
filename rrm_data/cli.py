"""Command line: ``rrm-data <command> [key=value ...] [--cfg] [--debug]``.

A thin layer: each command lives in a workflow module that exposes ``Config`` (a
dataclass of defaults), optionally ``make_config(overrides)``, and ``run(cfg)``.
Adding a command is one line in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import fields, is_dataclass
from types import ModuleType

from omegaconf import DictConfig

from rrm_data.config import build_config, to_yaml
from rrm_data.errors import RrmError

COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("rrm_data.workflows.collect", "roll out policies and write a preference dataset"),
    "merge": ("rrm_data.workflows.merge", "join collection shards into one dataset"),
    "render": ("rrm_data.workflows.render", "add camera frames to a state-only dataset"),
    "embed": ("rrm_data.workflows.embed", "cache frozen-encoder features of every frame"),
    "train-reward": ("rrm_data.workflows.train_reward", "train a reward model from a recipe"),
    "evaluate": ("rrm_data.workflows.evaluate", "agreement and calibration report of a reward"),
    "score": ("rrm_data.workflows.score", "per-pair scores of a reward model as Parquet"),
    "gallery": ("rrm_data.workflows.gallery", "HTML gallery of best and worst trajectories"),
    "publish": ("rrm_data.workflows.publish", "upload a dataset to the Hugging Face Hub"),
    "export-trl": ("rrm_data.workflows.export_trl", "chosen/rejected view for TRL trainers"),
    "train-sac": ("rrm_data.workflows.train_sac", "train SAC on a learned or given reward"),
    "train-online": ("rrm_data.workflows.train_online", "online PbRL: SAC while a teacher "
                     "labels (RRM, PEBBLE)"),
    "info": ("rrm_data.workflows.info", "print a short summary of a dataset"),
    "validate": ("rrm_data.workflows.validate", "check a dataset against the rrm-data/1 format"),
}


def _load(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name][0])


def _config(module: ModuleType, overrides: list[str]) -> DictConfig:
    if hasattr(module, "make_config"):
        return module.make_config(overrides)
    return build_config(module.Config(), overrides)


def _describe(module: ModuleType) -> str:
    """List a command's config keys with defaults and their help text."""
    if not is_dataclass(module.Config):
        return ""
    lines = ["config keys (key=value):"]
    defaults = module.Config()
    for f in fields(module.Config):
        help_text = f.metadata.get("help", "")
        lines.append(f"  {f.name}={getattr(defaults, f.name)!r}  {help_text}".rstrip())
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rrm-data",
        description="Preference datasets from Meta-World rollouts, and reward models on them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {n:<13} {h}" for n, (_, h) in COMMANDS.items())
        + "\n\nrun 'rrm-data COMMAND --help' for a command's config keys",
    )
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    show_cfg = "--cfg" in argv
    argv = [a for a in argv if a not in ("--debug", "--cfg")]
    if not argv or argv[0] in ("-h", "--help"):
        _parser().print_help()
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        _parser().parse_args([name])  # prints the valid commands and exits 2
    module = _load(name)
    if any(a in ("-h", "--help") for a in rest):
        print(f"usage: rrm-data {name} [key=value ...] [--cfg] [--debug]\n")
        print((module.__doc__ or COMMANDS[name][1]).strip() + "\n")
        print(_describe(module))
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
    except KeyboardInterrupt:
        print(f"rrm-data {name}: interrupted; run the same command again to resume",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
