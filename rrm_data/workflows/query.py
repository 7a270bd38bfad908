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

import numpy as np
from omegaconf import DictConfig

from rrm_data.dataset.reader import open_dataset
from rrm_data.dataset.validate import check_dataset
from rrm_data.dataset.writer import new_version_target, write_dataset
from rrm_data.errors import RrmError
from rrm_data.labels import query as q
from rrm_data.labels.acquisition import STRATEGY_HELP, check_strategy
from rrm_data.progress import console
from rrm_data.reward.artifact import load_reward


@dataclass
class Config:
    data: str | None = field(default=None, metadata={"help": "dataset directory"})
    reward: str | None = field(default=None, metadata={
        "help": "reward run or artifact whose ensemble scores the pool (not for uniform)"})
    strategy: str = field(default="disagreement", metadata={"help": STRATEGY_HELP})
    n: int = field(default=50, metadata={"help": "pairs to choose"})
    pool: int | None = field(default=None, metadata={"help": "candidate pairs (default 10 × n)"})
    seed: int = field(default=0, metadata={"help": "seed of the candidate pool"})
    out: str | None = field(default=None, metadata={"help": "new dataset version (default: "
                                                            "replace data in place)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a dataset at out"})


def run(cfg: DictConfig) -> None:
    if cfg.data is None:
        raise RrmError("data= is required: a dataset directory")
    check_strategy(cfg.strategy, cfg.reward)
    if cfg.n < 1:
        raise RrmError(f"n must be at least 1, got {cfg.n}")
    dataset = open_dataset(cfg.data)
    check_dataset(dataset.root, frames=False)  # refuse what validate refuses, before work
    out, in_place = new_version_target(dataset, cfg.out, cfg.overwrite)
    reward = None if cfg.reward is None else load_reward(cfg.reward)
    if cfg.pool is not None and cfg.n > cfg.pool:
        raise RrmError(f"n={cfg.n} is larger than pool={cfg.pool}")

    segments = q.train_segments(dataset)
    i, j = q.unlabelled_pairs(segments, q.labelled_keys(dataset))
    pool = cfg.pool if cfg.pool is not None else min(10 * cfg.n, len(i))
    a, b = q.candidate_pairs(i, j, pool, np.random.default_rng(cfg.seed))
    returns = None if reward is None else q.member_returns(reward, dataset, segments)
    if returns is not None:
        check_strategy(cfg.strategy, f"reward {cfg.reward}", len(returns))
    chosen, score, p_a = q.choose_pairs(cfg.strategy, a, b, returns, cfg.n)
    table = q.queries_table(segments.ids[a[chosen]], segments.ids[b[chosen]], cfg.strategy,
                            score, p_a)
    tables = dataset.tables()
    tables[q.QUERIES] = {"train": table}
    info = dataset.info.replace(extra={**dataset.info.extra, "queries": {
        "strategy": cfg.strategy, "n": cfg.n, "pool": pool, "seed": cfg.seed,
        "reward": cfg.reward}})
    write_dataset(out, tables, info, overwrite=in_place or cfg.overwrite)
    console.print(f"wrote {out}: {table.num_rows} queries ({cfg.strategy}) from a pool of "
                  f"{pool} pairs")


__all__ = ["Config", "run"]
