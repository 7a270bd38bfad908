"""Evaluate one or more rewards on a split's labelled pairs and write a report.

Agreement with the teacher (strict accuracy on non-tie pairs, 95% Wilson interval; ties
reported apart), per task and per policy bucket; log-loss, Brier and ECE of
P(A ≻ B) = σ(R̂a − R̂b); Pearson and Spearman of predicted vs true segment and episode
returns; AUROC of predicted episode return for success; EPIC and STARC distances to the true
reward and value-order correlation (``evaluation.coverage``); and, per teacher of the split,
agreement on pairs of two successful episodes' segments and Spearman/Kendall correlation with the
teacher's own quantity over those segments (``evaluation.ranking``). A residual model also
gets its prior part evaluated alone, side by side. Writes report.json, report.md and PNG figures
into `out` (default `<run>/eval-<data>-<split>-<teacher>`, or `reports/...` for true /
prior:<name>).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from rich.console import Console

from rrm_data.config import COUNT, DISCOUNT, doc
from rrm_data.dataset import format as fmt
from rrm_data.evaluation import plots
from rrm_data.evaluation.coverage import split_distances
from rrm_data.evaluation.ranking import segment_quality, success_ranking
from rrm_data.evaluation.refs import open_scored_split
from rrm_data.evaluation.report import build_report, rich_table, to_markdown
from rrm_data.evaluation.scoring import Scored, SplitData, load_split, score_rewards
from rrm_data.io import Kind, atomic_directory, write_json
from rrm_data.progress import console
from rrm_data.reward.resolve import resolve_reward
from rrm_data.workflows import RewardDataConfig

FIGURES = ("reliability.png", "returns.png", "rewards_over_time.png")


@dataclass
class Config(RewardDataConfig):
    split: str = field(default="test", metadata={"help": "preferences split to evaluate"})
    teacher: str = field(default="oracle", metadata={"help": "whose labels to compare with"})
    episodes: int = field(default=3, metadata=doc("episodes in the reward-over-time plot", COUNT))
    epic_transitions: int = field(default=2000, metadata=doc(
        "EPIC and STARC: at most this many of the split's transitions are compared", COUNT))
    epic_coverage: int = field(default=256, metadata=doc(
        "EPIC and STARC: states, actions and next states drawn for the coverage expectations",
        COUNT))
    discount: float = field(default=0.99, metadata=doc("EPIC's and STARC's γ (as SAC's)", DISCOUNT))
    seed: int = field(default=0, metadata={"help": "seed of EPIC's samples"})
    out: str | None = field(default=None, metadata={"help": "report directory "
                                                            "(default <run>/eval-<data>-"
                                                            "<split>-<teacher>)"})


def example_episodes(data: SplitData, count: int) -> list[int]:
    """Row positions of ``count`` episodes spread from the best to the worst true return."""
    order = np.argsort(-data.episodes["return"].to_numpy(), kind="stable")
    picks = np.linspace(0, len(order) - 1, num=min(count, len(order))).round().astype(int)
    return [int(order[i]) for i in dict.fromkeys(picks)]


def write_figures(root: Path, data: SplitData, scored: list[Scored], report: dict,
                  episodes: int) -> None:
    plots.reliability_diagram(report, root / FIGURES[0])
    views = {view: (getattr(s.segment, part), getattr(s.episode, part))
             for s in scored for view, part in s.views().items()}
    plots.returns_scatter(views, data.segments["return"].to_numpy(),
                          data.episodes["return"].to_numpy(),
                          data.episodes["success"].to_numpy(bool), root / FIGURES[1])
    reward = data.dataset.table("steps", columns=[fmt.REWARD]).column(fmt.REWARD).to_numpy()
    grid = []
    for row in example_episodes(data, episodes):
        ep = data.episodes.iloc[row]
        first, length = int(ep["index_from"]), int(ep["length"])
        true = reward[first:first + length]
        title = f"episode {ep['episode_index']} ({ep['policy']}, return {ep['return']:.1f})"
        grid.append([(f"{s.ref}: {title}", s.steps.window(first, length), true)
                     for s in scored])
    plots.rewards_over_time(grid, root / FIGURES[2])


def run(cfg: DictConfig) -> None:
    refs, out, data = open_scored_split(  # EPIC simulates the true reward from physics state
        cfg, kind=Kind.REPORT, name="eval-{stem}", check="skip-frames", teacher=cfg.teacher,
        with_first_read=fmt.SIM_COLUMNS)
    rewards = [resolve_reward(ref) for ref in refs]  # each loaded once, for scores and EPIC
    every = load_split(data.dataset, cfg.split, teacher=None)  # every teacher's pairs
    scored_every = score_rewards(refs, every, rewards)  # its episodes hold the teacher's
    scored = [Scored.of(s.ref, s.steps, data) for s in scored_every]
    quality = segment_quality(every, sorted(set(every.pairs["teacher"])))
    successful = {view: success_ranking(every, getattr(s.segment, part), quality)
                  for s in scored_every for view, part in s.views().items()}
    report = build_report(data, scored, split_distances(
        data, scored, rewards, cfg.epic_transitions, cfg.epic_coverage, cfg.discount, cfg.seed),
        successful)
    with atomic_directory(out, Kind.REPORT, cfg.overwrite) as tmp:
        write_json(tmp / "report.json", report)
        (tmp / "report.md").write_text(to_markdown(report, list(FIGURES)))
        write_figures(tmp, data, scored, report, cfg.episodes)
    Console().print(rich_table(report))
    console.print(f"wrote {out}/report.json, report.md and {len(FIGURES)} figures")


__all__ = ["Config", "run"]
