"""Workflows: one module per command, composing the library parts."""

from dataclasses import dataclass, field


@dataclass
class DatasetConfig:
    """The config of commands that read one dataset and nothing else (info, validate)."""

    data: str = field(default="data/button-press",
                      metadata={"help": "dataset directory (or Hub dataset id)"})
