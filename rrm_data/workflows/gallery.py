"""Write a static HTML gallery of the episodes and segments that rewards rank best and worst.

For each reward (several as `reward=[a,b]`, shown side by side): the top-k and bottom-k
episodes and segments of the split by predicted return, each with an animated filmstrip,
a plot of predicted (total/prior/residual) and true reward over time, success, task and
policy. `rank_by=<teacher>` orders them by that teacher's criterion instead (e.g. smooth:
lowest mean squared jerk first), the same clips for every reward. State-only datasets are
re-rendered from the stored physics state. The folder (default
`<run>/gallery-<data>-<split>`, or `reports/...`) works offline: open its index.html.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import DictConfig

from rrm_data.config import COUNT, doc
from rrm_data.dataset.format import is_human_teacher
from rrm_data.errors import RrmError
from rrm_data.evaluation.gallery import Ranking, build_gallery
from rrm_data.evaluation.ranking import clip_quality
from rrm_data.evaluation.refs import open_scored_split
from rrm_data.evaluation.scoring import score_rewards
from rrm_data.io import Kind, atomic_directory
from rrm_data.labels.teachers import TEACHERS
from rrm_data.progress import console
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
    rank_by: str | None = field(default=None, metadata={
        "help": "order clips by this teacher's criterion, not the reward: "
                + ", ".join(TEACHERS.names()) + " (its parameters from the dataset)"})
    out: str | None = field(default=None, metadata={"help": "gallery directory (default "
                                                            "<run>/gallery-<data>-<split>)"})


def run(cfg: DictConfig) -> None:
    frame_spec(cfg.camera, cfg.image_size)
    if cfg.rank_by is not None and (is_human_teacher(cfg.rank_by) or cfg.rank_by not in TEACHERS):
        raise RrmError(f"rank_by={cfg.rank_by}: not a scripted teacher; one of "
                       f"{', '.join(TEACHERS.names())}")
    refs, out, data = open_scored_split(cfg, kind=Kind.GALLERY, name="gallery-{stem}",
                                        check="full", teacher=None)
    ranking = Ranking() if cfg.rank_by is None else Ranking(cfg.rank_by,
                                                            clip_quality(data, cfg.rank_by))
    scored = score_rewards(refs, data)
    with atomic_directory(out, Kind.GALLERY, cfg.overwrite) as tmp:
        build_gallery(data, scored, tmp, cfg.k, cfg.camera, cfg.image_size, cfg.frames,
                      ranking)
    console.print(f"wrote {out}/index.html")
