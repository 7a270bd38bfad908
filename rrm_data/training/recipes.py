"""Training recipes: YAML files in ``recipes/`` that set the defaults of ``train-reward``."""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rrm_data.errors import RrmError
from rrm_data.resources import resource_dir


def recipe_names() -> list[str]:
    return sorted(p.stem for p in resource_dir("recipes").glob("*.yaml"))


def load_recipe(name: str) -> DictConfig:
    """A packaged recipe by name, or a recipe YAML file by path."""
    path = Path(name).expanduser()
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        path = resource_dir("recipes") / f"{name}.yaml"
    if not path.is_file():
        raise RrmError(f"unknown recipe '{name}'; available recipes: {', '.join(recipe_names())}")
    try:
        recipe = OmegaConf.load(path)
    except (OmegaConfBaseException, yaml.YAMLError) as exc:
        raise RrmError(f"{path}: invalid recipe YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(recipe, DictConfig):
        raise RrmError(f"{path}: a recipe must be a mapping of config keys")
    return recipe
