"""The Lightning module: Bradley-Terry on segment returns of a residual reward model.

P(a ≻ b) = σ(Σ_t r̂(a_t) − Σ_t r̂(b_t)); the loss is cross-entropy with soft labels (0.5 for
ties, optional label smoothing), averaged over ensemble members, each trained on its own
prediction. Agreement is strict accuracy of the ensemble mean on non-tie pairs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.classification import BinaryAccuracy

from rrm_data.reward.networks import ResidualReward, prior_name

# Keys of the ``model`` config that describe the reward; all others go to the network.
REWARD_KEYS = ("network", "inputs", "prior", "prior_weight", "negate_prior", "prior_as_input",
               "normalize")


def reward_spec(model: Mapping[str, Any], widths: Mapping[str, int],
                stats: Mapping[str, list[float]] | None) -> dict[str, Any]:
    """The JSON-able spec of a reward model (what the artifact stores) from a ``model`` config."""
    return {
        "network": str(model["network"]),
        "params": {k: v for k, v in model.items() if k not in REWARD_KEYS},
        "inputs": [{"column": name, "width": int(widths[name])} for name in model["inputs"]],
        "prior": {"name": prior_name(str(model["prior"])),
                  "weight": float(model["prior_weight"]),
                  "negate": bool(model["negate_prior"]),
                  "as_input": bool(model["prior_as_input"])},
        "normalization": dict(stats) if stats is not None else None,
    }


class RewardLearner(pl.LightningModule):
    """Trains ``ResidualReward(spec)`` from batches of segment pairs with Adam."""

    def __init__(self, spec: dict[str, Any], lr: float = 3e-4, weight_decay: float = 0.0,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.reward = ResidualReward(spec)
        self.train_agreement = BinaryAccuracy()
        self.val_agreement = BinaryAccuracy()

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """Segment returns of each ensemble member: (K, B, 2) for inputs (B, 2, T, width)."""
        return self.reward(inputs).members.sum(dim=-1)

    def _step(self, batch: dict[str, Any], stage: str, agreement: BinaryAccuracy) -> Tensor:
        returns = self(batch["inputs"])
        logits = returns[..., 0] - returns[..., 1]  # (K, B)
        label = batch["label"]
        smoothing = self.hparams["label_smoothing"]
        target = (label * (1.0 - smoothing) + 0.5 * smoothing).expand_as(logits)
        loss = F.binary_cross_entropy_with_logits(logits, target)
        decided = label != 0.5
        agreement.update((logits.mean(dim=0)[decided] > 0).long(), label[decided].long())
        size = len(label)
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True,
                 prog_bar=True, batch_size=size, sync_dist=True)
        self.log(f"{stage}/agreement", agreement, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=size)
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._step(batch, "train", self.train_agreement)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val", self.val_agreement)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.reward.parameters(), lr=self.hparams["lr"],
                                weight_decay=self.hparams["weight_decay"])
