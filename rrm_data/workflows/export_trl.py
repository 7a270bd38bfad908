"""Write a chosen/rejected view of one teacher's preferences, for TRL-style reward trainers.

Each row names the preferred segment (`chosen`) and the other one (`rejected`) by their
`segment_index` in the segments table, with `pair_index` and the original `label`.
Ties (label 0.5) are dropped with `ties=drop`; with `ties=margin` they are kept and a
`margin` column holds |2·label − 1|: 1 for a clear preference, 0 for "equally good"
(a tie keeps segment_a as `chosen`). The Parquet file is written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from omegaconf import DictConfig

from rrm_data.config import build_config
from rrm_data.dataset.reader import open_dataset
from rrm_data.errors import RrmError
from rrm_data.io import Kind, atomic_file, check_out, file_metadata
from rrm_data.progress import console

TIES = ("drop", "margin")


@dataclass
class Config:
    data: str = field(default="data/button-press",
                      metadata={"help": "dataset directory or Hub dataset id"})
    split: str = field(default="train", metadata={"help": "preferences split: train or test"})
    teacher: str = field(default="oracle", metadata={"help": "whose labels to export"})
    ties: str = field(default="drop", metadata={"help": "drop | margin (keep ties, add a "
                                                        "margin column)"})
    out: str | None = field(default=None, metadata={"help": "Parquet file to write (default: "
                                                            "<name>-<split>-<teacher>.trl"
                                                            ".parquet)"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing out= file"})


def make_config(overrides: list[str]) -> DictConfig:
    cfg = build_config(Config(), overrides)
    if cfg.ties not in TIES:
        raise RrmError(f"ties must be one of {', '.join(TIES)}, got '{cfg.ties}'")
    return cfg


def chosen_rejected(preferences: pa.Table, ties: str) -> pa.Table:
    """The chosen/rejected view of preference rows (label = P(segment_a ≻ segment_b))."""
    label = preferences.column("label").to_numpy()
    a = preferences.column("segment_a").to_numpy()
    b = preferences.column("segment_b").to_numpy()
    keep = label != 0.5 if ties == "drop" else np.ones(len(label), bool)
    a_wins = label >= 0.5
    columns = {
        "pair_index": preferences.column("pair_index").to_numpy()[keep],
        "chosen": np.where(a_wins, a, b)[keep],
        "rejected": np.where(a_wins, b, a)[keep],
        "label": label[keep],
    }
    if ties == "margin":
        columns["margin"] = np.abs(2.0 * label - 1.0).astype(np.float32)[keep]
    return pa.table(columns)


def run(cfg: DictConfig) -> None:
    dataset = open_dataset(cfg.data, check="skip-frames")
    out = Path(cfg.out or f"{dataset.info.name}-{cfg.split}-{cfg.teacher}.trl.parquet")
    check_out(out, Kind.TRL_VIEW, cfg.overwrite, inputs={"data": cfg.data})
    preferences = dataset.preferences(cfg.split)
    teachers = sorted(set(preferences.column("teacher").to_pylist()))
    if cfg.teacher not in teachers:
        raise RrmError(f"no labels of teacher '{cfg.teacher}' in the {cfg.split} split; "
                       f"it has: {', '.join(teachers)}")
    rows = preferences.filter(pc.equal(preferences.column("teacher"), cfg.teacher))
    view = chosen_rejected(rows, cfg.ties)
    with atomic_file(out, Kind.TRL_VIEW, cfg.overwrite) as tmp:
        pq.write_table(view.replace_schema_metadata(file_metadata(Kind.TRL_VIEW)), tmp)
    console.print(f"wrote {out}: {view.num_rows} pairs of teacher {cfg.teacher} "
                  f"({rows.num_rows - view.num_rows} ties dropped)")


__all__ = ["Config", "chosen_rejected", "make_config", "run"]
