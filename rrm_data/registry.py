"""Named parts a config can ask for (priors, teachers, policy kinds, networks, encoders, …).

Modelled on timm's ``register_model``: adding a part is one decorated definition, and
every unknown name is refused with the same line, listing what is known and what is close.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from rrm_data.errors import RrmError

T = TypeVar("T")


def unknown_name(kind: str, name: str, known: list[str], listed: str | None = None) -> str:
    """"unknown <kind> '<name>'; known: …; did you mean …?" — the one line for every unknown
    name; ``listed`` replaces the list of known names when it is too long to print."""
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown {kind} '{name}'; known: {listed or ', '.join(known)}{hint}"


class Registry(Generic[T]):
    """Entries of one ``kind`` by name, in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@PRIORS.register("gripper_object")`` above the definition."""
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = entry
            return entry
        return add

    def get(self, name: str) -> T:
        """The entry called ``name``; an unknown name is one clear line."""
        if name not in self._entries:
            raise RrmError(self.unknown(name))
        return self._entries[name]

    def unknown(self, name: str) -> str:
        """The message for an unknown name: what is known and what is close."""
        return unknown_name(self.kind, name, list(self._entries))

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
