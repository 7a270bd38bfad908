"""TD3+BC (Fujimoto & Gu 2021) on TorchRL's ``TD3BCLoss``: TD3's twin Q regression to
r + γ min Q′(s′, π′(s′) + clipped noise), and every ``policy_delay``-th step a deterministic
actor step on −λQ(s, π(s)) + (π(s) − a)², λ = α / mean|Q|, then a soft update of the target
actor and Q pair. The target action's noise is drawn from torch's global generator, which
the trainer's checkpoint keeps. The actor is the offline ``GaussianActor`` acting by
tanh(loc), so its policy is saved, rolled out and evaluated as IQL's and CPL's are.
Unlike the authors' code, states are not standardised (as for IQL here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from rrm_data.config import COUNT, DISCOUNT, NON_NEGATIVE, POSITIVE, doc
from rrm_data.rl.offline.data import TransitionTensors
from rrm_data.rl.offline.networks import GaussianActor, QNetwork, UpdateCount


@dataclass
class TD3BCSettings:
    """The authors' settings (github.com/sfujim/TD3_BC), with the Q loss their MSE."""

    alpha: float = field(default=2.5, metadata=doc("α: λ = α / mean|Q| weighs Q against BC",
                                                    POSITIVE))
    policy_noise: float = field(default=0.2, metadata=doc(
        "standard deviation of the target action's noise", NON_NEGATIVE))
    noise_clip: float = field(default=0.5, metadata=doc("clip of that noise", NON_NEGATIVE))
    policy_delay: int = field(default=2, metadata=doc(
        "Q steps per actor (and target) step", COUNT))
    tau: float = field(default=0.005, metadata=doc("target update rate", DISCOUNT))


class DeterministicHead(nn.Module):
    """The Gaussian actor's deterministic action, tanh(loc), for TD3's losses."""

    def __init__(self, actor: GaussianActor) -> None:
        super().__init__()
        self.actor = actor

    def forward(self, obs: Tensor) -> Tensor:
        return self.actor.act(obs)


class TD3BC:
    """One TD3+BC learner: ``update`` takes a batch of transition rows. One Adam over the
    actor and the Q pair: a parameter without a gradient (the actor on Q-only steps) is
    left as it is, so it steps as two optimizers would."""

    def __init__(self, actor: GaussianActor, data: TransitionTensors, hidden: list[int],
                 settings: TD3BCSettings, gamma: float, learning_rate: float) -> None:
        from tensordict.nn import TensorDictModule
        from torchrl.objectives import SoftUpdate, TD3BCLoss

        self.actor, self.data, self.s = actor, data, settings
        obs_dim, action_dim = data.observation.shape[1], data.action.shape[1]
        policy = TensorDictModule(DeterministicHead(actor), in_keys=["observation"],
                                  out_keys=["action"])
        qvalue = TensorDictModule(QNetwork(obs_dim, action_dim, hidden),
                                  in_keys=["observation", "action"],
                                  out_keys=["state_action_value"])
        self.loss: Any = TD3BCLoss(policy, qvalue, bounds=(-1.0, 1.0), num_qvalue_nets=2,
                                   policy_noise=settings.policy_noise,
                                   noise_clip=settings.noise_clip, alpha=settings.alpha,
                                   loss_function="l2")
        self.loss.make_value_estimator(gamma=gamma)
        self.target = SoftUpdate(self.loss, tau=settings.tau)
        self.optimizer: torch.optim.Optimizer = torch.optim.Adam(self.loss.parameters(),
                                                                 lr=learning_rate)
        self.updates = UpdateCount()

    def modules(self) -> dict[str, nn.Module]:
        return {"loss": self.loss, "updates": self.updates}

    def size(self) -> int:
        return len(self.data)

    def update(self, rows: torch.Tensor) -> dict[str, float]:
        batch = self.data.batch(rows)
        self.updates.count += 1
        actor_step = int(self.updates.count) % self.s.policy_delay == 0
        q_loss, _ = self.loss.qvalue_loss(batch)
        total = q_loss
        losses = {"loss_qvalue": q_loss.item()}
        if actor_step:
            actor_loss, _ = self.loss.actor_loss(batch)
            total = total + actor_loss
            losses["loss_actor"] = actor_loss.item()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        if actor_step:
            self.target.step()
        return losses
