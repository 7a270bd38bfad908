"""Rank by a teacher's criterion, and rank among successful episodes only.

"Filter for task success first, then rank successful trajectories by quality": once both
clips succeed, what a person judges is how the arm moves. So ``evaluate`` reports, per
teacher of the split, a reward's agreement on the pairs whose two segments both come from
successful episodes, and its rank correlation with the teacher's own quantity over those
episodes' segments; ``gallery`` can order clips by a teacher's quantity instead of the
reward. The quantity is the teacher's ``costs`` (``labels.teachers``, built on
``labels.motion``), with the parameters meta/info.json records, computed as the teacher
computes it: over all the dataset's segments (``quality``'s z-scores depend on them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import positions, segment_first_steps, step_columns
from rrm_data.dataset.reader import DatasetDir
from rrm_data.errors import RrmError
from rrm_data.evaluation import metrics
from rrm_data.evaluation.scoring import TIE, SplitData, pair_frame
from rrm_data.labels.motion import MOTION_COLUMNS, SegmentMotion
from rrm_data.labels.teachers import Scripted, make_teacher

SUCCESS_RULE = ("among successful episodes: agreement on the teacher's non-tie pairs whose two "
                "segments both come from successful episodes (95% Wilson and episode bootstrap "
                "intervals); Spearman ρ and Kendall τ between the predicted segment return and "
                "the teacher's quality (minus its cost: the true return for B-Pref's teachers, "
                "minus the motion cost for smooth, efficient, safe, quality) over the split's "
                "segments of successful episodes; people's labels have no quantity to rank by")


def scripted_teacher(dataset: DatasetDir, name: str) -> Scripted | None:
    """The scripted teacher ``name`` with the parameters the dataset records (None for
    people, whose criterion has no formula)."""
    if fmt.is_human_teacher(name):
        return None
    return make_teacher(name, dataset.info.teachers.get(name, {}))


def window_quality(teacher: Scripted, state: np.ndarray, rewards: np.ndarray,
                   first: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Minus the teacher's cost of each window [first, first + length) of the steps (higher
    is better); the windows must share one length, as a teacher's segments do."""
    lengths = np.unique(length)
    if len(lengths) != 1:
        raise RrmError(f"teacher '{teacher.name}' compares windows of one length; these have "
                       f"{len(lengths)} lengths ({', '.join(map(str, lengths[:5]))}, ...)")
    if lengths[0] < teacher.min_steps:
        raise RrmError(f"teacher '{teacher.name}' needs windows of at least "
                       f"{teacher.min_steps} steps; these have {lengths[0]}")
    return -teacher.costs(SegmentMotion.gather(state, rewards, first, int(lengths[0])))


def _motion_columns(dataset: DatasetDir) -> tuple[np.ndarray, np.ndarray]:
    steps = step_columns(dataset, list(MOTION_COLUMNS))
    return steps[fmt.STATE], steps[fmt.REWARD]


def _dataset_segments(data: SplitData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First step and length of each of the dataset's segments (a teacher's z-scores are over
    all of them), and where each of ``data.segments`` is among them."""
    segments, episodes = data.dataset.table("segments"), data.dataset.table("episodes")
    first, length = segment_first_steps(segments, episodes), segments.column("length").to_numpy()
    at = positions(segments.column("segment_index").to_numpy(),
                   data.segments["segment_index"].to_numpy())
    return first, length, at


def segment_quality(data: SplitData, names: list[str]) -> dict[str, np.ndarray | None]:
    """Each teacher's quality of each of the split's segments (rows of ``data.segments``),
    computed over all the dataset's segments as the teacher labels them; None for people."""
    teachers = {name: scripted_teacher(data.dataset, name) for name in names}
    if not any(teachers.values()):
        return dict.fromkeys(names)
    state, rewards = _motion_columns(data.dataset)
    first, length, at = _dataset_segments(data)
    return {name: None if t is None else window_quality(t, state, rewards, first, length)[at]
            for name, t in teachers.items()}


def clip_quality(data: SplitData, name: str) -> dict[str, np.ndarray]:
    """A scripted teacher's quality of the split's ``segment``s (as it labels them) and of
    its whole ``episode``s (each episode one window; ``quality``'s z-scores over these
    episodes): what ``gallery rank_by=`` orders clips by."""
    teacher = scripted_teacher(data.dataset, name)
    if teacher is None:
        raise RrmError(f"rank_by={name}: people's labels have no quantity to rank clips by; "
                       "name a scripted teacher")
    state, rewards = _motion_columns(data.dataset)
    first, length, at = _dataset_segments(data)
    episodes = data.episodes
    return {"segment": window_quality(teacher, state, rewards, first, length)[at],
            "episode": window_quality(teacher, state, rewards,
                                      episodes["index_from"].to_numpy(),
                                      episodes["length"].to_numpy())}


def successful_segments(data: SplitData) -> np.ndarray:
    """Whether each of the split's segments comes from a successful episode."""
    success = data.episodes.set_index("episode_index")["success"].astype(bool)
    return success.loc[data.segments["episode_index"]].to_numpy()


def success_ranking(data: SplitData, segment: np.ndarray,
                    quality: dict[str, np.ndarray | None]) -> dict[str, Any]:
    """Per teacher of ``data`` (all teachers' pairs): agreement on pairs of two successful
    segments, and rank correlation of ``segment`` (predicted returns of ``data.segments``)
    with the teacher's quality over the successful segments."""
    frame = pair_frame(data, segment)
    succeeded = successful_segments(data)
    both = succeeded[data.pairs["seg_a"].to_numpy()] & succeeded[data.pairs["seg_b"].to_numpy()]
    correct = frame["correct"].to_numpy(dtype=bool, na_value=False)
    keep = both & (frame["label"].to_numpy() != TIE)
    episode = data.segments["episode_index"].to_numpy()
    out = {}
    for name, values in quality.items():
        mine = keep & (frame["teacher"].to_numpy() == name)
        ep_a, ep_b = (episode[data.pairs[side].to_numpy()][mine] for side in ("seg_a", "seg_b"))
        out[name] = {
            "agreement": {**metrics.agreement(correct[mine]),
                          "bootstrap": metrics.episode_bootstrap(correct[mine], ep_a, ep_b)},
            "rank": (None if values is None else
                     metrics.rank_correlations(segment[succeeded], values[succeeded])),
        }
    return out


__all__ = ["SUCCESS_RULE", "clip_quality", "scripted_teacher", "segment_quality", "success_ranking",
           "successful_segments", "window_quality"]
