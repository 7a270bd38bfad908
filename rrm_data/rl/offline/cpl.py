"""CPL (Hejna et al. 2023): the policy fitted straight to the preference pairs, no reward
model and no value function; the loss is ``losses.cpl_loss``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from rrm_data.config import COUNT, DISCOUNT, NON_NEGATIVE, POSITIVE, doc
from rrm_data.rl.offline.data import SegmentPairs
from rrm_data.rl.offline.losses import cpl_loss
from rrm_data.rl.offline.networks import GaussianActor


@dataclass
class CPLSettings:
    """The defaults of the authors' code (github.com/jhejna/cpl, state-based Meta-World)."""

    batch_size: int = field(default=64, metadata=doc("pairs per gradient step", COUNT))
    alpha: float = field(default=0.1, metadata=doc("temperature α on log π", POSITIVE))
    bias: float = field(default=0.5, metadata=doc("conservative bias λ on the dispreferred "
                                                  "segment", DISCOUNT))
    discount: float = field(default=1.0, metadata=doc("discount γ inside a segment",
                                                      DISCOUNT))
    bc_weight: float = field(default=0.0, metadata=doc(
        "β of the BC regulariser: (1 − β) L_CPL + β L_BC", NON_NEGATIVE))


class CPL:
    """One CPL learner: ``update`` takes a batch of pair rows."""

    def __init__(self, actor: GaussianActor, pairs: SegmentPairs, settings: CPLSettings,
                 learning_rate: float) -> None:
        self.actor, self.pairs, self.s = actor, pairs, settings
        self.optimizer: torch.optim.Optimizer = torch.optim.Adam(actor.parameters(),
                                                                 lr=learning_rate)

    def modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor}

    def size(self) -> int:
        return len(self.pairs)

    def update(self, rows: torch.Tensor) -> dict[str, float]:
        from torchrl.modules import TanhNormal

        steps = self.pairs.rows[rows]  # (B, 2, T)
        loc, scale = self.actor(self.pairs.observation[steps])
        dist = TanhNormal(loc, scale, low=-1.0, high=1.0)
        log_probs = dist.log_prob(self.pairs.action[steps])  # (B, 2, T)
        losses = cpl_loss(log_probs, self.pairs.label[rows], self.s.alpha, self.s.bias,
                          self.s.discount, self.s.bc_weight)
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        self.optimizer.step()
        return {k: v.item() for k, v in losses.items() if k != "loss"}
