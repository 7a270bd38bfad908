"""r̂ trained online on every label so far, as B-Pref does after each round of queries:
epochs of ``training.fit`` (the routine train-reward's Lightning trainer runs too) until
train agreement reaches the target or the epoch cap. The model is updated in place, so the
environments' reward and the relabelling see the new r̂ at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rrm_data.reward.artifact import LearnedReward
from rrm_data.reward.spec import NetworkSpec, RewardSpec
from rrm_data.training.fit import (
    EpochResult,
    PairOrder,
    fit_epoch,
    input_normalization,
    reward_optimizer,
    seeded_start,
)


@dataclass(frozen=True)
class FitResult:
    epochs: int
    agreement: float
    loss: float


class OnlineRewardLearner:
    """A residual reward model and its Adam optimizer, trained on a growing set of labels
    by ``training.fit``, the routine train-reward's Lightning trainer runs too."""

    def __init__(self, spec: NetworkSpec, *, lr: float, batch_size: int, max_epochs: int,
                 target_agreement: float, seed: int, device: str = "cpu") -> None:
        self.model, self.generator = seeded_start(spec, seed, device)
        self.optimizer = reward_optimizer(self.model, lr)
        self.batch_size, self.max_epochs = batch_size, max_epochs
        self.target_agreement = target_agreement
        self.reward = LearnedReward(self.model, RewardSpec.learned("reward", spec))

    def set_normalization(self, inputs: Mapping[str, Tensor]) -> None:
        """Fix input mean and std from steps (N, width) of the first round's episodes."""
        self.reward.set_normalization(input_normalization(inputs, self.model.inputs))

    def fit(self, inputs: Mapping[str, Tensor], labels: Tensor) -> FitResult:
        """Epochs over all labelled pairs until train agreement ≥ target or the epoch cap."""
        self.model.train()
        order = PairOrder(len(labels), self.generator)
        epochs, result = 0, EpochResult(0.0, 0.0)
        while epochs < self.max_epochs:
            epochs += 1
            result = fit_epoch(self.model, self.optimizer, inputs, labels,
                               batch_size=self.batch_size, order=order)
            if result.agreement >= self.target_agreement:
                break
        self.model.eval()
        return FitResult(epochs, result.agreement, result.loss)

    def state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])


def as_labels(values: np.ndarray, device: str | torch.device = "cpu") -> Tensor:
    return torch.as_tensor(values, dtype=torch.float32, device=device)
