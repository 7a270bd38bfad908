"""What offline algorithms read: a dataset's transitions as tensors, rewards rescaled, and its
labelled segment pairs as step rows.

Reward normalisation (``normalize_rewards``): every reward, the true one included, is
min-max scaled to [0, 1] over the dataset's transitions, r ← (r − min r) / (max r − min r),
as Preference Transformer's ``reward_from_preference`` does for learned rewards before IQL
(Kim et al. 2023; also LiRE's and Uni-RLHF's practice). Rewards of very different scales
(Meta-World's 0–10 per step, a residual model's, a prior's) then train with the same IQL
temperature and expectile. A constant reward (``zero``) stays all zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import step_columns
from rrm_data.dataset.reader import DatasetDir
from rrm_data.errors import RrmError
from rrm_data.sim.transitions import Transitions
from rrm_data.training.pairs import labelled_pairs, segment_windows

ACTION_EDGE = 1.0 - 1e-4  # actions kept inside (−1, 1): a tanh-Gaussian's log-density is finite


def normalize_rewards(rewards: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """Min-max scaled to [0, 1] over the dataset (see the module doc); the scale used."""
    low, high = float(rewards.min()), float(rewards.max())
    span = high - low
    scaled = (rewards - low) / span if span > 0 else np.zeros_like(rewards)
    return scaled.astype(np.float32), {"min": low, "max": high}


@dataclass(frozen=True)
class TransitionTensors:
    """Transitions on the training device; ``done`` marks terminal steps only (a time limit
    bootstraps, see ``sim.transitions``)."""

    observation: Tensor
    action: Tensor
    reward: Tensor
    next_observation: Tensor
    done: Tensor

    @classmethod
    def of(cls, t: Transitions, rewards: np.ndarray, device: str) -> TransitionTensors:
        def put(a: np.ndarray) -> Tensor:
            return torch.as_tensor(np.ascontiguousarray(a), device=device)

        return cls(put(t.observations.astype(np.float32)),
                   put(t.actions.clip(-ACTION_EDGE, ACTION_EDGE).astype(np.float32)),
                   put(rewards.astype(np.float32)[:, None]),
                   put(t.next_observations.astype(np.float32)), put(t.terminals[:, None]))

    def __len__(self) -> int:
        return len(self.reward)

    def batch(self, rows: Tensor) -> Any:
        """These rows as the TensorDict TorchRL's losses read."""
        from tensordict import TensorDict

        done = self.done[rows]
        return TensorDict({"observation": self.observation[rows], "action": self.action[rows],
                           "next": {"observation": self.next_observation[rows],
                                    "reward": self.reward[rows], "done": done,
                                    "terminated": done}}, batch_size=[len(rows)])


@dataclass(frozen=True)
class SegmentPairs:
    """A split's labelled pairs of one teacher for CPL: the step rows of each pair's two
    segments (P, 2, T), P(a ≻ b) (P,), and every step's observation and action."""

    rows: Tensor
    label: Tensor
    observation: Tensor
    action: Tensor

    def __len__(self) -> int:
        return len(self.label)


def segment_pairs(dataset: DatasetDir, split: str, teacher: str, device: str,
                  num_labels: int | None = None) -> SegmentPairs:
    """One teacher's pairs of ``split`` (train-reward's reading of them, in pair order; the
    first ``num_labels`` when given) as step rows."""
    first, length = segment_windows(dataset)
    pairs = labelled_pairs(dataset, split, teacher, first)
    if num_labels is not None:
        if num_labels > len(pairs):
            raise RrmError(f"{dataset.root}: num_labels={num_labels}, but split '{split}' has "
                           f"{len(pairs)} '{teacher}' labels")
        pairs = pairs.take(slice(0, num_labels))
    rows = pairs.first[..., None] + np.arange(length)
    columns = step_columns(dataset, [fmt.STATE, fmt.ACTION])
    return SegmentPairs(torch.as_tensor(rows, device=device),
                        torch.as_tensor(pairs.label.astype(np.float32), device=device),
                        torch.as_tensor(columns[fmt.STATE].astype(np.float32), device=device),
                        torch.as_tensor(columns[fmt.ACTION].clip(-ACTION_EDGE, ACTION_EDGE)
                                        .astype(np.float32), device=device))
