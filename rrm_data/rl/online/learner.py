"""r̂ trained online on every label so far, as B-Pref does after each round of queries:
epochs of Bradley-Terry (the project's one loss) until train agreement reaches the target
or the epoch cap. The model is updated in place, so the environments' reward and the
relabelling see the new r̂ at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rrm_data.reward.artifact import LearnedReward
from rrm_data.reward.loss import (
    bradley_terry_loss,
    decided_agreement,
    preference_logits,
    segment_returns,
)
from rrm_data.reward.networks import RewardNetwork
from rrm_data.reward.spec import NetworkSpec, RewardSpec


@dataclass(frozen=True)
class FitResult:
    epochs: int
    agreement: float
    loss: float


class OnlineRewardLearner:
    """A residual reward model and its Adam optimizer, trained on a growing set of labels."""

    def __init__(self, spec: NetworkSpec, lr: float, batch_size: int, max_epochs: int,
                 target_agreement: float, seed: int, device: str = "cpu") -> None:
        self.generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = RewardNetwork(spec).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.batch_size, self.max_epochs = batch_size, max_epochs
        self.target_agreement = target_agreement
        self.reward = LearnedReward(self.model, RewardSpec.learned("reward", spec))

    def set_normalization(self, inputs: Mapping[str, Tensor]) -> None:
        """Fix input mean and std from steps (N, width) of the first round's episodes."""
        x = torch.cat([inputs[name].reshape(-1, width).double()
                       for name, width in self.model.inputs.items()], dim=1)
        std = x.std(dim=0, correction=0)
        std = torch.where(std > 1e-6, std, torch.ones_like(std))
        self.reward.set_normalization(x.mean(dim=0), std)

    def fit(self, inputs: Mapping[str, Tensor], labels: Tensor) -> FitResult:
        """Epochs over all labelled pairs until train agreement ≥ target or the epoch cap."""
        self.model.train()
        n = len(labels)
        agreement, loss_sum, epochs = 0.0, 0.0, 0
        while epochs < self.max_epochs:
            epochs += 1
            order = torch.randperm(n, generator=self.generator)
            right, decided, loss_sum = 0, 0, 0.0
            for i in range(0, n, self.batch_size):
                rows = order[i:i + self.batch_size]
                batch = {c: v[rows] for c, v in inputs.items()}
                logits = preference_logits(segment_returns(self.model, batch))
                loss = bradley_terry_loss(logits, labels[rows])
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                predicted, target = decided_agreement(logits.detach(), labels[rows])
                right += int((predicted == target).sum())
                decided += len(target)
                loss_sum += float(loss.detach()) * len(rows)
            agreement = right / decided if decided else 1.0
            if agreement >= self.target_agreement:
                break
        self.model.eval()
        return FitResult(epochs, agreement, loss_sum / max(n, 1))

    def state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])


def as_labels(values: np.ndarray, device: str | torch.device = "cpu") -> Tensor:
    return torch.as_tensor(values, dtype=torch.float32, device=device)
