"""Roll out policies in Meta-World, label segment pairs with scripted teachers, write a dataset.

Episodes are finished one by one into a hidden work folder next to `out`, so an
interrupted run resumes where it stopped; the dataset appears at `out` only when
complete. `shard=i/N` collects every N-th episode so several machines can share the
work; `rrm-data merge` joins the shards into the dataset a single run would give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from rrm_data.collection import collector
from rrm_data.config import COUNT, HELD_OUT, NON_NEGATIVE, build_config, config_dict, doc
from rrm_data.errors import RrmError
from rrm_data.io import Kind, check_place, output_lock, remove_owned
from rrm_data.labels.tables import check_pair_budget
from rrm_data.labels.teachers import check_segment_length, make_teacher
from rrm_data.progress import console
from rrm_data.sim.envs import EPISODE_LIMIT, check_task, episode_length, make_env, sawyer_env
from rrm_data.sim.policies import parse_policy
from rrm_data.sim.rendering import (
    IMAGE_SIZE,
    check_cameras,
    check_rendering_available,
    frame_spec,
)

# Graded quality on button-press-v3 at 500 steps (70 episodes per level): success
# 100 / 100 / 80 / 23 / 0 %, mean return 562 / 478 / 362 / 257 / 188.
DEFAULT_POLICIES = ["expert:0", "expert:0.5", "expert:2", "expert:3", "random"]
DEFAULT_TEACHERS = ["oracle", "stochastic", "mistake", "skip", "equal", "myopic"]
RUNTIME_KEYS = ("workers", "out", "overwrite", "shard")
ON_INTERRUPT = "interrupted; run the same command again to resume"



@dataclass
class Config:
    task: Any = field(default="button-press-v3", metadata=doc(
        "Meta-World v3 task name, or a list of them", strings=True, nonempty=True))
    episodes: int = field(default=60, metadata=doc("episodes in the whole dataset", COUNT))
    seed: int = field(default=0, metadata=doc("seed of everything random", NON_NEGATIVE))
    episode_steps: int | None = field(default=None, metadata=doc(
        "cut episodes shorter than Meta-World's 500 steps", COUNT))
    policy: list[str] = field(default_factory=lambda: list(DEFAULT_POLICIES), metadata=doc(
        "policy mixture, cycled over episodes: expert:σ (Gaussian action noise σ ≤ 10), "
        "epsilon:p (expert, each action random with probability p), random, sac:RUN, "
        "offline:RUN", nonempty=True))
    segment_length: int = field(default=50, metadata=doc("steps per segment", COUNT))
    segments_per_episode: int = field(default=8, metadata=doc(
        "segments cut from each episode", COUNT))
    segments: int | None = field(default=None, metadata=doc(
        "total segments (overrides segments_per_episode)", COUNT))
    pairs: int = field(default=2000, metadata=doc("pairs, train and test together", NON_NEGATIVE))
    test_fraction: float = field(default=0.2, metadata=doc(
        "fraction of episodes and pairs held out for test", HELD_OUT))
    distinct_episodes: bool = field(default=True, metadata=doc("pair only segments of "
                                                                 "different episodes"))
    teachers: list[str] = field(default_factory=lambda: list(DEFAULT_TEACHERS), metadata=doc(
        "scripted teachers: B-Pref's on the true return (oracle stochastic mistake skip equal "
        "myopic) or how the hand moves (smooth efficient safe quality); test always gets "
        "oracle", nonempty=True))
    teacher_params: dict[str, Any] = field(
        default_factory=lambda: {"stochastic": {"beta": 1.0}, "mistake": {"epsilon": 0.1},
                                 "skip": {"epsilon": 0.1}, "equal": {"epsilon": 0.1},
                                 "myopic": {"gamma": 0.9}},
        metadata=doc("per-teacher parameters, e.g. teacher_params.mistake.epsilon=0.2"))
    camera: Any = field(default=None, metadata=doc(
        "camera name(s) to store frames of, e.g. corner or [corner,topview]", strings=True))
    image_size: int = field(default=84, metadata=doc(
        "frame height and width in pixels", IMAGE_SIZE))
    render_quality: str = field(default="fast", metadata=doc("fast (no shadows, no "
                                                               "multisampling) or full"))
    workers: int = field(default=1, metadata=doc("parallel rollout processes", COUNT))
    shard: str | None = field(default=None, metadata=doc("collect only slice i of N, as i/N"))
    out: str = field(default="data/button-press", metadata=doc("dataset directory to write"))
    overwrite: bool = field(default=False, metadata=doc("replace a different dataset at out"))


def make_config(overrides: list[str]) -> DictConfig:
    cfg = build_config(Config(), overrides)
    if isinstance(cfg.task, str):
        cfg.task = [cfg.task]
    if isinstance(cfg.camera, str):
        cfg.camera = [cfg.camera]
    check_config(cfg)
    return cfg


def check_config(cfg: DictConfig) -> None:
    """Refuse bad settings before any work starts."""
    for task in cfg.task:
        check_task(str(task))
    for spec in cfg.policy:
        parse_policy(spec)
    for name in cfg.teachers:
        make_teacher(name, cfg.teacher_params.get(name))
    check_segment_length(cfg.teachers, cfg.segment_length)
    if cfg.segment_length > episode_length(cfg.episode_steps):
        limit = (f"episode_steps={cfg.episode_steps}"
                 if cfg.episode_steps and cfg.episode_steps <= EPISODE_LIMIT else
                 f"{EPISODE_LIMIT} steps, where Meta-World ends every episode")
        raise RrmError(f"segment_length={cfg.segment_length} exceeds {limit}")
    spec = frame_spec(cfg.camera, cfg.image_size, cfg.render_quality)
    if spec is not None:  # no GL context here: worker processes forked later would hang
        check_cameras(sawyer_env(make_env(str(cfg.task[0]), cfg.seed)).model, spec.cameras)
        check_rendering_available()
    i, n = collector.parse_shard(cfg.shard)
    need = (2 if cfg.distinct_episodes else 1) * (2 if cfg.test_fraction > 0 else 1)
    if cfg.pairs > 0 and len(range(i, cfg.episodes, n)) < need:
        where = f" in shard {cfg.shard}" if n > 1 else ""
        raise RrmError(f"{len(range(i, cfg.episodes, n))} episodes{where} are too few to "
                       f"sample pairs from; need at least {need}")
    segments = cfg.segments or cfg.segments_per_episode * cfg.episodes
    most = segments * (segments - 1) // 2
    if cfg.pairs > most:
        raise RrmError(f"pairs must lie in [0, {most}]: {segments} segments make at most {most} "
                       f"distinct pairs, got {cfg.pairs}")
    # What finish_dataset will sample after the rollouts: this shard's pairs, then the whole's.
    collection = collection_record(cfg)
    shard_episodes = np.arange(i, cfg.episodes, n)
    if n > 1 and len(shard_episodes):
        check_pair_budget(shard_episodes, collector.label_spec(
            collection, round(cfg.pairs * len(shard_episodes) / cfg.episodes)))
    check_pair_budget(np.arange(cfg.episodes), collector.label_spec(collection))


def collection_record(cfg: DictConfig) -> dict[str, Any]:
    """The settings that determine the content (not where or how fast it is written)."""
    record = config_dict(cfg)
    return {k: v for k, v in record.items() if k not in RUNTIME_KEYS}


def run(cfg: DictConfig) -> None:
    out = Path(cfg.out)
    collection = collection_record(cfg)
    check_place(out, Kind.DATASET)
    with output_lock(out):
        if collector.already_collected(out, collection, cfg.shard, cfg.overwrite):
            console.print(f"{out} already holds this dataset; nothing to do")
            return
        plans = collector.episode_plans(collection, cfg.shard)
        if not plans:
            raise RrmError(f"shard {cfg.shard} holds no episodes (episodes={cfg.episodes})")
        workdir = collector.prepare_workdir(out, {**collection, "shard": cfg.shard})
        frames = frame_spec(cfg.camera, cfg.image_size, cfg.render_quality)
        collector.collect_episodes(plans, episode_length(cfg.episode_steps), cfg.seed, workdir,
                                   cfg.workers, frames)
        collector.finish_dataset(out, collector.read_episodes(workdir, plans), collection,
                                 pairs=round(cfg.pairs * len(plans) / cfg.episodes),
                                 fps=collector.task_fps(plans[0].task, cfg.seed),
                                 cameras=list(frames.cameras) if frames else [],
                                 shard=cfg.shard)
        remove_owned(workdir)


__all__ = ["Config", "make_config", "run"]
