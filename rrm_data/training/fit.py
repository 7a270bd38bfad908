"""The one reward-fitting routine, shared by train-reward (Lightning) and train-online.

Both fit a ``RewardNetwork`` by the same parts, so they cannot drift apart:

- ``seeded_start``: the network initialized from a seed, and the generator of the pairs'
  order, which continues the same random stream (``seeded_network``: the network alone);
- ``reward_optimizer``: Adam over its trained parameters;
- ``PairOrder``: the order pairs are visited in, one permutation per epoch from that
  generator (the data module's sampler; batches are its slices);
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


def seeded_start(spec: NetworkSpec, seed: int, device: str | torch.device = "cpu"
                 ) -> tuple[RewardNetwork, torch.Generator]:
    """The network of ``spec`` initialized from ``seed`` and the generator of the pairs' order,
    which goes on from the state the initialization left: one stream, as torch's global one
    was when train-reward seeded it (``pl.seed_everything``) and Lightning drew the order from
    it, so the weights are those runs' weights. The global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)  # the CPU one alone: CUDA's untouched
        network = RewardNetwork(spec)
        order = torch.Generator().set_state(torch.get_rng_state())
    return network.to(device), order


def seeded_network(spec: NetworkSpec, seed: int, device: str | torch.device = "cpu"
                   ) -> RewardNetwork:
    """The network of ``spec`` initialized from ``seed``, leaving the global RNG as it was."""
    return seeded_start(spec, seed, device)[0]


def reward_optimizer(reward: RewardNetwork, lr: float,
                     weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam over the parameters that train (not a fine-tuned encoder's frozen part)."""
    trained = [p for p in reward.parameters() if p.requires_grad]
    return torch.optim.Adam(trained, lr=lr, weight_decay=weight_decay)


class PairOrder(Sampler[int]):
    """Indices 0..n-1 in a fresh permutation each epoch (each ``iter``), drawn from
    ``generator`` (``seeded_start``'s); a batch is the next ``batch_size`` of them."""

    def __init__(self, size: int, generator: torch.Generator) -> None:
        self.size, self.generator = size, generator

    def permutation(self) -> Tensor:
        """Three 64-bit draws per epoch, the middle one seeding the permutation: the draws
        Lightning's epoch of a shuffled DataLoader made from the global stream (the train
        loader's base seed, its ``RandomSampler``'s seed, the validation loader's base seed)."""
        draws = torch.empty(3, dtype=torch.int64).random_(generator=self.generator)
        epoch = torch.Generator().manual_seed(int(draws[1]))
        return torch.randperm(self.size, generator=epoch)

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
