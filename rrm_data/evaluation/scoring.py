"""Score a dataset split with a reward: per-step parts, segment and episode returns, per pair.

A split's labelled pairs decide which segments and episodes belong to it. Only the steps
those segments cover are scored (each from its reward window, ``reward.window``, which
may reach earlier steps of its episode); returns are sums of the per-step reward over
the segment, summed exactly as the collector summed the true reward for its teachers (so
the true reward reproduces the oracle's labels bit for bit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import positions, segment_first_steps
from rrm_data.dataset.reader import DatasetDir
from rrm_data.errors import RrmError
from rrm_data.evaluation.metrics import preference_probability
from rrm_data.reward.base import RewardFunction, RewardOutput
from rrm_data.reward.resolve import resolve_reward
from rrm_data.reward.window import dataset_windows
from rrm_data.sim.policies import policy_label
from rrm_data.sim.rendering import frame_settings, image_cameras

TIE = 0.5


@dataclass(frozen=True)
class SplitData:
    """One split's labelled pairs (``seg_a``/``seg_b`` are row positions in ``segments``),
    the segments they compare and the episodes those segments come from."""

    dataset: DatasetDir
    split: str
    teacher: str | None
    pairs: pd.DataFrame
    segments: pd.DataFrame
    episodes: pd.DataFrame


def load_split(dataset: DatasetDir, split: str, teacher: str | None = "oracle") -> SplitData:
    """Read a split's pairs (of one teacher, or all when ``teacher`` is None) and their context."""
    prefs = dataset.preferences(split)
    if teacher is not None:
        present = sorted(set(prefs.column("teacher").to_pylist()))
        prefs = prefs.filter(pc.equal(prefs.column("teacher"), teacher))
        if prefs.num_rows == 0:
            raise RrmError(f"{dataset.root}: split '{split}' has no '{teacher}' labels "
                           f"(teachers there: {', '.join(present) or 'none'})")
    seg_table, ep_table = dataset.table("segments"), dataset.table("episodes")
    seg_a = positions(seg_table.column("segment_index"), prefs.column("segment_a"))
    seg_b = positions(seg_table.column("segment_index"), prefs.column("segment_b"))
    if (seg_a < 0).any() or (seg_b < 0).any():
        raise RrmError(f"{dataset.root}: preferences point at segments that do not exist")
    used = np.unique(np.concatenate([seg_a, seg_b]))
    pairs = (prefs.append_column("seg_a", pa.array(np.searchsorted(used, seg_a)))
             .append_column("seg_b", pa.array(np.searchsorted(used, seg_b))))
    segments = seg_table.take(used)

    in_episode = positions(ep_table.column("episode_index"), segments.column("episode_index"))
    if (in_episode < 0).any():
        raise RrmError(f"{dataset.root}: segments point at episodes that do not exist")
    episodes = ep_table.take(np.unique(in_episode)).sort_by("episode_index")
    labels = [policy_label(p, n) for p, n in zip(episodes.column("policy").to_pylist(),
                                                  episodes.column("policy_noise").to_pylist(),
                                                  strict=True)]
    episodes = episodes.set_column(episodes.schema.get_field_index("policy"), "policy",
                                   pa.array(labels, pa.string()))
    # Columns are added in Arrow, before one conversion each: pandas column assignment is slow.
    context = pa.array(positions(episodes.column("episode_index"),
                                 segments.column("episode_index")))
    segments = (segments.append_column("first", pa.array(segment_first_steps(segments, episodes)))
                .append_column("task", episodes.column("task").take(context))
                .append_column("policy", episodes.column("policy").take(context)))
    return SplitData(dataset, split, teacher, pairs.to_pandas(), segments.to_pandas(),
                     episodes.to_pandas())


def window_rows(first: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Sorted distinct step rows covered by windows [first, first + length)."""
    first, length = np.asarray(first, np.int64), np.asarray(length, np.int64)
    windows = [(first[length == n][:, None] + np.arange(n)).ravel() for n in np.unique(length)]
    return np.unique(np.concatenate(windows)) if windows else np.empty(0, np.int64)


def window_totals(rows: np.ndarray, values: np.ndarray, first: np.ndarray,
                  length: np.ndarray) -> np.ndarray:
    """Sums of ``values`` (..., len(rows)), scored on the sorted step rows ``rows``, over the
    windows [first, first + length): shape (..., windows). Every window row must be scored."""
    first, length = np.asarray(first, np.int64), np.asarray(length, np.int64)
    sums = np.zeros((*np.shape(values)[:-1], len(first)))
    for n in np.unique(length):
        which = length == n
        at = np.searchsorted(rows, first[which][:, None] + np.arange(n)[None, :])
        sums[..., which] = values[..., at].sum(axis=-1)
    return sums


@dataclass(frozen=True)
class StepScores:
    """A reward's per-step parts on the step rows ``rows`` (sorted global indices)."""

    reward: str
    rows: np.ndarray
    output: RewardOutput

    def window_sums(self, first: np.ndarray, length: np.ndarray) -> RewardOutput:
        """Sum of each part over windows [first, first + length) (rows must be scored)."""
        return RewardOutput(*(window_totals(self.rows, values, first, length)
                              for values in self.output))

    def window(self, first: int, length: int) -> RewardOutput:
        """Per-step parts of one window, in time order."""
        at = np.searchsorted(self.rows, np.arange(first, first + length))
        return RewardOutput(*(values[..., at] for values in self.output))


def score_rows(reward: RewardFunction, columns: Mapping[str, np.ndarray],
               rows: np.ndarray) -> StepScores:
    """Score step rows ``rows`` from their windowed ``columns`` (N, k, ...); each part is
    float64 (len(rows),), the members (K, len(rows))."""
    output = reward.score(columns)
    parts = [np.asarray(p, np.float64).reshape(-1) for p in output[:3]]
    members = np.asarray(output.members, np.float64).reshape(-1, len(parts[0]))
    if any(len(p) != len(rows) for p in parts):
        raise RrmError(f"reward {reward.name} returned {len(parts[0])} values "
                       f"for {len(rows)} steps")
    return StepScores(reward.name, rows, RewardOutput(parts[0], parts[1], parts[2], members))





# What a features table and a reward record about how features were made; all must match.
FEATURE_SOURCE = ("encoder", "weights_sha256", "preprocessing", "cameras", "frames")


def check_feature_source(reward: RewardFunction, data: SplitData) -> None:
    """Refuse to score an image reward on cached features made another way (another camera,
    image size, encoder or weights) than those it was trained on."""
    for column, record in reward.spec.encoders.items():
        have = data.dataset.info.embeddings.get(column)
        if have is None:
            continue
        differ = [k for k in FEATURE_SOURCE if record.get(k) != have.get(k)]
        if differ:
            raise RrmError(f"reward {reward.name} was trained on {column} made with other "
                           f"{', '.join(differ)} than {data.dataset.root}'s; embed this dataset "
                           "as its training data was, or score another one")


def check_frame_source(reward: RewardFunction, data: SplitData) -> None:
    """Refuse to score a reward that reads frames (a fine-tuned encoder's) on frames of
    another size or scene quality than those it was trained on."""
    frames = reward.spec.frames
    if frames is None or not any(fmt.is_image_column(c) for c in reward.columns):
        return
    info = data.dataset.info
    if not set(frames.cameras) <= set(image_cameras(info.features["steps"])):
        return  # reading the column says which frames are missing
    have = frame_settings(info, frames.cameras)
    trained = {"height": frames.height, "width": frames.width, "quality": frames.quality}
    differ = [k for k, v in trained.items() if have[k] != v]
    if differ:
        raise RrmError(f"reward {reward.name} was trained on frames of other "
                       f"{', '.join(differ)} than {data.dataset.root}'s ({trained} vs "
                       f"{ {k: have[k] for k in trained} }); score data rendered as its was")


def score_steps(reward: RewardFunction, data: SplitData, whole_episodes: bool) -> StepScores:
    """Score the split's segments (and, if asked, the whole episodes they come from)."""
    check_feature_source(reward, data)
    check_frame_source(reward, data)
    if whole_episodes:
        rows = window_rows(data.episodes["index_from"], data.episodes["length"])
    else:
        rows = window_rows(data.segments["first"], data.segments["length"])
    columns = dataset_windows(data.dataset, reward.columns, reward.window, rows)
    return score_rows(reward, columns, rows)


def pair_frame(data: SplitData, segment_scores: np.ndarray) -> pd.DataFrame:
    """Per-pair results, like RewardBench's rows: scores, P(A ≻ B), label, strict correctness.

    ``correct`` is null on tie labels (0.5); otherwise true only when the score difference
    has the label's sign (a predicted tie counts as wrong).
    """
    pairs = data.pairs
    score_a = segment_scores[pairs["seg_a"].to_numpy()]
    score_b = segment_scores[pairs["seg_b"].to_numpy()]
    label = pairs["label"].to_numpy(np.float64)
    tie = label == TIE
    correct = pd.array(np.sign(score_a - score_b) == np.sign(label - TIE), dtype="boolean")
    correct[tie] = pd.NA
    return pd.DataFrame({
        "pair_index": pairs["pair_index"].to_numpy(),
        "teacher": pairs["teacher"].to_numpy(),
        "segment_a": pairs["segment_a"].to_numpy(),
        "segment_b": pairs["segment_b"].to_numpy(),
        "score_a": score_a,
        "score_b": score_b,
        "p_a": preference_probability(score_a - score_b),
        "label": label.astype(np.float32),
        "correct": correct,
    })


@dataclass(frozen=True)
class Scored:
    """One reward's predictions on a split: per step, and summed per segment and per episode."""

    ref: str
    steps: StepScores
    segment: RewardOutput
    episode: RewardOutput

    @classmethod
    def of(cls, ref: str, steps: StepScores, data: SplitData) -> Scored:
        segments, episodes = data.segments, data.episodes
        return cls(ref, steps, steps.window_sums(segments["first"], segments["length"]),
                   steps.window_sums(episodes["index_from"], episodes["length"]))

    def views(self) -> dict[str, str]:
        """``{view: part}``: the total, plus the prior alone for a residual model (one whose
        prior and residual parts are both non-zero)."""
        nonzero = {part: bool(np.any(values)) for part, values in self.steps.output.parts()
                   .items()}
        if nonzero["prior"] and nonzero["residual"]:
            return {self.ref: "total", f"{self.ref} · prior": "prior"}
        return {self.ref: "total"}


def score_rewards(refs: list[str], data: SplitData,
                  rewards: Sequence[RewardFunction] | None = None) -> list[Scored]:
    """Resolve each reward reference (all first, so a bad one fails fast; ``rewards``: the
    caller's, already resolved) and score the split's whole episodes with it."""
    if rewards is None:
        rewards = [resolve_reward(ref) for ref in refs]
    return [Scored.of(ref, score_steps(reward, data, whole_episodes=True), data)
            for ref, reward in zip(refs, rewards, strict=True)]
