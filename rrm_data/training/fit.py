"""The one reward-fitting routine, shared by train-reward (Lightning) and train-online.

Both fit a ``RewardNetwork`` by the same parts, so they cannot drift apart:

- ``seeded_network``: the network initialized from a seed (what ``pl.seed_everything``
  followed by building the ``RewardLearner`` gives);
- ``reward_optimizer``: Adam over its parameters;
- ``PairOrder``: the order pairs are visited in, one permutation per epoch from one
  generator seeded with the run's seed (the data module's sampler; batches are its slices);
- ``preference_step``: the Bradley-Terry loss of one batch (the LightningModule's
  ``training_step`` calls it);
- ``fit_epoch``: one epoch of those steps with Adam, as Lightning runs them (the online
  learner's epochs);
- ``input_normalization``: the inputs' mean and std, computed once.

From the same labels, seed and settings the two give bit-identical weights
(``tests/test_fit.py``). No Lightning here: the online loop imports only torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Sampler

from rrm_data.reward.loss import (
    bradley_terry_loss,
    decided_agreement,
    preference_logits,
    segment_returns,
)
from rrm_data.reward.networks import RewardNetwork
from rrm_data.reward.spec import NetworkSpec, Normalization

MIN_STD = 1e-6  # a feature whose std is below this (a constant) is not scaled


def seeded_network(spec: NetworkSpec, seed: int, device: str | torch.device = "cpu"
                   ) -> RewardNetwork:
    """The network of ``spec`` initialized from ``seed``, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return RewardNetwork(spec).to(device)


def reward_optimizer(reward: RewardNetwork, lr: float,
                     weight_decay: float = 0.0) -> torch.optim.Optimizer:
    return torch.optim.Adam(reward.parameters(), lr=lr, weight_decay=weight_decay)


def order_generator(seed: int) -> torch.Generator:
    """The generator of the pairs' order; its state travels with a resumable run."""
    return torch.Generator().manual_seed(seed)


class PairOrder(Sampler[int]):
    """Indices 0..n-1 in a fresh permutation each epoch (each ``iter``), drawn from
    ``generator``; a batch is the next ``batch_size`` of them."""

    def __init__(self, size: int, generator: torch.Generator) -> None:
        self.size, self.generator = size, generator

    def permutation(self) -> Tensor:
        return torch.randperm(self.size, generator=self.generator)

    def __iter__(self) -> Iterator[int]:
        return iter(self.permutation().tolist())

    def __len__(self) -> int:
        return self.size


def preference_step(reward: RewardNetwork, inputs: Mapping[str, Tensor], label: Tensor,
                    label_smoothing: float = 0.0) -> tuple[Tensor, Tensor]:
    """Bradley-Terry loss of a batch of pairs (B, 2, T, width), and the member logits (K, B)."""
    logits = preference_logits(segment_returns(reward, inputs))
    return bradley_terry_loss(logits, label, label_smoothing), logits


@dataclass(frozen=True)
class EpochResult:
    agreement: float  # ensemble mean's accuracy on the non-tie pairs (1.0 when all tie)
    loss: float  # mean over pairs


def fit_epoch(reward: RewardNetwork, optimizer: torch.optim.Optimizer,
              inputs: Mapping[str, Tensor], labels: Tensor, *, batch_size: int,
              order: PairOrder, label_smoothing: float = 0.0) -> EpochResult:
    """One epoch of Adam steps over all pairs (P, 2, T, width) in ``order``: the steps the
    Lightning trainer takes with the data module's sampler and ``training_step``."""
    right, decided, loss_sum = 0, 0, 0.0
    permutation = order.permutation()
    for i in range(0, len(labels), batch_size):
        rows = permutation[i:i + batch_size]
        loss, logits = preference_step(reward, {c: v[rows] for c, v in inputs.items()},
                                       labels[rows], label_smoothing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        predicted, target = decided_agreement(logits.detach(), labels[rows])
        right += int((predicted == target).sum())
        decided += len(target)
        loss_sum += float(loss.detach()) * len(rows)
    return EpochResult(right / decided if decided else 1.0, loss_sum / max(len(labels), 1))


def input_normalization(columns: Mapping[str, Tensor], inputs: Iterable[str]) -> Normalization:
    """Mean and std (float64) of the concatenated ``inputs``, each column (..., width) taken
    as rows of steps; a constant feature keeps std 1."""
    x = torch.cat([columns[name].reshape(-1, columns[name].shape[-1]).double()
                   for name in inputs], dim=1)
    std = x.std(dim=0, correction=0)
    std = torch.where(std > MIN_STD, std, torch.ones_like(std))
    return Normalization(tuple(x.mean(dim=0).tolist()), tuple(std.tolist()))
