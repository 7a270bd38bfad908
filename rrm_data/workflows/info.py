"""Print a short summary of a dataset: what it holds, how good its episodes are, its labels.

Tasks, episodes, steps and segments; success rate and mean return per policy (as
``policy=`` names it, e.g. ``expert:0.5``); pairs and label balance per split and teacher,
with the queries each teacher skipped; cameras and size on disk. Reads meta/info.json and
only the columns it needs, so it stays fast on large datasets.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from omegaconf import DictConfig
from rich.console import Console
from rich.filesize import decimal
from rich.table import Table

from rrm_data.dataset.reader import DatasetDir, open_dataset
from rrm_data.sim.policies import policy_label
from rrm_data.workflows import DatasetConfig

LABEL_VALUES = (1.0, 0.0, 0.5)

Config = DatasetConfig


def run(cfg: DictConfig) -> None:
    dataset = open_dataset(cfg.data)
    console = Console()
    for part in (overview(dataset), policy_table(dataset), split_table(dataset),
                 preference_table(dataset)):
        console.print(part)
        console.print()


def overview(dataset: DatasetDir) -> Table:
    """Key facts, one per line."""
    info = dataset.info
    counts = info.counts
    segment_length = dataset.table("segments", columns=["length"]).column("length").to_numpy()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows = {
        "dataset": f"{info.name} ({info.format}) at {dataset.root}",
        "tasks": ", ".join(info.tasks),
        "episodes": f"{counts.episodes} "
                    f"({counts.successes / max(counts.episodes, 1):.0%} successful)",
        "steps": f"{_num_rows(dataset, 'steps')} at {info.fps:g} fps",
        "segments": f"{len(segment_length)} of "
                    f"{'/'.join(map(str, np.unique(segment_length)))} steps",
        "pairs": ", ".join(f"{split} {n}" for split, n in sorted(counts.pairs.items(),
                                                                 reverse=True)),
        "cameras": ", ".join(info.cameras) or "none (state only)",
        "disk": decimal(sum(p.stat().st_size for p in dataset.root.rglob("*") if p.is_file())),
    }
    for key, value in rows.items():
        grid.add_row(key, value)
    return grid


def _num_rows(dataset: DatasetDir, table: str) -> int:
    """Rows of a table's train split, from the Parquet footers alone."""
    return sum(dataset.parquet_file(path).metadata.num_rows for path in dataset.files(table))


def policy_table(dataset: DatasetDir) -> Table:
    """Episodes, success rate and mean return per policy and noise level."""
    episodes = dataset.table("episodes", columns=["policy", "policy_noise", "success", "return"])
    groups = (episodes.group_by(["policy", "policy_noise"])
              .aggregate([("success", "count"), ("success", "mean"), ("return", "mean")])
              .sort_by([("policy", "ascending"), ("policy_noise", "ascending")]).to_pylist())
    table = Table(title="episodes by policy", title_justify="left")
    for name in ("policy", "episodes", "success", "mean return"):
        table.add_column(name, justify="left" if name == "policy" else "right")
    for g in groups:
        table.add_row(policy_label(g["policy"], g["policy_noise"]), str(g["success_count"]),
                      f"{g['success_mean']:.0%}", f"{g['return_mean']:.1f}")
    success = episodes.column("success").to_numpy()
    returns = episodes.column("return").to_numpy()
    table.add_section()
    table.add_row("all", str(episodes.num_rows), f"{success.mean():.0%}", f"{returns.mean():.1f}")
    return table


def split_table(dataset: DatasetDir) -> Table:
    """Per split: distinct pairs and the segments and episodes they draw on, so a statistic's
    number of independent things can be read off."""
    segments = dataset.table("segments", columns=["segment_index", "episode_index"])
    episode_of = dict(zip(segments.column("segment_index").to_pylist(),
                          segments.column("episode_index").to_pylist(), strict=True))
    table = Table(title="pairs per split (what statistics count)", title_justify="left")
    for name in ("split", "pairs drawn", "distinct pairs", "segments", "episodes"):
        table.add_column(name, justify="left" if name == "split" else "right")
    for split in sorted(dataset.splits("preferences"), reverse=True):
        prefs = dataset.preferences(split, columns=["segment_a", "segment_b"])
        a, b = (prefs.column(c).to_numpy() for c in ("segment_a", "segment_b"))
        pairs = {(min(x, y), max(x, y)) for x, y in zip(a.tolist(), b.tolist(), strict=True)}
        used = set(a.tolist()) | set(b.tolist())
        table.add_row(split, str(dataset.info.counts.pairs.get(split, 0)), str(len(pairs)),
                      str(len(used)),
                      str(len({episode_of[s] for s in used if s in episode_of})))
    return table


def preference_table(dataset: DatasetDir) -> Table:
    """Label rows, skipped queries and label balance per split and teacher."""
    skipped = dataset.info.counts.skipped
    table = Table(title="preferences (label = P(segment_a preferred))", title_justify="left")
    for name in ("split", "teacher", "labels", "skipped", "1", "0", "0.5"):
        table.add_column(name, justify="left" if name in ("split", "teacher") else "right")
    for split in sorted(dataset.splits("preferences"), reverse=True):
        prefs = dataset.preferences(split, columns=["label", "teacher"])
        split_skipped = skipped.get(split, {})
        by_teacher = _labels_by_teacher(prefs)
        for teacher in [*by_teacher, *(t for t in split_skipped if t not in by_teacher)]:
            labels = by_teacher.get(teacher, np.empty(0))
            balance = [f"{np.mean(labels == v):.0%}" if len(labels) else "-" for v in LABEL_VALUES]
            table.add_row(split, teacher, str(len(labels)), str(split_skipped.get(teacher, 0)),
                          *balance)
    return table


def _labels_by_teacher(prefs: pa.Table) -> dict[str, np.ndarray]:
    """Labels of each teacher, teachers in order of first appearance."""
    encoded = prefs.column("teacher").combine_chunks().dictionary_encode()
    codes = encoded.indices.to_numpy()
    labels = prefs.column("label").to_numpy()
    return {name: labels[codes == i] for i, name in enumerate(encoded.dictionary.to_pylist())}


__all__ = ["Config", "overview", "policy_table", "preference_table", "run", "split_table"]
