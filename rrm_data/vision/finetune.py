"""A pretrained timm encoder whose last blocks train with the reward network (issue 22).

Frozen features (``vision.embeddings``) are cheap but fixed by ImageNet; fine-tuning the top
of the encoder lets the reward adapt what it sees to the task, at the price of running the
encoder on every frame of every batch (a GPU job at real sizes).

A **block** is one entry of the timm model's ``blocks``: for EfficientNet and MobileNet
models a stage of inverted-residual blocks of one width (EfficientNet-Lite0 has 7, the last
its 320-channel stage). Fine-tuning N blocks trains the last N entries and every layer
registered after ``blocks`` (the head convolution and its BatchNorm, ``conv_head``/``bn2``);
everything before keeps its pretrained weights: no gradients, and always in eval mode, so
its BatchNorm statistics do not move either. Models without ``blocks`` (ResNets, ...) are
refused. The starting point is exactly ``load_encoder``'s (weights, hash, preprocessing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self, cast

import torch
from torch import Tensor, nn

from rrm_data.dataset.columns import EMBEDDINGS_PREFIX, is_embedding_column
from rrm_data.errors import RrmError
from rrm_data.vision.encoders import (
    FrozenEncoder,
    Preprocessing,
    TimmModel,
    create_pretrained,
)

# Frames encoded at once outside training (scoring): activations of larger batches outgrow
# a CPU's caches. Training encodes a batch whole: the tuned BatchNorms must see all of it.
INFERENCE_BATCH = 64


def block_count(model: nn.Module, name: str) -> int:
    """How many entries the model's ``blocks`` has; refuses a model without ``blocks``."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Sequential | nn.ModuleList):
        raise RrmError(f"encoder '{name}' has no `blocks` to fine-tune (timm's EfficientNet- "
                       "and MobileNet-style models have them); use model.finetune_blocks=0")
    return len(blocks)


def check_finetune(inputs: Sequence[str], blocks: int) -> str:
    """The encoder whose last ``blocks`` blocks a model with these ``inputs`` fine-tunes: the
    one whose cached features (``embeddings/<encoder>``) it reads. Refuses a model without
    image inputs, or with two encoders, and a block count the encoder does not have (checked
    on its architecture: no weights are read)."""
    images = [c for c in inputs if is_embedding_column(c)]
    if not images:
        raise RrmError(f"model.finetune_blocks={blocks} fine-tunes an image encoder, but the "
                       f"model reads no frames (inputs: {', '.join(inputs)}); use an image "
                       "recipe (recipe=image_frozen, image_frozen_mlp, image_sequence)")
    if len(images) > 1:
        raise RrmError(f"model.finetune_blocks fine-tunes one encoder; the inputs have "
                       f"{len(images)}: {', '.join(images)}")
    name = images[0].removeprefix(EMBEDDINGS_PREFIX)
    model, _ = create_pretrained(name, pretrained=False)
    count = block_count(model, name)
    if not 0 <= blocks <= count:
        raise RrmError(f"model.finetune_blocks={blocks}, but encoder '{name}' has {count} "
                       f"blocks (entries of its timm `blocks`): use 0 to {count}")
    return name


def tuned_parts(model: nn.Module, blocks: int) -> list[nn.Module]:
    """The last ``blocks`` entries of ``model.blocks`` and the layers registered after them."""
    block_count(model, type(model).__name__)
    names = [n for n, _ in model.named_children()]
    after = [m for _, m in list(model.named_children())[names.index("blocks") + 1:]]
    stages = list(cast(nn.Sequential, model.blocks))
    return [*stages[len(stages) - blocks:], *after]


class TunedEncoder(nn.Module):
    """uint8 frames (..., H, W, 3) → features (..., dim) through a timm backbone (no
    classifier) whose parts from ``tuned_parts`` train and whose other parts stay frozen.

    ``train()`` switches only the tuned parts: the backbone itself stays in eval mode (no
    dropout before its removed classifier, frozen BatchNorm statistics).
    """

    def __init__(self, model: nn.Module, preprocessing: Preprocessing, blocks: int) -> None:
        super().__init__()
        self.model, self.preprocessing, self.blocks = model, preprocessing, blocks
        self.model.requires_grad_(False)
        self._tuned = tuned_parts(model, blocks)  # a plain list: registered once, in model
        for part in self._tuned:
            part.requires_grad_(True)
        self.train()  # as a new module is; Lightning keeps submodules' modes as it finds them

    @property
    def dim(self) -> int:
        return int(cast(TimmModel, self.model).num_features)

    def train(self, mode: bool = True) -> Self:
        self.training = mode
        self.model.eval()
        for part in self._tuned:
            part.train(mode)
        return self

    def start_from(self, pretrained: FrozenEncoder) -> None:
        """Load the pretrained weights fine-tuning starts from."""
        self.model.load_state_dict(pretrained.model.state_dict())

    def forward(self, frames: Tensor) -> Tensor:
        lead = frames.shape[:-3]
        flat = frames.reshape(-1, *frames.shape[-3:])
        size = max(len(flat), 1) if self.training else INFERENCE_BATCH
        parts = [self.model(self.preprocessing(flat[i:i + size])).float()
                 for i in range(0, len(flat), size)]
        if not parts:
            return flat.new_zeros((*lead, self.dim), dtype=torch.float32)
        return torch.cat(parts).reshape(*lead, self.dim)


def tuning_record(pretrained: FrozenEncoder, cameras: Sequence[str],
                  blocks: int) -> dict[str, Any]:
    """What a reward records about its fine-tuned encoder: the starting point (name, weights
    SHA-256 and source, preprocessing, features per frame), the cameras it reads and the
    blocks trained. Its weights travel in the reward's own weights file."""
    return {**pretrained.describe(), "cameras": list(cameras), "finetune_blocks": blocks}


def tuned_encoder(record: Mapping[str, Any]) -> TunedEncoder:
    """The encoder a ``tuning_record`` describes, with timm's initial weights: an artifact's
    weights, or the pretrained ones (``start_from``), are loaded over them."""
    model, _ = create_pretrained(str(record["encoder"]), pretrained=False)
    cast(TimmModel, model).reset_classifier(0)
    return TunedEncoder(model, Preprocessing.from_description(record["preprocessing"]),
                        int(record["finetune_blocks"]))
