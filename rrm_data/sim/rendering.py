"""Camera frames of Meta-World steps: fast or full scene, upright, PNG-encoded for Parquet.

Every frame is rendered from a stored physics state on a private ``MjData``, never from the
live simulation. Collection and re-rendering therefore take the same path, and a step
rendered again later (after rebuilding the episode's task) gives the same pixels.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from rrm_data.config import Range
from rrm_data.dataset import format as fmt
from rrm_data.dataset.info import DatasetInfo
from rrm_data.errors import RrmError, first_line
from rrm_data.sim.envs import (  # envs picks MuJoCo's OpenGL backend first
    PhysicsState,
    load_physics_state,
    mujoco,
)

QUALITIES = ("fast", "full")
MIN_SIZE, MAX_SIZE = 16, 512
IMAGE_SIZE = Range(MIN_SIZE, MAX_SIZE)  # the image_size= settings' range
# The column type that `datasets` decodes as `Image` (PNG bytes; no path).
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
INSTALL_HINT = "install OSMesa for offscreen rendering: apt-get install libosmesa6"


@dataclass(frozen=True)
class FrameSpec:
    """Which cameras, at what square size, with which scene quality."""

    cameras: tuple[str, ...]
    size: int = 84
    quality: str = "fast"

    def columns(self) -> list[str]:
        return [fmt.image_column(c) for c in self.cameras]

    def describe(self) -> dict[str, Any]:
        """What meta/info.json records about the frames."""
        return {"cameras": list(self.cameras), "height": self.size, "width": self.size,
                "channels": 3, "quality": self.quality, "encoding": "png",
                "orientation": "upright"}


def frame_spec(camera: str | Sequence[str] | None, size: int,
               quality: str = "fast") -> FrameSpec | None:
    """Parse the ``camera= image_size= render_quality=`` settings; None when no camera is asked."""
    if camera is None or camera == [] or camera == "":
        return None
    cameras = (camera,) if isinstance(camera, str) else tuple(str(c) for c in camera)
    if len(set(cameras)) != len(cameras):
        raise RrmError(f"camera lists a camera twice: {', '.join(cameras)}")
    if not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise RrmError(f"image_size must lie in [{MIN_SIZE}, {MAX_SIZE}], got {size}")
    if quality not in QUALITIES:
        raise RrmError(f"render_quality must be one of {', '.join(QUALITIES)}, got '{quality}'")
    return FrameSpec(cameras, int(size), quality)


def camera_names(model: mujoco.MjModel) -> list[str]:
    return [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]


def check_cameras(model: mujoco.MjModel, cameras: Sequence[str]) -> None:
    valid = camera_names(model)
    for camera in cameras:
        if camera not in valid:
            raise RrmError(f"unknown camera '{camera}'; valid cameras: {', '.join(valid)}")


def check_rendering_available() -> None:
    """Fail early, with the package to install, when no offscreen OpenGL backend is set up."""
    if not os.environ.get("MUJOCO_GL"):
        raise RrmError(f"offscreen rendering is unavailable (no OSMesa library found); "
                       f"{INSTALL_HINT}")


def apply_quality(model: mujoco.MjModel, quality: str, size: int) -> None:
    """``fast``: no shadows and no multisampling (about 6× cheaper); ``full``: MuJoCo's look."""
    if quality == "fast":
        model.vis.quality.shadowsize = 0
        model.vis.quality.offsamples = 0
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, size)
    model.vis.global_.offheight = max(model.vis.global_.offheight, size)


def _upside_down(model: mujoco.MjModel, cameras: Sequence[str]) -> dict[str, bool]:
    """Cameras whose image 'up' points down in the world (Meta-World's corner cameras).

    Decided once per model at its default pose, so a tracking camera never flips mid-episode.
    """
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return {c: bool(data.camera(c).xmat.reshape(3, 3)[2, 1] < 0) for c in cameras}


class FrameRenderer:
    """Renders the spec's cameras for physics states of one MuJoCo model (one environment)."""

    def __init__(self, model: mujoco.MjModel, spec: FrameSpec) -> None:
        check_cameras(model, spec.cameras)
        check_rendering_available()
        apply_quality(model, spec.quality, spec.size)
        self.model, self.spec = model, spec
        self._data = mujoco.MjData(model)
        self._rotate = _upside_down(model, spec.cameras)
        try:
            self._renderer = mujoco.Renderer(model, spec.size, spec.size)
        except Exception as exc:  # the GL backend's own error types vary
            raise RrmError(f"offscreen rendering failed ({first_line(exc)}); "
                           f"{INSTALL_HINT} (MUJOCO_GL=osmesa must be set before MuJoCo is "
                           "first imported)") from None

    def render(self, state: PhysicsState) -> dict[str, np.ndarray]:
        """Upright uint8 (size, size, 3) frames of every camera, for one stored state."""
        data = self._data
        load_physics_state(self.model, data, state)
        frames = {}
        for camera in self.spec.cameras:
            self._renderer.update_scene(data, camera=camera)
            frame = self._renderer.render()
            frames[camera] = frame[::-1, ::-1].copy() if self._rotate[camera] else frame
        return frames

    def image_columns(self, states: Sequence[PhysicsState]) -> dict[str, pa.Array]:
        """``observation.images.<camera>`` columns (PNG structs) for a sequence of states."""
        encoded: dict[str, list[bytes]] = {c: [] for c in self.spec.cameras}
        for state in states:
            for camera, frame in self.render(state).items():
                encoded[camera].append(encode_png(frame))
        return {fmt.image_column(c): image_array(v) for c, v in encoded.items()}

    def close(self) -> None:
        self._renderer.close()


def encode_png(frame: np.ndarray) -> bytes:
    """Lossless PNG (fast compression: frames are small and rendering already dominates)."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def image_array(pngs: Sequence[bytes]) -> pa.StructArray:
    return pa.StructArray.from_arrays(
        [pa.array(pngs, pa.binary()), pa.nulls(len(pngs), pa.string())], fields=list(IMAGE_TYPE))


def physics_states(steps: pa.Table) -> list[PhysicsState]:
    """The stored physics state of every row of a steps table (its ``sim.*`` columns)."""
    columns = [steps.column(c).to_pylist() for c in fmt.SIM_COLUMNS]
    return [PhysicsState(*(np.asarray(v, np.float64) for v in row)) for row in zip(*columns,
                                                                                  strict=True)]


def image_cameras(columns: Iterable[str]) -> list[str]:
    """Cameras whose frames are among the given steps-table columns."""
    prefix = fmt.image_column("")
    return [c.removeprefix(prefix) for c in columns if c.startswith(prefix)]


def frame_settings(info: DatasetInfo, cameras: Sequence[str]) -> dict[str, Any]:
    """Size and scene quality of a dataset's frames of ``cameras`` (from render or collect)."""
    render = info.render or {}
    source = render if set(cameras) <= set(render.get("camera", [])) else info.collection
    size = int(source["image_size"])
    return {"cameras": list(cameras), "height": size, "width": size,
            "quality": str(source["render_quality"])}
