"""Score every labelled pair of a split with one or more rewards; write the rows as Parquet.

One row per (reward, pair, teacher), like RewardBench's per-row output: `reward`,
`pair_index`, `teacher`, `segment_a`, `segment_b`, `score_a`, `score_b` (predicted segment
returns), `p_a` = σ(score_a − score_b), `label` and `correct` (null on tie labels). Written
atomically to `out` (default `<run>/scores-<data>-<split>[-<teacher>].parquet`, or
`reports/...`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig

from rrm_data.evaluation.refs import open_scored_split
from rrm_data.evaluation.scoring import SplitData, pair_frame, score_steps
from rrm_data.io import Kind, atomic_file, file_metadata
from rrm_data.progress import console
from rrm_data.reward.base import RewardFunction
from rrm_data.reward.resolve import resolve_reward
from rrm_data.workflows import RewardDataConfig


@dataclass
class Config(RewardDataConfig):
    split: str = field(default="test", metadata={"help": "preferences split to score"})
    teacher: str | None = field(default=None, metadata={"help": "only this teacher's labels "
                                                                "(default: every teacher)"})
    out: str | None = field(default=None, metadata={"help": "Parquet file to write "
                                                            "(default <run>/scores-<data>-"
                                                            "<split>[-<teacher>].parquet)"})


def score_pairs(reward: RewardFunction, data: SplitData, ref: str | None = None) -> pd.DataFrame:
    """Per-pair rows of one reward on a split (only the segments' steps are scored)."""
    steps = score_steps(reward, data, whole_episodes=False)
    segment = steps.window_sums(data.segments["first"], data.segments["length"]).total
    frame = pair_frame(data, segment)
    frame.insert(0, "reward", ref or reward.name)
    return frame


def write_parquet(frame: pd.DataFrame, out: Path, overwrite: bool = False) -> None:
    """Write ``frame`` as one Parquet file that appears at ``out`` whole or not at all."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with atomic_file(out, Kind.SCORES, overwrite) as tmp:
        pq.write_table(table.replace_schema_metadata(file_metadata(Kind.SCORES)), tmp)


def run(cfg: DictConfig) -> None:
    refs, out, data = open_scored_split(cfg, kind=Kind.SCORES, name="scores-{stem}.parquet",
                                        check="skip-frames", teacher=cfg.teacher)
    rewards = [resolve_reward(ref) for ref in refs]
    frame = pd.concat([score_pairs(reward, data, ref) for ref, reward in
                       zip(refs, rewards, strict=True)], ignore_index=True)
    write_parquet(frame, out, cfg.overwrite)
    console.print(f"wrote {out}: {len(frame)} rows")
    for (ref, teacher), rows in frame.groupby(["reward", "teacher"], sort=True):
        decisive = rows["correct"].dropna()
        console.print(f"  {ref} vs {teacher}: agreement on non-tie labels "
                      f"{decisive.mean():.3f} (n={len(decisive)} pairs)")
