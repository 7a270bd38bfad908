"""The Lightning module: Bradley-Terry on segment returns of a residual reward model.

Its step is ``training.fit.preference_step`` and its optimizer ``reward_optimizer`` (the
online learner runs the same); here the loss is logged with the agreement: strict
accuracy of the ensemble mean on non-tie pairs.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torchmetrics.classification import BinaryAccuracy

from rrm_data.reward.loss import decided_agreement
from rrm_data.reward.spec import REWARD_KEYS, NetworkSpec, reward_spec
from rrm_data.training.fit import preference_step, reward_optimizer, seeded_start


class RewardLearner(pl.LightningModule):
    """Trains a ``RewardNetwork`` from batches of segment pairs with Adam; ``spec`` is its
    ``NetworkSpec`` as JSON (so Lightning's saved hyperparameters stay plain data).

    ``seed`` initializes the network; ``order`` goes on from there to give the pairs' order
    (the data module's ``order``), as in the online learner (``training.fit.seeded_start``).
    A network with an image encoder to fine-tune gets batches of distinct frames
    (``frame_index``): it encodes each once, then scores the pairs.
    """

    def __init__(self, spec: dict[str, Any], lr: float = 3e-4, weight_decay: float = 0.0,
                 label_smoothing: float = 0.0, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.reward, self.order = seeded_start(NetworkSpec.from_json(spec), seed)
        self.train_agreement = BinaryAccuracy()
        self.val_agreement = BinaryAccuracy()

    def _step(self, batch: dict[str, Any], stage: str, agreement: BinaryAccuracy) -> Tensor:
        label = batch["label"]
        inputs = self.reward.encoded(batch["inputs"], batch.get("frame_index"))
        loss, logits = preference_step(self.reward, inputs, label,
                                       self.hparams["label_smoothing"])
        predicted, target = decided_agreement(logits, label)
        if len(target):  # a batch of ties alone (an epoch's short last one can be) has none
            agreement.update(predicted, target)
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
        return reward_optimizer(self.reward, self.hparams["lr"], self.hparams["weight_decay"])


__all__ = ["REWARD_KEYS", "RewardLearner", "reward_spec"]
