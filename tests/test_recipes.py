"""Recipes composed from config groups: the same configs as when every recipe spelt out its
SAC settings and model, each setting written once, and groups picked on the command line."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from rrm_data.cli import main
from rrm_data.config import config_dict
from rrm_data.errors import RrmError
from rrm_data.recipes import load_recipe, recipe_names
from rrm_data.resources import resource_dir
from rrm_data.rl.sac import SacSettings

# Captured with `rrm-data COMMAND ARGS --cfg` before recipes had defaults: lists.
RESOLVED = yaml.safe_load(
    (Path(__file__).parent / "expected" / "recipes_resolved.yaml").read_text())


def resolve(args: str) -> dict[str, Any]:
    command, *overrides = args.split()
    module = importlib.import_module(f"rrm_data.workflows.{command.replace('-', '_')}")
    return config_dict(module.make_config(overrides))


@pytest.mark.parametrize("args", sorted(RESOLVED))
def test_every_recipe_resolves_as_before(args: str) -> None:
    assert resolve(args) == RESOLVED[args]


def test_the_old_sac_recipe_cases_are_all_there() -> None:
    """Every packaged recipe is among the captured ones (a new one gets captured too)."""
    captured = {a.split()[1].removeprefix("recipe=") for a in RESOLVED}
    assert captured == {p.stem for p in resource_dir("recipes").glob("*.yaml")}


def _settings(path: Path) -> list[tuple[str, str, Any]]:
    """(section, key, value) of the SAC and model settings a YAML file writes."""
    values = yaml.safe_load(path.read_text()) or {}
    group = path.parent.name
    if group in ("sac", "model"):
        return [(group, k, repr(v)) for k, v in values.items() if k != "defaults"]
    return [(section, k, repr(v)) for section in ("sac", "model")
            for k, v in (values.get(section) or {}).items()]


def test_each_sac_setting_and_model_value_is_written_once() -> None:
    written: dict[tuple[str, str, Any], list[str]] = {}
    for path in sorted(resource_dir("recipes").rglob("*.yaml")):
        for setting in _settings(path):
            written.setdefault(setting, []).append(path.name)
    twice = {s: files for s, files in written.items() if len(files) > 1}
    assert not twice
    defaults = dataclasses.asdict(SacSettings())
    restated = [(k, v) for section, k, v in written if section == "sac"
                and repr(defaults[k]) == v]
    assert not restated  # PEBBLE's values live in SacSettings alone
    assert ("sac", "batch_size", "256") in written  # the scan sees group files


def test_a_group_on_the_command_line_replaces_the_recipes_choice() -> None:
    assert resolve("train-sac sac=cpu") == {**resolve("train-sac recipe=sac_cpu"),
                                            "recipe": "sac_metaworld"}
    back = resolve("train-sac recipe=sac_cpu sac=pebble")
    assert back["sac"] == resolve("train-sac")["sac"]
    pebble_mlp = resolve("train-online recipe=rrm model=mlp")["model"]
    assert pebble_mlp["prior"] == "zero" and pebble_mlp["normalize"] is True
    # the recipe's own keys still apply on top of the option it names
    assert resolve("train-online recipe=pebble model=residual")["model"] == {
        **resolve("train-online recipe=rrm")["model"], "normalize": False}
    assert resolve("train-online sac=cpu sac.batch_size=64")["sac"]["batch_size"] == 64


@pytest.mark.parametrize(("argv", "message"), [
    (["train-online", "sac=nope"], "unknown sac option 'nope'; available: cpu, pebble"),
    (["train-sac", "sac=_x"], "unknown sac option '_x'"),
    (["train-reward", "model=_gripper_prior"], "unknown model option '_gripper_prior'; "
                                               "available: image_mlp, image_residual, "
                                               "image_sequence, image_sequence_residual, mlp"),
    (["train-online", "sac_recipe=sac_cpu"], "unknown config key 'sac_recipe'"),
    (["train-reward", "sac=cpu"], "unknown config key 'sac'"),
    (["train-sac", "recipe=rrm"], "recipe 'rrm' is not for this command"),
])
def test_unknown_groups_and_options_are_refused_in_one_line(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--cfg"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_recipes_are_listed_for_their_own_command() -> None:
    assert recipe_names("sac") == ["sac_cpu", "sac_metaworld"]
    assert recipe_names("online") == ["pebble", "rrm"]
    assert recipe_names("model") == ["image_frozen", "image_frozen_mlp", "image_sequence",
                                     "state_mlp", "state_residual", "state_sequence",
                                     "state_sequence_residual"]


def test_a_recipe_file_of_ones_own_uses_the_groups(tmp_path: Path) -> None:
    own = tmp_path / "mine.yaml"
    own.write_text("defaults:\n  - sac: cpu\nsac:\n  gamma: 0.95\n")
    sac = resolve(f"train-sac recipe={own}")["sac"]
    assert (sac["batch_size"], sac["net_arch"], sac["gamma"]) == (256, [256, 256], 0.95)
    own.write_text("defaults: [cpu]\nsac: {}\n")
    with pytest.raises(RrmError, match="each entry of defaults: must be 'GROUP: OPTION'"):
        load_recipe(str(own), "sac")
    own.write_text("defaults:\n  - optim: fast\nsac: {}\n")
    with pytest.raises(RrmError, match="unknown config group 'optim'; groups: model, sac"):
        load_recipe(str(own), "sac")


def test_help_lists_the_groups(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-online", "--help"]) == 0
    out = capsys.readouterr().out
    assert ("  model=image_mlp|image_residual|image_sequence|image_sequence_residual|mlp|"
            "residual|sequence|sequence_gru|sequence_residual\n  sac=cpu|pebble") in out
