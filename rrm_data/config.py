"""Hydra-style ``key=value`` overrides on top of typed dataclass defaults (OmegaConf).

Every command declares a dataclass; the CLI merges the user's overrides into it, so
types are checked and unknown keys are refused with the closest valid names.
"""

from __future__ import annotations

import difflib
from typing import Any, cast

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rrm_data.errors import RrmError, first_line


def parse_overrides(overrides: list[str]) -> DictConfig:
    """Parse ``key=value`` strings (values in YAML syntax, lists as ``[a,b]``)."""
    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep or not key or key.strip() != key:
            raise RrmError(f"malformed override '{item}': expected key=value")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except (OmegaConfBaseException, yaml.YAMLError) as exc:
        raise RrmError(f"malformed override: {first_line(exc)}") from None


def doc(text: str) -> dict[str, str]:
    """A config field's help text, shown by ``rrm-data COMMAND --help``."""
    return {"help": text}


def build_config(defaults: Any, overrides: list[str] | DictConfig) -> DictConfig:
    """Merge overrides into a structured default config, with clear errors on bad keys."""
    base = OmegaConf.structured(defaults)
    extra = parse_overrides(overrides) if isinstance(overrides, list) else overrides
    _check_keys(base, extra, prefix="")
    try:
        return merge_configs(base, extra)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        where = f" for '{key}'" if key else ""
        raise RrmError(f"invalid config value{where}: {first_line(exc)}") from None


def merge_configs(*configs: DictConfig) -> DictConfig:
    """``OmegaConf.merge`` of dict configs, which is a dict config (typed as any config)."""
    return cast(DictConfig, OmegaConf.merge(*configs))


def config_dict(cfg: DictConfig) -> dict[str, Any]:
    """A dict config (section) resolved into a plain dict with string keys."""
    return cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))


def _check_keys(base: DictConfig, extra: DictConfig, prefix: str) -> None:
    """Refuse keys that the command does not know, suggesting close matches."""
    is_open = _is_free_dict(base)
    for key in extra:
        name = f"{prefix}{key!s}"
        if key not in base:
            if is_open:
                continue
            close = _close_keys(str(key), [str(k) for k in base])
            hint = f" (did you mean: {', '.join(prefix + c for c in close)})" if close else ""
            raise RrmError(f"unknown config key '{name}'{hint}")
        child, sub = base._get_node(key), extra[key]
        if isinstance(child, DictConfig) and isinstance(sub, DictConfig):
            _check_keys(child, sub, prefix=f"{name}.")


def _close_keys(key: str, known: list[str]) -> list[str]:
    """Similar spellings, and keys that hold ``key`` as a word (size → image_size)."""
    close = difflib.get_close_matches(key, known, n=3)
    return (close + [k for k in known if k not in close and key in k.split("_")])[:3]


def _is_free_dict(node: DictConfig) -> bool:
    """A ``dict[str, Any]`` field accepts any key (teacher parameters, trainer options)."""
    return node._metadata.object_type in (None, dict)


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


