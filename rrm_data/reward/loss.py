"""Bradley-Terry on segment returns: the one loss every reward trainer uses.

P(a ≻ b) = σ(Σ_t r̂(a_t) − Σ_t r̂(b_t)); the loss is cross-entropy with soft labels (0.5 for
ties), averaged over ensemble members, each trained on its own prediction. The Lightning
trainer (offline) and the online loop both call these functions, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from rrm_data.reward.networks import RewardNetwork


def segment_returns(reward: RewardNetwork, inputs: Mapping[str, Tensor]) -> Tensor:
    """Segment returns of each ensemble member: (K, B, 2) for inputs (B, 2, T, width), or
    for a sequence reward runs (B, 2, T + span − 1, width) (``segment_rewards``)."""
    return reward.segment_rewards(inputs).members.sum(dim=-1)


def preference_logits(returns: Tensor) -> Tensor:
    """log-odds of P(a ≻ b) per member, (K, B), from member returns (K, B, 2)."""
    return returns[..., 0] - returns[..., 1]


def bradley_terry_loss(logits: Tensor, label: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Soft-label cross-entropy of member logits (K, B) against labels P(a ≻ b) (B,)."""
    target = (label * (1.0 - label_smoothing) + 0.5 * label_smoothing).expand_as(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def decided_agreement(logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
    """(predictions, targets) of the ensemble mean on non-tie pairs, for an accuracy metric."""
    decided = label != 0.5
    return (logits.mean(dim=0)[decided] > 0).long(), label[decided].long()


def member_probabilities(logits: Tensor) -> Tensor:
    """P(a ≻ b) per member, (K, B): what query selection measures disagreement on."""
    return torch.sigmoid(logits)
