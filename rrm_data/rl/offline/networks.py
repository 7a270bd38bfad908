"""The networks offline algorithms share: a tanh-Gaussian actor, Q and V multilayer perceptrons,
and the update count a learner's schedule reads.

Plain torch modules, so a saved actor loads without TorchRL (``collect policy=offline:RUN``);
``torchrl_actor`` wraps one for TorchRL's losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from rrm_data.triton_apart import load_triton_apart

LOG_STD_RANGE = (-5.0, 2.0)  # IQL's clamp of the actor's log standard deviation


def mlp(inputs: int, hidden: Sequence[int], outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inputs, width), nn.ReLU()]
        inputs = width
    return nn.Sequential(*layers, nn.Linear(inputs, outputs))


class GaussianActor(nn.Module):
    """obs → (loc, scale) of a Gaussian squashed by tanh into the action box [−1, 1]; its
    deterministic action is tanh(loc)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int]) -> None:
        load_triton_apart()  # every offline learner has an actor: before its first Adam step
        super().__init__()
        self.net = mlp(obs_dim, hidden, 2 * action_dim)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        loc, log_std = self.net(obs).chunk(2, dim=-1)
        return loc, log_std.clamp(*LOG_STD_RANGE).exp()

    def act(self, obs: Tensor) -> Tensor:
        return torch.tanh(self(obs)[0])


class QNetwork(nn.Module):
    """(obs, action) → Q."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.net = mlp(obs_dim + action_dim, hidden, 1)

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.net(torch.cat([obs, action], dim=-1))


class UpdateCount(nn.Module):
    """Gradient steps taken, a buffer so the checkpoint keeps where a learner's schedule
    stands (TD3+BC's actor delay, CPL's BC pretraining)."""

    count: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.long))


def torchrl_actor(actor: GaussianActor) -> Any:
    """``actor`` as TorchRL's probabilistic actor (TanhNormal on the action box)."""
    from tensordict.nn import TensorDictModule
    from torchrl.modules import ProbabilisticActor, TanhNormal

    module = TensorDictModule(actor, in_keys=["observation"], out_keys=["loc", "scale"])
    return ProbabilisticActor(module, in_keys=["loc", "scale"], distribution_class=TanhNormal,
                              distribution_kwargs={"low": -1.0, "high": 1.0},
                              return_log_prob=False)
