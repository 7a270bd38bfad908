"""IQL (Kostrikov et al. 2022) on TorchRL's ``IQLLoss``: expectile value, Q regression to
r + γV(s′), advantage-weighted actor; one Adam step over actor, Q pair and V per batch,
then a soft update of the target Q pair (TorchRL's ``SoftUpdate``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rrm_data.config import DISCOUNT, POSITIVE, doc
from rrm_data.rl.offline.data import TransitionTensors
from rrm_data.rl.offline.networks import GaussianActor, QNetwork, mlp, torchrl_actor


@dataclass
class IQLSettings:
    """IQL's D4RL locomotion settings (expectile 0.7, temperature 3), which Preference
    Transformer and LiRE also use with learned rewards."""

    expectile: float = field(default=0.7, metadata=doc("expectile τ of the value loss",
                                                        DISCOUNT))
    temperature: float = field(default=3.0, metadata=doc(
        "inverse temperature β of the advantage-weighted actor", POSITIVE))
    tau: float = field(default=0.005, metadata=doc("target Q update rate", DISCOUNT))


def iql_loss(actor: GaussianActor, obs_dim: int, action_dim: int, hidden: list[int],
             settings: IQLSettings, gamma: float) -> Any:
    """TorchRL's ``IQLLoss`` on these networks (two Q nets, one V net)."""
    from tensordict.nn import TensorDictModule
    from torchrl.objectives import IQLLoss

    qvalue = TensorDictModule(QNetwork(obs_dim, action_dim, hidden),
                              in_keys=["observation", "action"],
                              out_keys=["state_action_value"])
    value = TensorDictModule(mlp(obs_dim, hidden, 1), in_keys=["observation"],
                             out_keys=["state_value"])
    loss = IQLLoss(torchrl_actor(actor), qvalue, value, num_qvalue_nets=2,
                   loss_function="l2", temperature=settings.temperature,
                   expectile=settings.expectile)
    loss.make_value_estimator(gamma=gamma)
    return loss


class IQL:
    """One IQL learner: ``update`` takes a batch of transition rows."""

    def __init__(self, actor: GaussianActor, data: TransitionTensors, hidden: list[int],
                 settings: IQLSettings, gamma: float, learning_rate: float) -> None:
        from torchrl.objectives import SoftUpdate

        self.actor, self.data = actor, data
        obs_dim, action_dim = data.observation.shape[1], data.action.shape[1]
        self.loss = iql_loss(actor, obs_dim, action_dim, hidden, settings, gamma)
        self.target = SoftUpdate(self.loss, tau=settings.tau)
        self.optimizer: torch.optim.Optimizer = torch.optim.Adam(self.loss.parameters(),
                                                                 lr=learning_rate)

    def modules(self) -> dict[str, nn.Module]:
        return {"loss": self.loss}

    def size(self) -> int:
        return len(self.data)

    def update(self, rows: torch.Tensor) -> dict[str, float]:
        losses = self.loss(self.data.batch(rows))
        total = losses["loss_actor"] + losses["loss_qvalue"] + losses["loss_value"]
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.target.step()
        return {k: losses[k].item() for k in ("loss_actor", "loss_qvalue", "loss_value")}
