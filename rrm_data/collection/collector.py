"""Collection: episodes rolled out into a resumable work folder, then built into a dataset.

Each finished episode is one Arrow file in a hidden work folder next to ``out``
(``.<out>.partial``), so an interrupted run resumes where it stopped, in one process or
a pool of workers. The last step, shared with ``merge``, cuts segments, labels pairs
and writes the dataset.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa

from rrm_data.collection.meta import make_info
from rrm_data.dataset import format as fmt
from rrm_data.dataset.info import DatasetInfo
from rrm_data.dataset.observation import ACTION_NAMES, STATE_NAMES
from rrm_data.dataset.writer import write_dataset
from rrm_data.errors import RrmError
from rrm_data.io import Kind, atomic_file, check_out, remove_owned
from rrm_data.labels.tables import LabelSpec, build_tables
from rrm_data.progress import console, progress
from rrm_data.sim.envs import env_fps, make_env, sawyer_env
from rrm_data.sim.policies import parse_policy
from rrm_data.sim.rendering import FrameRenderer, FrameSpec
from rrm_data.sim.rollout import EpisodePlan, plan_episodes, rollout


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


def episode_file(workdir: Path, index: int) -> Path:
    """A finished episode in the work folder: an uncompressed Arrow file, cheap to write and
    read back (the dataset itself is Parquet)."""
    return workdir / "episodes" / f"episode-{index:07d}.arrow"


def task_env(task: str, env_seed: int, frames: FrameSpec | None) -> tuple[Any, Any]:
    """This process's env (and renderer) for a task, made once: making one takes about 1 s."""
    key = (task, env_seed, frames)
    if key not in _ENVS:
        env = make_env(task, env_seed)
        renderer = FrameRenderer(sawyer_env(env).model, frames) if frames else None
        _ENVS[key] = env, renderer
    return _ENVS[key]


def run_episode(job: tuple[EpisodePlan, int, int, str, FrameSpec | None]) -> tuple[int, int]:
    """Roll out one episode and store it in the work folder; returns (index, steps)."""
    plan, max_steps, env_seed, workdir, frames = job
    env, renderer = task_env(plan.task, env_seed, frames)
    record = rollout(env, plan, max_steps, renderer)
    write_episode(episode_file(Path(workdir), plan.index), record.steps, record.episode)
    return plan.index, record.steps.num_rows


def write_episode(path: Path, steps: pa.Table, row: dict) -> None:
    """Store one finished episode (steps, with its episodes row as metadata) atomically."""
    table = steps.replace_schema_metadata({"rrm_episode": json.dumps(row)})
    with atomic_file(path) as tmp, pa.OSFile(str(tmp), "wb") as sink, \
            pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def read_episode(path: Path) -> tuple[pa.Table, dict]:
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    row = json.loads(table.schema.metadata[b"rrm_episode"])
    return table.replace_schema_metadata(None), row


def prepare_workdir(out: Path, collection: dict[str, Any]) -> Path:
    """The resumable work folder: reused only when it belongs to the same collection."""
    workdir = out.with_name(f".{out.name}.partial")
    marker = workdir / "collection.json"
    if workdir.exists() and (not marker.exists()
                             or json.loads(marker.read_text()) != collection):
        remove_owned(workdir)
    if not workdir.exists():
        (workdir / "episodes").mkdir(parents=True)
        marker.write_text(json.dumps(collection, sort_keys=True))
    return workdir


def collect_episodes(plans: list[EpisodePlan], max_steps: int, env_seed: int, workdir: Path,
                     workers: int, frames: FrameSpec | None = None) -> None:
    """Roll out every plan not already finished in ``workdir``, with a progress bar."""
    todo = [p for p in plans if not episode_file(workdir, p.index).exists()]
    jobs = [(p, max_steps, env_seed, str(workdir), frames) for p in todo]
    with progress("collect", total=len(plans), unit="episodes", extra_unit="steps",
                  done=len(plans) - len(todo)) as bar:
        if workers == 1 or len(jobs) <= 1:
            for job in jobs:
                bar.advance(1, run_episode(job)[1])
            return
        # A process that has rendered holds OSMesa threads that a forked child cannot use
        # (it hangs), and so does one where JAX started (a SAC policy was loaded): such
        # workers start from a clean fork server instead.
        clean = frames is not None or "jax" in sys.modules
        with multiprocessing.get_context("forkserver" if clean else "fork").Pool(workers) as pool:
            for _, steps in pool.imap_unordered(run_episode, jobs):
                bar.advance(1, steps)


def already_collected(out: Path, collection: dict[str, Any], shard: str | None,
                      overwrite: bool) -> bool:
    """True if ``out`` already holds this very dataset (or shard); refuse what collect may not
    replace (anything but a dataset, or another dataset without ``overwrite=true``)."""
    if not check_out(out, Kind.DATASET, overwrite=True):
        return False
    try:
        info: DatasetInfo | None = DatasetInfo.read(out)
    except RrmError:  # another format version: a different dataset
        info = None
    if info is not None and info.collection == collection and info.shard == shard \
            and not overwrite:
        return True
    if not overwrite:
        raise RrmError(f"out={out} already holds a different dataset; choose another out= or "
                       "pass overwrite=true")
    return False


def finish_dataset(out: Path, records: list[tuple[pa.Table, dict]], collection: dict[str, Any],
                   *, pairs: int, fps: float, cameras: list[str], shard: str | None,
                   labels: LabelSpec | None = None) -> None:
    """Cut segments, label pairs and write the dataset: the last step of collect, of merge and
    of train-sac's recorder. ``labels`` is the labelling when ``collection`` records another
    command's settings (default: collect's keys of ``collection``, with ``pairs``)."""
    built = build_tables([steps for steps, _ in records], [row for _, row in records],
                         labels or label_spec(collection, pairs))
    info = make_info(out.name, built, collection, fps=fps, cameras=cameras, shard=shard)
    write_dataset(out, built.tables, info, overwrite=True,
                  names={fmt.STATE: STATE_NAMES, fmt.ACTION: ACTION_NAMES})
    counts = info.counts
    console.print(f"wrote {out}: {counts.episodes} episodes, {counts.steps} steps, "
                  f"{counts.segments} segments, {sum(counts.pairs.values())} pairs")


def read_episodes(workdir: Path, plans: list[EpisodePlan]) -> list[tuple[pa.Table, dict]]:
    """The finished episodes of ``plans``, in plan order."""
    return [read_episode(episode_file(workdir, p.index)) for p in plans]


def task_fps(task: str, env_seed: int) -> float:
    """Frames per second of a task's simulation (from this process's cached env)."""
    return env_fps(task_env(task, env_seed, None)[0])
