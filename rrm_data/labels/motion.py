"""How the hand moves in each segment: one vectorised function per quantity.

The motion teachers (``labels.teachers``: ``smooth``, ``efficient``, ``safe``, ``quality``)
label pairs by these, and any later evaluation must call the same functions, so a
teacher's criterion and its measurement cannot drift apart. Each takes all segments at
once, arrays of shape (segments, horizon, …), and returns one value per segment; lower is
better for every cost here. Positions are metres (``observation.state``'s hand and first
object, see ``dataset.observation``), a step is one control step of the environment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rrm_data.dataset import format as fmt
from rrm_data.dataset.observation import HAND, OBJECT
from rrm_data.errors import RrmError

MIN_JERK_STEPS = 4  # a third difference needs four positions


@dataclass(frozen=True)
class SegmentMotion:
    """Hand and object positions (segments, horizon, 3) and true per-step rewards
    (segments, horizon) of every segment of a dataset, from its steps table."""

    hand: np.ndarray
    object: np.ndarray
    rewards: np.ndarray

    @classmethod
    def gather(cls, state: np.ndarray, rewards: np.ndarray, first: np.ndarray,
               length: int) -> SegmentMotion:
        """The windows [first, first + length) of the steps' ``observation.state`` (N, 39)
        and ``next.reward`` (N,)."""
        window = np.asarray(first, np.int64)[:, None] + np.arange(length)[None, :]
        state = np.asarray(state, np.float64)
        return cls(hand=state[:, HAND][window], object=state[:, OBJECT][window],
                   rewards=np.asarray(rewards, np.float64)[window])

    @property
    def horizon(self) -> int:
        return int(self.hand.shape[1])


MOTION_COLUMNS = (fmt.STATE, fmt.REWARD)  # the steps columns SegmentMotion.gather reads


def mean_squared_jerk(hand: np.ndarray) -> np.ndarray:
    """Mean over the segment of ‖x_{t+3} − 3x_{t+2} + 3x_{t+1} − x_t‖² (m²/step⁶), the
    squared third difference of the hand position, over the H − 3 steps inside it."""
    if hand.shape[1] < MIN_JERK_STEPS:
        raise RrmError(f"mean squared jerk needs segments of at least {MIN_JERK_STEPS} steps, "
                       f"these have {hand.shape[1]}")
    jerk = hand[:, 3:] - 3.0 * hand[:, 2:-1] + 3.0 * hand[:, 1:-2] - hand[:, :-3]
    return np.square(jerk).sum(axis=-1).mean(axis=1)


def step_speeds(hand: np.ndarray) -> np.ndarray:
    """‖x_{t+1} − x_t‖ (m/step) of each of the H − 1 steps inside the segment."""
    return np.linalg.norm(np.diff(hand, axis=1), axis=-1)


def path_length(hand: np.ndarray) -> np.ndarray:
    """Σ_t ‖x_{t+1} − x_t‖ (m): how far the hand travels within the segment."""
    return step_speeds(hand).sum(axis=1)


def path_per_progress(hand: np.ndarray, rewards: np.ndarray, floor: float) -> np.ndarray:
    """Hand path length ÷ max(mean true reward per step, floor): metres travelled per unit
    of task progress, progress measured by Meta-World's shaped reward (0–10, 10 at
    success), the task's own measure of how far along it is. The floor keeps segments that
    make no progress finite (and ranks them by path length alone among themselves)."""
    return path_length(hand) / np.maximum(rewards.mean(axis=1), floor)


def peak_speed_near(hand: np.ndarray, obj: np.ndarray, radius: float) -> np.ndarray:
    """max over steps t with ‖x_t − object_t‖ < radius of ‖x_{t+1} − x_t‖ (m/step); 0 for a
    segment whose hand never comes that close. A max, not a sum: one fast pass near the
    object is what is unsafe, however brief."""
    near = np.linalg.norm(hand[:, :-1] - obj[:, :-1], axis=-1) < radius
    return np.where(near, step_speeds(hand), 0.0).max(axis=1)


def z_scores(values: np.ndarray) -> np.ndarray:
    """(v − mean) / std over the given segments (std 0: all zeros), so quantities of
    different units can be weighed together and β, ε apply in one unit."""
    std = float(values.std())
    return (values - values.mean()) / std if std > 0 else np.zeros_like(values)


@dataclass(frozen=True)
class PairMotion:
    """Every segment's motion and which two each pair compares (rows of ``segments``):
    the motion teachers standardise over all the dataset's segments, not only the pairs'."""

    segments: SegmentMotion
    a: np.ndarray
    b: np.ndarray
