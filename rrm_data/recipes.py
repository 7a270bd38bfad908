"""Recipes: YAML files in ``recipes/`` that set a command's defaults.

A recipe's top-level section says which command it is for: ``model`` for
``train-reward``, ``sac`` for ``train-sac``.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rrm_data.errors import RrmError, first_line
from rrm_data.resources import resource_dir


def recipe_names(section: str) -> list[str]:
    """Packaged recipes that have the top-level ``section``."""
    return sorted(p.stem for p in resource_dir("recipes").glob("*.yaml")
                  if section in (yaml.safe_load(p.read_text()) or {}))


def load_recipe(name: str, section: str) -> DictConfig:
    """A packaged recipe by name, or a recipe YAML file by path, for the command of ``section``."""
    path = Path(name).expanduser()
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        path = resource_dir("recipes") / f"{name}.yaml"
    available = f"available recipes: {', '.join(recipe_names(section))}"
    if not path.is_file():
        raise RrmError(f"unknown recipe '{name}'; {available}")
    try:
        recipe = OmegaConf.load(path)
    except (OmegaConfBaseException, yaml.YAMLError) as exc:
        raise RrmError(f"{path}: invalid recipe YAML ({first_line(exc)})") from None
    if not isinstance(recipe, DictConfig):
        raise RrmError(f"{path}: a recipe must be a mapping of config keys")
    if section not in recipe:
        raise RrmError(f"recipe '{name}' is not for this command (it has no '{section}:' "
                       f"section); {available}")
    return recipe
