"""Roll out policies in Meta-World, label segment pairs with scripted teachers, write a dataset.

Episodes are finished one by one into a hidden work folder next to `out`, so an
interrupted run resumes where it stopped; the dataset appears at `out` only when
complete. `shard=i/N` collects every N-th episode so several machines can share the
work; `rrm-data merge` joins the shards into the dataset a single run would give.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from omegaconf import DictConfig, OmegaConf

from rrm_data.builder import LabelSpec, build_tables
from rrm_data.config import build_config
from rrm_data.envs import check_task, env_fps, make_env
from rrm_data.errors import RrmError
from rrm_data.meta import make_info
from rrm_data.policies import parse_policy
from rrm_data.progress import console, progress
from rrm_data.rendering import (
    FrameRenderer,
    FrameSpec,
    check_cameras,
    check_rendering_available,
    frame_spec,
)
from rrm_data.rollout import EpisodePlan, plan_episodes, rollout
from rrm_data.teachers import make_teacher
from rrm_data.writer import write_dataset

# Graded quality on button-press-v3 at 500 steps (70 episodes per level): success
# 100 / 100 / 80 / 23 / 0 %, mean return 562 / 478 / 362 / 257 / 188.
DEFAULT_POLICIES = ["expert:0", "expert:0.5", "expert:2", "expert:3", "random"]
DEFAULT_TEACHERS = ["oracle", "stochastic", "mistake", "skip", "equal", "myopic"]
RUNTIME_KEYS = ("workers", "out", "overwrite", "shard")


def _help(text: str) -> Any:
    return {"help": text}


@dataclass
class Config:
    task: Any = field(default="button-press-v3",
                      metadata=_help("Meta-World v3 task name, or a list of them"))
    episodes: int = field(default=60, metadata=_help("episodes in the whole dataset"))
    seed: int = field(default=0, metadata=_help("seed of everything random"))
    max_steps: int = field(default=500, metadata=_help("steps per episode at most"))
    policy: list[str] = field(default_factory=lambda: list(DEFAULT_POLICIES),
                              metadata=_help("policy mixture, cycled over episodes"))
    segment_length: int = field(default=50, metadata=_help("steps per segment"))
    segments_per_episode: int = field(default=8, metadata=_help("segments cut from each episode"))
    segments: int | None = field(default=None, metadata=_help("total segments (overrides "
                                                              "segments_per_episode)"))
    pairs: int = field(default=2000, metadata=_help("pairs, train and test together"))
    test_fraction: float = field(default=0.2, metadata=_help("fraction of episodes and pairs "
                                                             "held out for test"))
    distinct_episodes: bool = field(default=True, metadata=_help("pair only segments of "
                                                                 "different episodes"))
    teachers: list[str] = field(default_factory=lambda: list(DEFAULT_TEACHERS),
                                metadata=_help("scripted teachers; test always gets oracle"))
    teacher_params: dict[str, Any] = field(
        default_factory=lambda: {"stochastic": {"beta": 1.0}, "mistake": {"epsilon": 0.1},
                                 "skip": {"epsilon": 0.1}, "equal": {"epsilon": 0.1},
                                 "myopic": {"gamma": 0.9}},
        metadata=_help("per-teacher parameters, e.g. teacher_params.mistake.epsilon=0.2"))
    camera: Any = field(default=None, metadata=_help("camera name(s) to store frames of, "
                                                     "e.g. corner or [corner,topview]"))
    image_size: int = field(default=84, metadata=_help("frame height and width in pixels"))
    render_quality: str = field(default="fast", metadata=_help("fast (no shadows, no "
                                                               "multisampling) or full"))
    workers: int = field(default=1, metadata=_help("parallel rollout processes"))
    shard: str | None = field(default=None, metadata=_help("collect only slice i of N, as i/N"))
    out: str = field(default="data/button-press", metadata=_help("dataset directory to write"))
    overwrite: bool = field(default=False, metadata=_help("replace a different dataset at out"))


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
    for key in ("episodes", "max_steps", "segment_length", "workers"):
        if cfg[key] < 1:
            raise RrmError(f"{key} must be at least 1, got {cfg[key]}")
    if cfg.pairs < 0 or cfg.segments_per_episode < 1:
        raise RrmError("pairs must be >= 0 and segments_per_episode >= 1")
    if cfg.segment_length > cfg.max_steps:
        raise RrmError(f"segment_length={cfg.segment_length} exceeds max_steps={cfg.max_steps}")
    if not 0.0 <= cfg.test_fraction < 1.0:
        raise RrmError(f"test_fraction must lie in [0, 1), got {cfg.test_fraction}")
    spec = frame_spec(cfg.camera, cfg.image_size, cfg.render_quality)
    if spec is not None:  # no GL context here: worker processes forked later would hang
        check_cameras(make_env(str(cfg.task[0]), cfg.seed).unwrapped.model, spec.cameras)
        check_rendering_available()
    i, n = parse_shard(cfg.shard)
    need = (2 if cfg.distinct_episodes else 1) * (2 if cfg.test_fraction > 0 else 1)
    if cfg.pairs > 0 and len(range(i, cfg.episodes, n)) < need:
        where = f" in shard {cfg.shard}" if n > 1 else ""
        raise RrmError(f"{len(range(i, cfg.episodes, n))} episodes{where} are too few to "
                       f"sample pairs from; need at least {need}")


def parse_shard(shard: str | None) -> tuple[int, int]:
    if shard is None:
        return 0, 1
    try:
        i, n = (int(x) for x in str(shard).split("/"))
    except ValueError:
        raise RrmError(f"shard must look like i/N (e.g. 0/4), got '{shard}'") from None
    if not (n >= 1 and 0 <= i < n):
        raise RrmError(f"shard {shard}: need 0 <= i < N")
    return i, n


def collection_record(cfg: DictConfig) -> dict[str, Any]:
    """The settings that determine the content (not where or how fast it is written)."""
    record = OmegaConf.to_container(cfg, resolve=True)
    return {k: v for k, v in record.items() if k not in RUNTIME_KEYS}


def label_spec(collection: dict[str, Any], pairs: int | None = None) -> LabelSpec:
    return LabelSpec(
        seed=collection["seed"], segment_length=collection["segment_length"],
        segments_per_episode=collection["segments_per_episode"],
        segments=collection["segments"],
        pairs=collection["pairs"] if pairs is None else pairs,
        test_fraction=collection["test_fraction"],
        distinct_episodes=collection["distinct_episodes"],
        teachers=tuple(collection["teachers"]),
        teacher_params={k: dict(v) for k, v in collection["teacher_params"].items()},
    )


def episode_plans(collection: dict[str, Any], shard: str | None) -> list[EpisodePlan]:
    plans = plan_episodes(list(collection["task"]), [parse_policy(p) for p in collection["policy"]],
                          collection["episodes"], collection["seed"])
    i, n = parse_shard(shard)
    return plans[i::n]


# --- rollouts, in this process or in workers ------------------------------------------------

# Keyed by the env seed too: it fixes MT1's list of task variations that episodes pick from.
_ENVS: dict[tuple[str, int, FrameSpec | None], Any] = {}


def _episode_file(workdir: Path, index: int) -> Path:
    """A finished episode in the work folder: an uncompressed Arrow file, cheap to write and
    read back (the dataset itself is Parquet)."""
    return workdir / "episodes" / f"episode-{index:07d}.arrow"


def _task_env(task: str, env_seed: int, frames: FrameSpec | None) -> tuple[Any, Any]:
    """This process's env (and renderer) for a task, made once: making one takes about 1 s."""
    key = (task, env_seed, frames)
    if key not in _ENVS:
        env = make_env(task, env_seed)
        renderer = FrameRenderer(env.unwrapped.model, frames) if frames else None
        _ENVS[key] = env, renderer
    return _ENVS[key]


def run_episode(job: tuple[EpisodePlan, int, int, str, FrameSpec | None]) -> tuple[int, int]:
    """Roll out one episode and store it in the work folder; returns (index, steps)."""
    plan, max_steps, env_seed, workdir, frames = job
    env, renderer = _task_env(plan.task, env_seed, frames)
    record = rollout(env, plan, max_steps, renderer)
    path = _episode_file(Path(workdir), plan.index)
    table = record.steps.replace_schema_metadata({"rrm_episode": json.dumps(record.episode)})
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)
    return plan.index, record.steps.num_rows


def read_episode(path: Path) -> tuple[pa.Table, dict]:
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    row = json.loads(table.schema.metadata[b"rrm_episode"])
    return table.replace_schema_metadata(None), row


def _prepare_workdir(out: Path, collection: dict[str, Any]) -> Path:
    """The resumable work folder: reused only when it belongs to the same collection."""
    workdir = out.with_name(f".{out.name}.partial")
    marker = workdir / "collection.json"
    if workdir.exists() and (not marker.exists()
                             or json.loads(marker.read_text()) != collection):
        shutil.rmtree(workdir)
    if not workdir.exists():
        (workdir / "episodes").mkdir(parents=True)
        marker.write_text(json.dumps(collection, sort_keys=True))
    return workdir


def collect_episodes(plans: list[EpisodePlan], max_steps: int, env_seed: int, workdir: Path,
                     workers: int, frames: FrameSpec | None = None) -> None:
    """Roll out every plan not already finished in ``workdir``, with a progress bar."""
    todo = [p for p in plans if not _episode_file(workdir, p.index).exists()]
    jobs = [(p, max_steps, env_seed, str(workdir), frames) for p in todo]
    with progress("collect", total=len(plans), unit="episodes", extra_unit="steps",
                  done=len(plans) - len(todo)) as bar:
        if workers == 1 or len(jobs) <= 1:
            for job in jobs:
                bar.advance(1, run_episode(job)[1])
            return
        # A process that has rendered holds OSMesa threads that a forked child cannot use
        # (it hangs), so workers that render start from a clean fork server instead.
        with multiprocessing.get_context("forkserver" if frames else "fork").Pool(workers) as pool:
            for _, steps in pool.imap_unordered(run_episode, jobs):
                bar.advance(1, steps)


def check_out(out: Path, collection: dict[str, Any], shard: str | None, overwrite: bool) -> bool:
    """True if ``out`` already holds this very dataset (or shard); refuse a different one."""
    if not out.exists():
        return False
    info_path = out / "meta" / "info.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
        if info.get("collection") == collection and info.get("shard") == shard and not overwrite:
            return True
    elif out.is_dir() and not any(out.iterdir()):
        out.rmdir()
        return False
    if not overwrite:
        raise RrmError(f"out={out} already holds a different dataset or other files; "
                       "choose another out= or pass overwrite=true")
    return False


def finish_dataset(out: Path, records: list[tuple[pa.Table, dict]], collection: dict[str, Any],
                   *, pairs: int, fps: float, cameras: list[str], shard: str | None) -> None:
    """Cut segments, label pairs and write the dataset: the last step of collect and of merge."""
    built = build_tables([steps for steps, _ in records], [row for _, row in records],
                         label_spec(collection, pairs))
    info = make_info(out.name, built, collection, fps=fps, cameras=cameras, shard=shard)
    write_dataset(out, built.tables, info, overwrite=True)
    console.print(f"wrote {out}: {info['counts']['episodes']} episodes, "
                  f"{info['counts']['steps']} steps, {info['counts']['segments']} segments, "
                  f"{sum(info['counts']['pairs'].values())} pairs")


def run(cfg: DictConfig) -> None:
    out = Path(cfg.out)
    collection = collection_record(cfg)
    if check_out(out, collection, cfg.shard, cfg.overwrite):
        console.print(f"{out} already holds this dataset; nothing to do")
        return
    plans = episode_plans(collection, cfg.shard)
    if not plans:
        raise RrmError(f"shard {cfg.shard} holds no episodes (episodes={cfg.episodes})")
    workdir = _prepare_workdir(out, {**collection, "shard": cfg.shard})
    frames = frame_spec(cfg.camera, cfg.image_size, cfg.render_quality)
    collect_episodes(plans, cfg.max_steps, cfg.seed, workdir, cfg.workers, frames)

    records = [read_episode(_episode_file(workdir, p.index)) for p in plans]
    fps = env_fps(_task_env(plans[0].task, cfg.seed, None)[0])
    finish_dataset(out, records, collection, pairs=round(cfg.pairs * len(plans) / cfg.episodes),
                   fps=fps, cameras=list(frames.cameras) if frames else [], shard=cfg.shard)
    shutil.rmtree(workdir, ignore_errors=True)


__all__ = ["Config", "make_config", "run"]
