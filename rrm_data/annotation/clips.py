"""Video clips of segments for the labelling page: WebM (VP9) encoded with PyAV, cached on disk.

Frames come from the dataset when it stores a camera, else they are re-rendered from the
stored physics state (``sim.episode_frames``). At 1× a clip plays ``fps`` steps per
second: 20 by default, a quarter of Meta-World's 80 Hz, so a 50-step segment lasts 2.5 s
(at real time it would flash by in 0.6 s). Rendering contexts are bound to the thread that
made them, so one ``ClipMaker`` is used from one thread only (the app gives it one thread).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import av
import numpy as np
from av.video.stream import VideoStream

from rrm_data.dataset import format as fmt
from rrm_data.dataset.reader import DatasetDir
from rrm_data.errors import RrmError
from rrm_data.io import atomic_file
from rrm_data.sim.episode_frames import EpisodeFrames
from rrm_data.sim.rendering import image_cameras

CODEC = "libvpx-vp9"
MIN_FPS = 1
DEFAULT_FPS = 20.0


def check_frames_available(dataset: DatasetDir) -> None:
    """Clips need stored frames or the physics state to re-render them from."""
    columns = dataset.info.features["steps"]
    if not image_cameras(columns) and not all(c in columns for c in fmt.SIM_COLUMNS):
        raise RrmError(f"{dataset.root} has neither camera frames nor the stored physics state "
                       f"({', '.join(fmt.SIM_COLUMNS)}) to render clips from")


def encode_webm(frames: list[np.ndarray], path: Path, fps: float) -> None:
    """Write uint8 (H, W, 3) frames as a VP9 WebM at ``fps`` (even sizes; realtime settings)."""
    height, width = (s - s % 2 for s in frames[0].shape[:2])
    with av.open(str(path), "w", format="webm") as container:
        stream = cast(VideoStream, container.add_stream(CODEC, rate=max(MIN_FPS, round(fps))))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0"}
        for frame in frames:
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:height, :width]),
                                               format="rgb24")
            container.mux(stream.encode(image))
        container.mux(stream.encode())


class ClipMaker:
    """Encodes (once) and finds the clip of a segment, in ``cache``."""

    def __init__(self, dataset: DatasetDir, cache: Path, camera: str, size: int,
                 fps: float = DEFAULT_FPS) -> None:
        check_frames_available(dataset)
        stored = image_cameras(dataset.info.features["steps"])
        self.camera = camera if camera in stored or not stored else stored[0]
        self.source = EpisodeFrames(dataset, self.camera, size)
        self.fps = fps
        self.cache = Path(cache)
        self.cache.mkdir(parents=True, exist_ok=True)
        segments = dataset.table("segments", columns=["segment_index", "episode_index", "start",
                                                      "length"]).to_pydict()
        episodes = dataset.table("episodes").to_pylist()
        self._episodes = {e["episode_index"]: e for e in episodes}
        self._segments = {s: (e, start, n) for s, e, start, n in zip(
            segments["segment_index"], segments["episode_index"], segments["start"],
            segments["length"], strict=True)}

    def path(self, segment: int) -> Path:
        """Where a segment's clip is (or will be) cached; the name is built from an int."""
        return self.cache / f"segment-{int(segment):06d}-{self.camera}-{self.fps:g}fps.webm"

    def task(self, segment: int) -> str:
        """The task of a segment's episode (shown above its clip)."""
        return str(self._episodes[self._segments[int(segment)][0]]["task"])

    def ensure(self, segment: int) -> Path:
        """The segment's clip, encoding it first if it is not cached yet."""
        path = self.path(segment)
        if not path.is_file():
            if int(segment) not in self._segments:
                raise RrmError(f"segment {segment} does not exist")
            episode_index, start, length = self._segments[int(segment)]
            episode: dict[str, Any] = self._episodes[episode_index]
            rows = np.arange(length, dtype=np.int64) + episode["index_from"] + start
            with atomic_file(path) as tmp:
                encode_webm(self.source.frames(episode, rows), tmp, self.fps)
        return path

    def close(self) -> None:
        self.source.close()


__all__ = ["ClipMaker", "check_frames_available", "encode_webm"]
