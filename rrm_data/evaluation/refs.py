"""Evaluate rewards on held-out preference pairs: metrics, scoring, reports, figures.

Shared by ``rrm-data evaluate``, ``score`` and ``gallery``: which rewards a command was
given (``reward=a`` or ``reward=[a,b]``) and where its output goes by default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, ListConfig

from rrm_data.dataset.reader import Check, DatasetDir, open_dataset
from rrm_data.errors import RrmError
from rrm_data.evaluation.scoring import SplitData, load_split
from rrm_data.io import Kind, check_out
from rrm_data.reward.resolve import check_reward_tasks, reward_ref


def reward_refs(value: str | Sequence[str] | None) -> list[str]:
    """The reward references of a ``reward=`` option, as a list (one or more)."""
    if value is None:
        raise RrmError("reward= is required: a run directory, a reward artifact, "
                       "'true' or 'prior:<name>' (several as reward=[a,b])")
    values = list(value) if isinstance(value, list | tuple | ListConfig) else [value]
    refs = [reward_ref(v) for v in values]
    if not refs:
        raise RrmError("reward= is an empty list")
    return refs


def run_dir(ref: str) -> Path | None:
    """The run directory a learned-reward reference belongs to (None for true / prior:...)."""
    path = Path(ref).expanduser()
    if not path.exists():
        return None
    return path.parent if path.is_file() or path.name == "reward" else path


def _slug(ref: str) -> str:
    run = run_dir(ref)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", run.name if run else ref)


def default_out(refs: list[str], dataset: DatasetDir, name: str) -> Path:
    """``<run>/<name>`` for one learned reward, else ``reports/<dataset>/<rewards>/<name>``."""
    run = run_dir(refs[0])
    if len(refs) == 1 and run is not None:
        return run / name
    return Path("reports") / dataset.root.resolve().name / "+".join(map(_slug, refs)) / name


def output_stem(dataset: DatasetDir, split: str, teacher: str | None = None) -> str:
    """``<dataset>-<split>[-<teacher>]``: default output names say what was evaluated, so
    evaluating one reward on a second dataset or teacher never replaces the first report."""
    name = dataset.hub.repo_id.split("/")[-1] if dataset.hub else dataset.root.resolve().name
    parts = [name, split, *([teacher] if teacher else [])]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(parts))


def open_scored_split(cfg: DictConfig, *, kind: Kind, name: str, check: Check,
                      teacher: str | None, with_first_read: Sequence[str] = (),
                      ) -> tuple[list[str], Path, SplitData]:
    """What evaluate, score and gallery start with, in this order so bad input is refused
    before any work: the rewards, the dataset opened and checked once, the rewards' tasks,
    ``out`` (default ``name`` with ``{stem}`` filled in), then the split's pairs."""
    refs = reward_refs(cfg.reward)
    if cfg.data is None:
        raise RrmError("data= is required: a dataset directory")
    dataset = open_dataset(cfg.data, check=check, with_first_read=with_first_read)
    check_reward_tasks(refs, dataset.info.tasks, cfg.allow_other_task)
    stem = output_stem(dataset, cfg.split, teacher)
    out = Path(cfg.out) if cfg.out else default_out(refs, dataset, name.format(stem=stem))
    check_out(out, kind, cfg.overwrite, inputs={"data": cfg.data, "reward": refs})
    return refs, out, load_split(dataset, cfg.split, teacher)
