"""Workflows: one module per command, composing the library parts."""

from dataclasses import dataclass, field
from typing import Any

from rrm_data.config import doc


@dataclass
class DatasetConfig:
    """The config of commands that read one dataset and nothing else (info, validate)."""

    data: str = field(default="data/button-press",
                      metadata={"help": "dataset directory (or Hub dataset id)"})


@dataclass
class RewardDataConfig:
    """The config shared by commands that score rewards on a dataset (evaluate, score, gallery)."""

    reward: Any = field(default=None, metadata=doc(
        "run dir, reward artifact, 'true' or 'prior:<name>'; several as [a,b]", nonempty=True))
    data: str | None = field(default=None,
                             metadata={"help": "dataset directory (or Hub dataset id)"})
    overwrite: bool = field(default=False,
                            metadata={"help": "replace an earlier output of this command at out"})
    allow_other_task: bool = field(default=False, metadata={
        "help": "use a reward trained on other tasks than the dataset's"})
