"""Hydra-style ``key=value`` overrides on top of typed dataclass defaults (OmegaConf).

Every command declares a dataclass; the CLI merges the user's overrides into it, so
types are checked and unknown keys are refused with the closest valid names.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, cast

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
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


@dataclass(frozen=True)
class Range:
    """The numbers a setting accepts, declared once next to it (``doc(..., Range(1))``).

    NaN and ±inf are refused everywhere, and integers must fit in 64 bits, so no library
    downstream meets them; ``low``/``high`` bound the value (open when ``*_open``).
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False  # for free dict keys; typed fields have their type checked already

    def text(self) -> str:
        if self.high is None:
            if self.low is None:
                return "be a finite number"
            return f"be {'greater than' if self.low_open else 'at least'} {_text(self.low)}"
        low = "-inf" if self.low is None else _text(self.low)
        return (f"lie in {'(' if self.low_open else '['}{low}, {_text(self.high)}"
                f"{')' if self.high_open else ']'}")

    def holds(self, value: float) -> bool:
        return math.isfinite(value) and not (
            self.low is not None and (value <= self.low if self.low_open else value < self.low)
            or self.high is not None and (value >= self.high if self.high_open
                                          else value > self.high))


FINITE = Range()
COUNT = Range(1, integer=True)  # how many of something: at least one
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, low_open=True)  # learning rates, sizes in MB
FRACTION = Range(0, 1)  # probabilities and shares
HELD_OUT = Range(0, 1, high_open=True)  # a share held out: all of it leaves nothing to train
DISCOUNT = Range(0, 1, low_open=True)  # γ, and τ of soft target updates
THREADS = Range(1, 1024, integer=True)  # torch CPU threads
SEED32 = Range(0, 2**32 - 1, integer=True)  # seeds of numpy's np.random.seed (SB3, Lightning)
INT64 = 2**63


def _text(number: float) -> str:
    """5 for 5.0 (as the user typed it), 0.001 and nan as they are."""
    if isinstance(number, float) and number.is_integer() and abs(number) < INT64:
        return str(int(number))
    return str(number)


def doc(text: str, range: Range | None = None, *, nonempty: bool = False,
        strings: bool = False, keys: Mapping[str, Range] | None = None) -> dict[str, Any]:
    """A config field's help text, shown by ``rrm-data COMMAND --help``, and what it accepts:
    ``range`` of a number (of each element of a list of numbers), ``nonempty`` for a list
    that must name something, ``strings`` for an untyped field that holds a name or a list
    of names, ``keys`` the ranges of known numeric keys of a free ``dict`` section (a
    recipe's model or trainer options). ``build_config`` checks them all (``check_fields``)."""
    meta: dict[str, Any] = {"help": text}
    for name, value in (("range", range), ("nonempty", nonempty), ("strings", strings),
                        ("keys", keys)):
        if value:
            meta[name] = value
    return meta


def check_fields(config_type: type, values: Any, prefix: str = "") -> None:
    """Refuse, with one line naming the key, any value outside its field's declared range
    (every number finite and within 64 bits), an empty list declared ``nonempty`` and a
    non-name in a ``strings`` field; ``values`` is a config or a dataclass instance."""
    hints = typing.get_type_hints(config_type)
    for f in dataclasses.fields(config_type):
        name, value, meta = f"{prefix}{f.name}", getattr(values, f.name), f.metadata
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind) and isinstance(kind, type):
            check_fields(kind, value, f"{name}.")
        elif isinstance(value, Mapping | DictConfig) and not meta.get("strings"):
            for key, bound in meta.get("keys", {}).items():
                if key in value:
                    _check_number(f"{name}.{key}", value[key], bound)
        elif _is_list(value):
            if meta.get("nonempty") and len(value) == 0:
                raise RrmError(f"{name} is empty; name at least one")
            for i, item in enumerate(value):
                _check_item(f"{name}[{i}]", item, meta)
        elif value is not None:
            _check_item(name, value, meta)


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple | ListConfig)


def _check_item(name: str, value: Any, meta: Mapping[str, Any]) -> None:
    """One value (or list element) of a field that is not a dataclass or a dict."""
    if meta.get("strings"):
        if not isinstance(value, str):
            raise RrmError(f"{name} must be a name or a list of names, got {value!r}")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(name, value, meta.get("range", FINITE))


def _check_number(name: str, value: Any, bound: Range) -> None:
    """``value`` is a number within ``bound`` (an integer within 64 bits)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RrmError(f"{name} must be a number, got {value!r}")
    if bound.integer and not isinstance(value, int):
        raise RrmError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, int) and not -INT64 <= value < INT64:
        raise RrmError(f"{name} must fit in 64 bits, got {value}")
    if not bound.holds(value):
        raise RrmError(f"{name} must {bound.text()}, got {_text(value)}")


def build_config(defaults: Any, overrides: list[str] | DictConfig) -> DictConfig:
    """Merge overrides into a structured default config, with clear errors on bad keys."""
    base = OmegaConf.structured(defaults)
    extra = parse_overrides(overrides) if isinstance(overrides, list) else overrides
    _check_keys(base, extra, prefix="")
    cfg = merge_configs(base, extra)
    check_fields(type(defaults), cfg)
    return cfg


def merge_configs(*configs: DictConfig) -> DictConfig:
    """``OmegaConf.merge`` of dict configs, which is a dict config (typed as any config);
    a value of the wrong type is refused in one line."""
    try:
        return cast(DictConfig, OmegaConf.merge(*configs))
    except (OmegaConfBaseException, TypeError) as exc:  # TypeError: a mapping into a list
        key = getattr(exc, "full_key", None)
        where = f" for '{key}'" if key else ""
        raise RrmError(f"invalid config value{where}: {first_line(exc)}") from None


def config_dict(cfg: DictConfig) -> dict[str, Any]:
    """A dict config (section) resolved into a plain dict with string keys."""
    return cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))


def changed_keys(old: Any, new: Any, ignored: Collection[str] = (), prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain configs (``config_dict``), sorted;
    a key missing on one side reads as None; top-level keys in ``ignored`` are not compared."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [prefix.rstrip(".")]
    keys = sorted({str(k) for k in (*old, *new)} - set(ignored))
    return [k for key in keys for k in changed_keys(old.get(key), new.get(key), (),
                                                    f"{prefix}{key}.")]


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


