"""Add camera frames to an existing dataset by restoring every step's physics state.

No new rollouts: each episode's scene is rebuilt from its stored ``rand_vec``, then each
row's stored ``sim.*`` state is rendered, so the frames equal those ``collect camera=...``
would have stored. The result is written as a new version of the dataset (atomically,
replacing ``data`` unless ``out=`` names another directory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from omegaconf import DictConfig

from rrm_data.config import build_config, doc
from rrm_data.dataset import format as fmt
from rrm_data.dataset.reader import DatasetDir, open_dataset
from rrm_data.dataset.validate import check_dataset
from rrm_data.dataset.writer import new_version, write_dataset
from rrm_data.errors import RrmError
from rrm_data.progress import console, progress
from rrm_data.sim.envs import make_env, reset_to_rand_vec, sawyer_env
from rrm_data.sim.rendering import (
    IMAGE_SIZE,
    IMAGE_TYPE,
    FrameRenderer,
    FrameSpec,
    frame_spec,
    image_cameras,
    physics_states,
)


@dataclass
class Config:
    data: str = field(default="data/button-press", metadata={"help": "dataset directory"})
    camera: Any = field(default="corner", metadata=doc(
        "camera name, or a list of them", strings=True, nonempty=True))
    image_size: int = field(default=84, metadata=doc(
        "frame height and width in pixels", IMAGE_SIZE))
    render_quality: str = field(default="fast", metadata={"help": "fast (no shadows, no "
                                                                  "multisampling) or full"})
    out: str | None = field(default=None, metadata={"help": "write the new version here "
                                                            "instead of replacing data"})
    overwrite: bool = field(default=False, metadata={"help": "replace a dataset at out"})


def make_config(overrides: list[str]) -> DictConfig:
    cfg = build_config(Config(), overrides)
    if isinstance(cfg.camera, str):
        cfg.camera = [cfg.camera]
    if frame_spec(cfg.camera, cfg.image_size, cfg.render_quality) is None:
        raise RrmError("no camera given; pass camera=NAME (e.g. camera=corner)")
    return cfg


def render_frames(dataset: DatasetDir, spec: FrameSpec) -> dict[str, pa.Array]:
    """Image columns for every row of the steps table, episode by episode."""
    steps = dataset.table("steps", columns=list(fmt.SIM_COLUMNS))
    episodes = dataset.table("episodes", columns=["task", "rand_vec", "index_from", "index_to"])
    renderers: dict[str, tuple[Any, FrameRenderer]] = {}
    chunks: dict[str, list[pa.Array]] = {c: [] for c in spec.columns()}
    with progress("render", total=episodes.num_rows, unit="episodes",
                  extra_unit="frames") as bar:
        for row in episodes.to_pylist():
            if row["task"] not in renderers:
                env = make_env(row["task"], seed=0)
                renderers[row["task"]] = env, FrameRenderer(sawyer_env(env).model, spec)
            env, renderer = renderers[row["task"]]
            reset_to_rand_vec(env, row["rand_vec"])
            length = row["index_to"] - row["index_from"]
            states = physics_states(steps.slice(row["index_from"], length))
            for column, frames in renderer.image_columns(states).items():
                chunks[column].append(frames)
            bar.advance(1, length)
    for _, renderer in renderers.values():
        renderer.close()
    return {c: pa.chunked_array(parts, IMAGE_TYPE) for c, parts in chunks.items()}


def run(cfg: DictConfig) -> None:
    with new_version(open_dataset(cfg.data), cfg.out, cfg.overwrite) as target:
        write_frames(cfg, target.dataset, target.out, target.overwrite)


def write_frames(cfg: DictConfig, dataset: DatasetDir, out: Path, overwrite: bool) -> None:
    """Render ``dataset`` (read under the lock) and write the new version with the frames."""
    check_dataset(dataset, frames=False)  # refuse what validate refuses, before work
    spec = frame_spec(cfg.camera, cfg.image_size, cfg.render_quality)
    assert spec is not None
    columns = dataset.info.features["steps"]
    have = image_cameras(columns)
    twice = [c for c in spec.cameras if c in have]
    if twice:
        raise RrmError(f"{cfg.data} already has frames of camera {', '.join(twice)}")
    missing = [c for c in fmt.SIM_COLUMNS if c not in columns]
    if missing:
        raise RrmError(f"{cfg.data} has no stored physics state ({', '.join(missing)} missing)")

    frames = render_frames(dataset, spec)
    tables = dataset.tables()
    steps = tables["steps"]["train"]
    for column, values in frames.items():
        steps = steps.append_column(column, values)
    tables["steps"]["train"] = steps
    info = dataset.info.replace(cameras=[*have, *spec.cameras],
                                render={"camera": list(spec.cameras), "image_size": spec.size,
                                        "render_quality": spec.quality})
    write_dataset(out, tables, info, overwrite=overwrite)
    console.print(f"wrote {out}: {steps.num_rows} frames of {', '.join(spec.cameras)} "
                  f"at {spec.size}×{spec.size} ({spec.quality})")
