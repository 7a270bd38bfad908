"""Recipes: YAML files in ``recipes/`` that set a command's defaults, composed from groups.

A recipe is for the first of these sections it has: ``online`` (train-online), ``model``
(train-reward), ``sac`` (train-sac). Settings that recipes share are written once, as an
option of a config group: ``recipes/<group>/<option>.yaml`` (``sac/cpu``, ``model/mlp``).
A recipe pulls options in with a ``defaults:`` list, as Hydra writes it, and its own keys
apply on top of them::

    defaults:
      - sac: pebble
      - model: mlp
    model:
      normalize: false

An option may itself list options of its own group, or parts of them (``_<part>.yaml``,
no option alone): ``defaults: [mlp, _gripper_prior]``, merged in that order before its own
keys. On the command line ``GROUP=OPTION``
(``sac=cpu``) replaces the recipe's choice for that group, or adds the group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rrm_data.config import merge_configs
from rrm_data.errors import RrmError, first_line
from rrm_data.resources import resource_dir

SECTIONS = ("online", "model", "sac")  # a recipe's command: the first section it has
DEFAULTS = "defaults"


def group_names() -> list[str]:
    """The config groups: the folders of ``recipes/``."""
    return sorted(p.name for p in resource_dir("recipes").iterdir() if p.is_dir())


def group_options(group: str) -> list[str]:
    """A group's options; a file named ``_<part>.yaml`` is a part that only its group's
    options pull in."""
    return sorted(p.stem for p in (resource_dir("recipes") / group).glob("*.yaml")
                  if not p.stem.startswith("_"))


def split_groups(overrides: list[str]) -> tuple[dict[str, str], list[str]]:
    """``GROUP=OPTION`` selections (``sac=cpu``) apart from the ``key=value`` overrides."""
    names, groups, rest = group_names(), {}, []
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep and key in names:
            groups[key] = value
        else:
            rest.append(item)
    return groups, rest


def recipe_names(section: str) -> list[str]:
    """Packaged recipes for the command of ``section``."""
    return sorted(p.stem for p in resource_dir("recipes").glob("*.yaml")
                  if _section(_read(p)) == section)


def load_recipe(name: str, section: str, groups: dict[str, str] | None = None) -> DictConfig:
    """A packaged recipe by name, or a recipe YAML file by path, for the command of
    ``section``, composed: its defaults (``groups`` replacing or adding options), then its
    own keys."""
    path = Path(name).expanduser()
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        path = resource_dir("recipes") / f"{name}.yaml"
    available = f"available recipes: {', '.join(recipe_names(section))}"
    if not path.is_file():
        raise RrmError(f"unknown recipe '{name}'; {available}")
    recipe = _read(path)
    if _section(recipe) != section:
        raise RrmError(f"recipe '{name}' is not for this command (it is not a '{section}:' "
                       f"recipe); {available}")
    chosen = {**_choices(recipe, path), **(groups or {})}
    layers = [OmegaConf.create({group: _option(group, option)})
              for group, option in chosen.items()]
    return merge_configs(*layers, _without_defaults(recipe))


def _read(path: Path) -> DictConfig:
    try:
        recipe = OmegaConf.load(path)
    except (OmegaConfBaseException, yaml.YAMLError) as exc:
        raise RrmError(f"{path}: invalid recipe YAML ({first_line(exc)})") from None
    if not isinstance(recipe, DictConfig):
        raise RrmError(f"{path}: a recipe must be a mapping of config keys")
    return recipe


def _section(recipe: DictConfig) -> str | None:
    """The section that says which command a recipe is for (its defaults' groups count)."""
    keys = {str(k) for k in recipe} | {g for entry in recipe.get(DEFAULTS) or []
                                       if isinstance(entry, DictConfig) for g in entry}
    return next((s for s in SECTIONS if s in keys), None)


def _choices(recipe: DictConfig, path: Path) -> dict[str, str]:
    """A recipe's ``defaults:`` list as group → option."""
    chosen: dict[str, str] = {}
    for entry in recipe.get(DEFAULTS) or []:
        if not isinstance(entry, DictConfig) or len(entry) != 1:
            raise RrmError(f"{path}: each entry of defaults: must be 'GROUP: OPTION', "
                           f"got {_plain(entry)!r}")
        (group, option), = entry.items()
        chosen[str(group)] = str(option)
    return chosen


def _option(group: str, option: str, part: bool = False) -> DictConfig:
    """``recipes/<group>/<option>.yaml``: the options (or ``part``s) it lists, then its own
    keys."""
    if group not in group_names():
        raise RrmError(f"unknown config group '{group}'; groups: {', '.join(group_names())}")
    path = resource_dir("recipes") / group / f"{option}.yaml"
    if option not in group_options(group) and not (part and path.is_file()):
        raise RrmError(f"unknown {group} option '{option}'; available: "
                       f"{', '.join(group_options(group))}")
    values = _read(path)
    parts = []
    for entry in values.get(DEFAULTS) or []:
        if not isinstance(entry, str):
            raise RrmError(f"{path}: defaults: of a {group} option names other {group} "
                           f"options, got {_plain(entry)!r}")
        parts.append(_option(group, entry, part=True))
    return merge_configs(*parts, _without_defaults(values))


def _without_defaults(values: DictConfig) -> DictConfig:
    return OmegaConf.masked_copy(values, [str(k) for k in values if k != DEFAULTS])


def _plain(entry: Any) -> Any:
    return OmegaConf.to_container(entry) if isinstance(entry, DictConfig) else entry
