"""``meta/info.json`` as a typed object: what a dataset is, how it was made, what it holds.

Every command reads a dataset's description through :class:`DatasetInfo`; unknown keys are
carried through untouched (the format lets later tools add what they record), and a file
that is not a usable description is refused with one line before any work starts.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrm_data import FORMAT_VERSION
from rrm_data.errors import RrmError, first_line

INFO_FILE = "meta/info.json"

PerSplit = dict[str, int]
PerSplitTeacher = dict[str, dict[str, int]]
Features = dict[str, dict[str, dict[str, Any]]]  # table -> column -> {dtype, shape, names}


class InfoUnreadable(RrmError):
    """``meta/info.json`` is missing or is not JSON; ``reason`` says which, without the path
    (the validator reports it at the file)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def read_info_json(root: Path) -> Any:
    """The parsed ``meta/info.json`` of the dataset at ``root``: the one place the file is
    read (typed by :meth:`DatasetInfo.from_json`; validated against its schema by validate)."""
    path = root / INFO_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        raise InfoUnreadable(f"{root} is not an rrm-data dataset (no {INFO_FILE})",
                             f"missing: {root} is not an rrm-data dataset") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = f"invalid JSON ({first_line(exc)})"
        raise InfoUnreadable(f"{path}: {reason}", reason) from None


@dataclass
class Counts:
    """Rows and labels of a dataset (pairs per split count skipped queries too)."""

    episodes: int
    steps: int
    segments: int
    successes: int
    pairs: PerSplit
    labels: PerSplitTeacher
    skipped: PerSplitTeacher


@dataclass
class DatasetInfo:
    """The typed content of ``meta/info.json``; ``extra`` keeps keys this version does not know."""

    name: str
    env: dict[str, str]
    tasks: list[str]
    fps: float
    cameras: list[str]
    priors: dict[str, str]
    teachers: dict[str, dict[str, float]]
    label_convention: str
    counts: Counts
    rrm_data_version: str
    format: str = FORMAT_VERSION
    seed: int | None = None
    shard: str | None = None
    policies: list[dict[str, Any]] = field(default_factory=list)
    labelling: dict[str, Any] = field(default_factory=dict)
    collection: dict[str, Any] = field(default_factory=dict)  # collect's settings
    features: Features = field(default_factory=dict)
    splits: dict[str, list[str]] = field(default_factory=dict)
    embeddings: dict[str, dict[str, Any]] = field(default_factory=dict)
    render: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any, where: str = "meta/info.json") -> DatasetInfo:
        """Read a parsed info.json; refuse one that is not an rrm-data/1 description."""
        if not isinstance(data, dict):
            raise RrmError(f"{where}: expected a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT_VERSION:
            raise RrmError(f"{where}: format {data.get('format')!r}, expected {FORMAT_VERSION!r}")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        missing_default = dataclasses.MISSING
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is missing_default and f.default_factory is missing_default]
        missing = [k for k in required if k not in data]
        if missing:
            raise RrmError(f"{where}: lacks {', '.join(missing)}")
        counts = data["counts"]
        count_keys = [f.name for f in dataclasses.fields(Counts)]
        if not isinstance(counts, dict) or any(k not in counts for k in count_keys):
            raise RrmError(f"{where}: counts must hold {', '.join(count_keys)}")
        values = {k: v for k, v in data.items() if k in known}
        values["counts"] = Counts(**{k: counts[k] for k in count_keys})
        values["render"] = data.get("render")
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})

    @classmethod
    def read(cls, root: Path) -> DatasetInfo:
        """The description of the dataset at ``root``."""
        return cls.from_json(read_info_json(root), str(root / INFO_FILE))

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to meta/info.json."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("extra", "counts")}
        out["counts"] = dataclasses.asdict(self.counts)
        if not self.embeddings:
            del out["embeddings"]
        if self.render is None:
            del out["render"]
        return {**self.extra, **out}

    def replace(self, **changes: Any) -> DatasetInfo:
        """A copy with some fields changed (a new version of the dataset)."""
        return dataclasses.replace(self, **changes)
