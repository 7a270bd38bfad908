"""Compute the frozen-encoder features of every frame once and store them in the dataset.

Writes the table ``embeddings/<encoder>`` (one row per step) and records the encoder
name, weights SHA-256 and preprocessing in meta/info.json; an up-to-date table is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

from rrm_data.config import COUNT, build_config, doc
from rrm_data.dataset.reader import open_dataset
from rrm_data.dataset.validate import check_dataset
from rrm_data.dataset.writer import new_version
from rrm_data.sim.rendering import IMAGE_SIZE
from rrm_data.vision.embeddings import ensure_embeddings
from rrm_data.vision.encoders import DEFAULT_ENCODER, check_encoder


@dataclass
class Config:
    data: str = field(default="data/button-press", metadata={"help": "dataset directory"})
    encoder: str = field(default=DEFAULT_ENCODER, metadata={"help": "timm model name"})
    weights: str | None = field(default=None, metadata={"help": "local weights file (else "
                                                                "packaged or HF cache)"})
    pretrained: bool = field(default=True, metadata={"help": "false: random weights"})
    camera: Any = field(default=None, metadata=doc(
        "camera(s) to embed; default all", strings=True))
    image_size: int | None = field(default=None, metadata=doc(
        "resize frames to this size; default: as stored", IMAGE_SIZE))
    batch_size: int = field(default=64, metadata=doc("frames per encoder forward", COUNT))


def make_config(overrides: list[str]) -> DictConfig:
    cfg = build_config(Config(), overrides)
    if isinstance(cfg.camera, str):
        cfg.camera = [cfg.camera]
    check_encoder(cfg.encoder)
    return cfg


def run(cfg: DictConfig) -> None:
    with new_version(open_dataset(cfg.data)) as target:  # locked before it is read
        check_dataset(target.dataset)  # every frame decodes before any is embedded
        ensure_embeddings(target.dataset, cfg.encoder, cfg.weights, cfg.pretrained,
                          list(cfg.camera) if cfg.camera else None, cfg.image_size,
                          cfg.batch_size)
