"""Check a dataset against the rrm-data/1 format.

Checks meta/info.json and every table against the JSON Schemas in `schemas/`, that
every Parquet file reads, that segments and pairs point at rows that exist (segments
inside their episode, steps where their episode says), value ranges (labels 0, 0.5 or
1, known teachers: scripted, `human` or `human:<annotator>`, confidence 1-3 on human rows
and null on scripted ones, finite observations, actions, rewards and priors, oracle labels
on every test pair), the optional `queries` table (existing segments, no self-pairs, no
pair twice, known strategies) and the counts in meta/info.json. Prints one line and exits 0 when
the dataset is valid; otherwise prints the first problem with its file, row and column
and exits 2.
"""

from __future__ import annotations

from omegaconf import DictConfig

from rrm_data import FORMAT_VERSION
from rrm_data.dataset.reader import open_dataset
from rrm_data.workflows import DatasetConfig

Config = DatasetConfig


def run(cfg: DictConfig) -> None:
    dataset = open_dataset(cfg.data, check="full")
    counts = dataset.info.counts
    print(f"ok: {cfg.data} is a valid {FORMAT_VERSION} dataset ({counts.episodes} episodes, "
          f"{counts.steps} steps, {counts.segments} segments, "
          f"{sum(counts.pairs.values())} pairs)")


__all__ = ["Config", "run"]
