"""Frozen-encoder features of every frame, stored once as a table of the dataset.

The table ``embeddings/<encoder>`` holds one row per step: its ``index`` and ``features``
(float32, the cameras' features side by side). ``meta/info.json`` records the encoder
name, weights SHA-256, preprocessing and cameras, so training reads these features
instead of running the encoder every epoch, and a stale table is recomputed. A model that
fine-tunes the encoder (``model.finetune_blocks``) reads the frames the table's features
come from instead (``finetune_inputs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import EMBEDDINGS_PREFIX, decode_column, is_embedding_column
from rrm_data.dataset.info import DatasetInfo
from rrm_data.dataset.reader import DatasetDir
from rrm_data.dataset.writer import new_version, write_dataset
from rrm_data.errors import RrmError
from rrm_data.progress import console, progress
from rrm_data.sim.rendering import frame_settings, image_cameras
from rrm_data.vision.encoders import (
    DEFAULT_ENCODER,
    FrozenEncoder,
    encoder_from_description,
    load_encoder,
)
from rrm_data.vision.finetune import check_finetune, tuning_record


def embedding_table(encoder: str) -> str:
    return f"{EMBEDDINGS_PREFIX}{encoder}"


def dataset_cameras(dataset: DatasetDir, cameras: list[str] | None) -> list[str]:
    """The cameras to embed: those asked for (which must have frames), else all of them."""
    have = image_cameras(dataset.info.features["steps"])
    if not have:
        raise RrmError(f"{dataset.root} has no camera frames; add some first: "
                       f"rrm-data render data={dataset.root} camera=corner")
    if cameras and len(set(cameras)) != len(cameras):  # one camera's features twice
        raise RrmError(f"camera lists a camera twice: {', '.join(cameras)}")
    for camera in cameras or []:
        if camera not in have:
            raise RrmError(f"{dataset.root} has no frames of camera '{camera}'; "
                           f"it has: {', '.join(have)}")
    return list(cameras or have)


def embed_steps(dataset: DatasetDir, cameras: list[str], encoder: FrozenEncoder,
                batch_size: int) -> pa.Table:
    """``index`` and ``features`` of every step, reading frames batch by batch."""
    columns = [fmt.image_column(c) for c in cameras]
    total = dataset.info.counts.steps
    index_parts, feature_parts = [], []
    with progress(f"embed {encoder.name}", total=total, unit="frames") as bar:
        for path in dataset.files("steps"):
            for batch in pq.ParquetFile(path).iter_batches(batch_size, columns=["index", *columns]):
                per_camera = [encoder.encode(decode_column(batch.column(c))).numpy()
                              for c in columns]
                index_parts.append(batch.column("index").to_numpy())
                feature_parts.append(np.concatenate(per_camera, axis=1))
                bar.advance(batch.num_rows)
    features = np.concatenate(feature_parts).astype(np.float32)
    return pa.table({"index": pa.array(np.concatenate(index_parts), pa.int64()),
                     "features": fmt.fixed_list_array(features, pa.float32())})


def embedding_record(encoder: FrozenEncoder, info: DatasetInfo,
                     cameras: list[str]) -> dict[str, Any]:
    """What meta/info.json says about a features table (compared to find stale tables)."""
    return {**encoder.describe(), "cameras": cameras, "dim": encoder.dim * len(cameras),
            "frames": frame_settings(info, cameras)}


def ensure_embeddings(dataset: DatasetDir, encoder: str = DEFAULT_ENCODER,
                      weights: str | None = None, pretrained: bool = True,
                      cameras: list[str] | None = None, image_size: int | None = None,
                      batch_size: int = 64) -> DatasetDir:
    """Build ``embeddings/<encoder>`` unless an up-to-date one exists.

    Returns the dataset to read from now: the new version when the table was written.
    """
    dataset_cameras(dataset, cameras)  # frames to embed, checked before the encoder loads
    frozen = load_encoder(encoder, weights, pretrained, image_size)
    table = embedding_table(encoder)

    def stale(dataset: DatasetDir) -> bool:
        record = embedding_record(frozen, dataset.info, dataset_cameras(dataset, cameras))
        return dataset.info.embeddings.get(table) != record

    if stale(dataset):
        with new_version(dataset) as target:  # locked, then read again: the version to extend
            dataset = target.dataset
            if stale(dataset):  # (unless another process wrote it meanwhile)
                chosen = dataset_cameras(dataset, cameras)
                features = embed_steps(dataset, chosen, frozen, batch_size)
                tables = dataset.tables()
                tables[table] = {"train": features}
                record = embedding_record(frozen, dataset.info, chosen)
                info = dataset.info.replace(embeddings={**dataset.info.embeddings,
                                                        table: record})
                write_dataset(target.out, tables, info, overwrite=target.overwrite)
                console.print(f"wrote {table} of {dataset.root}: "
                              f"{features.num_rows} × {record['dim']} features")
                return DatasetDir(dataset.root, dataset.hub)
    console.print(f"{dataset.root}: {table} is up to date")
    return dataset


def missing_embeddings(dataset: DatasetDir, inputs: list[str]) -> list[str]:
    """Encoders whose ``embeddings/<encoder>`` tables a model reads but the dataset lacks."""
    return [column.removeprefix(EMBEDDINGS_PREFIX) for column in inputs
            if is_embedding_column(column) and column not in dataset.info.embeddings]


def embedding_records(dataset: DatasetDir, inputs: list[str]) -> dict[str, dict[str, Any]]:
    """What the dataset records about each embeddings table a reward model reads."""
    return {column: dataset.info.embeddings[column]
            for column in filter(is_embedding_column, inputs)}


@dataclass(frozen=True)
class FinetuneInputs:
    """What a model that fine-tunes its encoder reads instead of an ``embeddings/<encoder>``
    table: the frames of the cameras whose features the table holds (or would hold), and
    the encoder that made them, where fine-tuning starts."""

    encoder: FrozenEncoder
    cameras: list[str]
    inputs: list[str]  # the model's inputs, the features column replaced by frame columns
    frames: dict[str, Any]  # how the frames look (``frame_settings``)
    blocks: int

    @property
    def record(self) -> dict[str, Any]:
        """The network's ``encoder`` record."""
        return tuning_record(self.encoder, self.cameras, self.blocks)

    @property
    def widths(self) -> dict[str, int]:
        """Each frame column enters the network as the encoder's features."""
        return {fmt.image_column(c): self.encoder.dim for c in self.cameras}

    @property
    def image(self) -> dict[str, Any]:
        """What the reward artifact records to score frames: how they look."""
        return {"frames": self.frames}


def finetune_inputs(dataset: DatasetDir, inputs: list[str], blocks: int) -> FinetuneInputs:
    """The frames and starting encoder of a model that fine-tunes the last ``blocks`` blocks
    of the encoder whose features it reads (``vision.finetune.check_finetune``): the cameras
    and encoder its ``embeddings/<encoder>`` table records, or, without the table, all the
    dataset's cameras and ``load_encoder``'s defaults (what ``embed`` would use)."""
    name = check_finetune(inputs, blocks)
    column = embedding_table(name)
    record = dataset.info.embeddings.get(column)
    if record is None:
        cameras = dataset_cameras(dataset, None)  # refuses a dataset without frames
        encoder = load_encoder(name)
    else:
        cameras = list(record["cameras"])
        have = image_cameras(dataset.info.features["steps"])
        missing = [c for c in cameras if c not in have]
        if missing:
            raise RrmError(f"{dataset.root} has no frames of camera {', '.join(missing)}, "
                           f"which its {column} features come from; model.finetune_blocks "
                           f"reads the frames: rrm-data render data={dataset.root} "
                           f"camera={missing[0]}")
        encoder = encoder_from_description(record)
    frame_inputs = [fmt.image_column(c) for c in cameras]
    expanded = [f for c in inputs for f in (frame_inputs if c == column else [c])]
    return FinetuneInputs(encoder, cameras, expanded, frame_settings(dataset.info, cameras),
                          blocks)


def image_spec(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What a reward artifact records to score raw frames: encoders and how frames look."""
    frames = next(iter(records.values()))["frames"]
    cameras = list(dict.fromkeys(c for r in records.values() for c in r["cameras"]))
    return {"encoders": records, "frames": {**frames, "cameras": cameras}}
