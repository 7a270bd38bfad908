"""Choose the next pairs to label and write them into the dataset as its `queries` table.

A candidate pool of `pool` unlabelled pairs (default 10 × n, at most all of them) of train
segments from two different episodes is drawn at random (`seed`); `strategy=uniform` keeps
the first `n`, `disagreement` the `n` with the largest std over the reward ensemble's
members of P_k(A ≻ B), `entropy` those with the largest mean over members of its binary
entropy (labels/acquisition, shared with train-online). The table replaces any earlier
`queries` table, in a new version of the dataset (at `out`, or in place).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from rrm_data.config import COUNT, NON_NEGATIVE, doc
from rrm_data.dataset.reader import DatasetDir, open_dataset
from rrm_data.dataset.validate import check_dataset
from rrm_data.dataset.writer import new_version, write_dataset
from rrm_data.errors import RrmError
from rrm_data.labels import query as q
from rrm_data.labels.acquisition import STRATEGY_HELP, check_strategy
from rrm_data.progress import console
from rrm_data.reward.resolve import check_reward_tasks, resolve_reward, reward_ref


@dataclass
class Config:
    data: str | None = field(default=None, metadata={"help": "dataset directory"})
    reward: Any = field(default=None, metadata={
        "help": "reward (a run or artifact, or any reward reference) whose ensemble scores "
                "the pool (not for uniform)"})
    strategy: str = field(default="disagreement", metadata={"help": STRATEGY_HELP})
    n: int = field(default=50, metadata=doc("pairs to choose", COUNT))
    pool: int | None = field(default=None, metadata=doc("candidate pairs (default 10 × n)", COUNT))
    seed: int = field(default=0, metadata=doc("seed of the candidate pool", NON_NEGATIVE))
    out: str | None = field(default=None, metadata={"help": "new dataset version (default: "
                                                            "replace data in place)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a dataset at out"})
    allow_other_task: bool = field(default=False, metadata={
        "help": "use a reward trained on other tasks than the dataset's"})


def run(cfg: DictConfig) -> None:
    if cfg.data is None:
        raise RrmError("data= is required: a dataset directory")
    ref = None if cfg.reward is None else reward_ref(cfg.reward)
    check_strategy(cfg.strategy, ref)
    if ref == "true" or (ref or "").startswith("prior:"):
        kind = "the true reward" if ref == "true" else "a prior"
        raise RrmError(f"query needs a trained reward run; `{ref}` is {kind}, which has no "
                       "ensemble to score the pool with")
    with new_version(open_dataset(cfg.data), cfg.out, cfg.overwrite,
                     inputs={"reward": ref}) as target:
        write_queries(cfg, ref, target.dataset, target.out, target.overwrite)


def write_queries(cfg: DictConfig, ref: str | None, dataset: DatasetDir, out: Path,
                  overwrite: bool) -> None:
    """Choose the queries from ``dataset`` (read under the lock) and write the new version."""
    check_dataset(dataset, frames=False)  # refuse what validate refuses, before work
    if ref is not None:
        check_reward_tasks([ref], dataset.info.tasks, cfg.allow_other_task)
    reward = None if ref is None else resolve_reward(ref)
    if cfg.pool is not None and cfg.n > cfg.pool:
        raise RrmError(f"n={cfg.n} is larger than pool={cfg.pool}")

    segments = q.train_segments(dataset)
    i, j = q.unlabelled_pairs(segments, q.labelled_keys(dataset))
    if cfg.n > len(i):
        raise RrmError(f"n={cfg.n} asks for more than the {len(i)} unlabelled pairs of train "
                       f"segments from two different episodes in {dataset.root}")
    pool = cfg.pool if cfg.pool is not None else min(10 * cfg.n, len(i))
    a, b = q.candidate_pairs(i, j, pool, np.random.default_rng(cfg.seed))
    returns = None if reward is None else q.member_returns(reward, dataset, segments)
    if returns is not None:
        check_strategy(cfg.strategy, f"reward {ref}", len(returns))
    chosen, score, p_a = q.choose_pairs(cfg.strategy, a, b, returns, cfg.n)
    table = q.queries_table(segments.ids[a[chosen]], segments.ids[b[chosen]], cfg.strategy,
                            score, p_a)
    tables = dataset.tables()
    tables[q.QUERIES] = {"train": table}
    info = dataset.info.replace(extra={**dataset.info.extra, "queries": {
        "strategy": cfg.strategy, "n": cfg.n, "pool": pool, "seed": cfg.seed,
        "reward": ref}})
    write_dataset(out, tables, info, overwrite=overwrite)
    console.print(f"wrote {out}: {table.num_rows} queries ({cfg.strategy}) from a pool of "
                  f"{pool} pairs")

__all__ = ["Config", "run"]
