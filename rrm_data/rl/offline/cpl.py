"""CPL (Hejna et al. 2023): the policy fitted straight to the preference pairs, no reward
model and no value function; the loss is ``losses.cpl_loss``.

As the authors' code for state-based Meta-World (github.com/jhejna/cpl,
``configs/mw_state_*/cpl.yaml``): the actor is deterministic, so log π(a|s) is a
unit-variance Gaussian's around its action tanh(loc(s)), −‖tanh(loc(s)) − a‖² up to a
constant (the actor's scale is not used, so it cannot be shrunk to inflate log π); the
first ``pretrain`` share of the steps (theirs 200k of 500k) fits behaviour cloning of
every step of both segments alone, then Adam starts afresh and its learning rate warms up
linearly over ``warmup`` of the steps (theirs 10k of 500k) on the CPL loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from rrm_data.config import COUNT, DISCOUNT, NON_NEGATIVE, POSITIVE, doc
from rrm_data.rl.offline.data import SegmentPairs
from rrm_data.rl.offline.losses import cpl_loss
from rrm_data.rl.offline.networks import GaussianActor, UpdateCount


@dataclass
class CPLSettings:
    """The authors' settings for state-based Meta-World, but 64 pairs a step (theirs 96)."""

    batch_size: int = field(default=64, metadata=doc("pairs per gradient step", COUNT))
    alpha: float = field(default=0.1, metadata=doc("temperature α on log π", POSITIVE))
    bias: float = field(default=0.5, metadata=doc("conservative bias λ on the dispreferred "
                                                  "segment", DISCOUNT))
    discount: float = field(default=1.0, metadata=doc("discount γ inside a segment",
                                                      DISCOUNT))
    bc_weight: float = field(default=0.0, metadata=doc(
        "β of the BC regulariser after pretraining: (1 − β) L_CPL + β L_BC", NON_NEGATIVE))
    pretrain: float = field(default=0.4, metadata=doc(
        "share of steps= that fit BC alone before CPL (authors: 200k of 500k)", DISCOUNT))
    warmup: float = field(default=0.02, metadata=doc(
        "share of steps= over which CPL's learning rate rises linearly from 0 after "
        "pretraining (authors: 10k of 500k)", DISCOUNT))


class CPL:
    """One CPL learner: ``update`` takes a batch of pair rows."""

    def __init__(self, actor: GaussianActor, pairs: SegmentPairs, settings: CPLSettings,
                 learning_rate: float, steps: int) -> None:
        self.actor, self.pairs, self.s = actor, pairs, settings
        self.learning_rate = learning_rate
        self.pretrain_steps = round(settings.pretrain * steps)
        self.warmup_steps = max(round(settings.warmup * steps), 1)
        self.optimizer = self._adam()
        self.updates = UpdateCount()

    def _adam(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.actor.parameters(), lr=self.learning_rate)

    def modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "updates": self.updates}

    def size(self) -> int:
        return len(self.pairs)

    def update(self, rows: torch.Tensor) -> dict[str, float]:
        step = int(self.updates.count)
        if step == self.pretrain_steps and step > 0:  # CPL starts with a fresh Adam
            self.optimizer = self._adam()
        steps = self.pairs.rows[rows]  # (B, 2, T)
        action = self.actor.act(self.pairs.observation[steps])
        log_probs = -(action - self.pairs.action[steps]).square().sum(-1)
        losses = cpl_loss(log_probs, self.pairs.label[rows], self.s.alpha, self.s.bias,
                          self.s.discount, self.s.bc_weight)
        if step < self.pretrain_steps:
            loss = losses["loss_bc"]
        else:
            loss = losses["loss"]
            rate = min(1.0, (step - self.pretrain_steps + 1) / self.warmup_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate * rate
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.updates.count += 1
        return {k: v.item() for k, v in losses.items() if k != "loss"}
