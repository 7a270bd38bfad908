"""Write a static HTML gallery of the episodes and segments that rewards rank best and worst.

For each reward (several as `reward=[a,b]`, shown side by side): the top-k and bottom-k
episodes and segments of the split by predicted return, each with an animated filmstrip,
a plot of predicted (total/prior/residual) and true reward over time, success, task and
policy. State-only datasets are re-rendered from the stored physics state. The folder
(default `<run>/gallery-<data>-<split>`, or `reports/...`) works offline: open its index.html.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from rrm_data.config import COUNT, doc
from rrm_data.dataset.reader import open_dataset
from rrm_data.errors import RrmError
from rrm_data.evaluation.gallery import build_gallery
from rrm_data.evaluation.refs import default_out, output_stem, reward_refs
from rrm_data.evaluation.scoring import load_split, score_rewards
from rrm_data.io import Kind, atomic_directory, check_out
from rrm_data.progress import console
from rrm_data.reward.resolve import check_reward_tasks
from rrm_data.sim.rendering import IMAGE_SIZE, frame_spec
from rrm_data.workflows import RewardDataConfig


@dataclass
class Config(RewardDataConfig):
    split: str = field(default="test", metadata={"help": "preferences split whose episodes "
                                                         "and segments are shown"})
    k: int = field(default=8, metadata=doc("episodes (and segments) shown at each end", COUNT))
    camera: str = field(default="corner", metadata=doc("camera of the filmstrips", strings=True))
    image_size: int = field(default=128, metadata=doc("size of re-rendered frames", IMAGE_SIZE))
    frames: int = field(default=24, metadata=doc("frames per filmstrip at most", COUNT))
    out: str | None = field(default=None, metadata={"help": "gallery directory (default "
                                                            "<run>/gallery-<data>-<split>)"})


def run(cfg: DictConfig) -> None:
    refs = reward_refs(cfg.reward)
    if cfg.data is None:
        raise RrmError("data= is required: a dataset directory")
    frame_spec(cfg.camera, cfg.image_size)
    dataset = open_dataset(cfg.data, check="full")
    check_reward_tasks(refs, dataset.info.tasks, cfg.allow_other_task)
    out = Path(cfg.out) if cfg.out else default_out(
        refs, dataset, f"gallery-{output_stem(dataset, cfg.split)}")
    check_out(out, Kind.GALLERY, cfg.overwrite, inputs={"data": cfg.data, "reward": refs})
    data = load_split(dataset, cfg.split, teacher=None)
    scored = score_rewards(refs, data)
    with atomic_directory(out, Kind.GALLERY, cfg.overwrite) as tmp:
        build_gallery(data, scored, tmp, cfg.k, cfg.camera, cfg.image_size, cfg.frames)
    console.print(f"wrote {out}/index.html")
