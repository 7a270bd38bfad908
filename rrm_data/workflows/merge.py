"""Join the shards written by ``collect shard=i/N`` into the dataset one unsharded run gives,
byte for byte: pairs and labels are drawn over all episodes exactly as ``collect`` draws them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from rrm_data.collection import collector
from rrm_data.collection.merge import check_shards, episode_records
from rrm_data.config import doc
from rrm_data.dataset.reader import open_dataset
from rrm_data.io import Kind, check_place, output_lock
from rrm_data.progress import console


@dataclass
class Config:
    shards: list[str] = field(default_factory=list, metadata=doc(
        "shard dataset directories, as [DIR1,DIR2,...]", nonempty=True))
    out: str = field(default="data/merged", metadata={"help": "dataset directory to write"})
    overwrite: bool = field(default=False,
                            metadata={"help": "replace a different dataset at out"})


def run(cfg: DictConfig) -> None:
    shards = [open_dataset(path) for path in cfg.shards]
    collection = check_shards(shards)
    out = Path(cfg.out)
    check_place(out, Kind.DATASET, inputs={"shards": list(cfg.shards)})
    with output_lock(out):
        if collector.already_collected(out, collection, None, cfg.overwrite):
            console.print(f"{out} already holds this dataset; nothing to do")
            return
        records = [record for shard in shards for record in episode_records(shard)]
        first = shards[0].info
        collector.finish_dataset(out, records, collection, pairs=collection["pairs"],
                                 fps=first.fps, cameras=list(first.cameras), shard=None)
