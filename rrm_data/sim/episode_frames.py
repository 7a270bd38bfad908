"""Frames of stored steps, for people to watch (gallery filmstrips, labelling clips).

Stored frames when the dataset has the camera; otherwise each episode's scene is rebuilt
from its ``rand_vec`` and the rows' stored physics state is rendered, as ``render`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import decode_column
from rrm_data.dataset.reader import DatasetDir
from rrm_data.sim.envs import make_env, reset_to_rand_vec, sawyer_env
from rrm_data.sim.rendering import FrameRenderer, FrameSpec, physics_states


class EpisodeFrames:
    """Upright RGB frames of chosen step rows: stored frames when the dataset has the camera,
    else rendered from the rows' stored physics state in the episode's rebuilt scene."""

    def __init__(self, dataset: DatasetDir, camera: str, size: int) -> None:
        self.dataset, self.camera = dataset, camera
        self.stored = fmt.image_column(camera) in dataset.info.features["steps"]
        self.spec = FrameSpec((camera,), size)
        self._renderers: dict[str, tuple[Any, FrameRenderer]] = {}

    def _rows(self, rows: np.ndarray, columns: list[str]) -> Any:
        """Only the needed rows of the steps table, in the order of ``rows``."""
        table = pq.read_table(self.dataset.files("steps"), columns=["index", *columns],
                              filters=pc.field("index").isin(rows))
        order = pd.Index(table.column("index").to_numpy()).get_indexer(rows)
        return table.take(order)

    def frames(self, episode: dict[str, Any], rows: np.ndarray) -> list[np.ndarray]:
        if self.stored:
            return list(decode_column(self._rows(rows, [fmt.image_column(self.camera)])
                                      .column(fmt.image_column(self.camera))))
        task = str(episode["task"])
        if task not in self._renderers:
            env = make_env(task, seed=0)
            self._renderers[task] = env, FrameRenderer(sawyer_env(env).model, self.spec)
        env, renderer = self._renderers[task]
        reset_to_rand_vec(env, np.asarray(episode["rand_vec"]))
        states = physics_states(self._rows(rows, list(fmt.SIM_COLUMNS)))
        return [renderer.render(state)[self.camera] for state in states]

    def close(self) -> None:
        for env, renderer in self._renderers.values():
            renderer.close()
            env.close()
