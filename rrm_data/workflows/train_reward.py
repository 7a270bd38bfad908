"""Train a reward model on a preference dataset from a recipe, and export it.

`recipe=` picks a YAML file from `recipes/` (or a path to one) that sets the defaults;
`model=mlp` (an option of recipes/model/) swaps in another model block; every key stays
overridable (`model.hidden=128`, `trainer.max_epochs=5`, `data.num_labels=500`).
`model.finetune_blocks=N` on an image recipe trains the image encoder's last N blocks with
the reward, reading the camera frames instead of cached features (a GPU job at real sizes:
`trainer.accelerator=gpu`). The run directory `out` gets the resolved `config.yaml`,
Lightning checkpoints (`checkpoints/last.ckpt`, used by `resume=true`), `metrics.csv` and the
reward artifact `reward/` that `rrm_data.load_reward` reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from rrm_data.config import (
    COUNT,
    FRACTION,
    HELD_OUT,
    NON_NEGATIVE,
    POSITIVE,
    SEED32,
    build_config,
    doc,
    merge_configs,
    parse_overrides,
)
from rrm_data.dataset.reader import open_dataset
from rrm_data.errors import Interrupted, RrmError, first_line
from rrm_data.io import Kind, check_place, output_lock
from rrm_data.progress import console
from rrm_data.recipes import load_recipe, split_groups
from rrm_data.reward.artifact import ARTIFACT_DIR, export_reward
from rrm_data.reward.networks import build_network
from rrm_data.reward.spec import (
    MODEL_RANGES,
    OPTIONAL_KEYS,
    REWARD_KEYS,
    RewardSpec,
    finetune_blocks,
    prior_name,
    reward_spec,
)
from rrm_data.vision.embeddings import (
    embedding_records,
    ensure_embeddings,
    finetune_inputs,
    image_spec,
    missing_embeddings,
)
from rrm_data.vision.finetune import check_finetune

MAX_PARAMETERS = 10**9  # per input width 1; a larger reward model cannot be meant
# The known numeric pytorch_lightning.Trainer options of the ``trainer`` section.
TRAINER_RANGES = {"max_epochs": COUNT, "min_epochs": NON_NEGATIVE, "log_every_n_steps": COUNT,
                  "check_val_every_n_epoch": COUNT, "accumulate_grad_batches": COUNT,
                  "gradient_clip_val": NON_NEGATIVE}


@dataclass
class DataConfig:
    source: str | None = field(default=None, metadata=doc("dataset directory or Hub id "
                                                            "(shorthand: data=DIR)"))
    teacher: str = field(default="oracle", metadata=doc("teacher whose labels train the model"))
    val_split: str = field(default="episodes", metadata=doc(
        "validation pairs: episodes (those touching a held-out share of the training episodes), "
        "pairs (a share of the train pairs) or test (the test split: then val = test numbers)"))
    val_fraction: float = field(default=0.1, metadata=doc(
        "share of training episodes (val_split=episodes) or pairs (pairs) held out; 0: none",
        HELD_OUT))
    val_teacher: str = field(default="oracle", metadata=doc("teacher of the test-split labels "
                                                            "used with val_split=test"))
    num_labels: int | None = field(default=None, metadata=doc("train on the first N pairs", COUNT))
    batch_size: int = field(default=64, metadata=doc("pairs per batch", COUNT))
    num_workers: int = field(default=0, metadata=doc("DataLoader worker processes", NON_NEGATIVE))


@dataclass
class OptimConfig:
    lr: float = field(default=3e-4, metadata=doc("Adam learning rate", POSITIVE))
    weight_decay: float = field(default=0.0, metadata=doc("Adam weight decay", NON_NEGATIVE))
    label_smoothing: float = field(default=0.0, metadata=doc("mix labels towards 0.5", FRACTION))
    stop_agreement: float | None = field(default=None, metadata=doc(
        "stop when train agreement reaches this (PEBBLE: 0.97)", FRACTION))


@dataclass
class Config:
    recipe: str = field(default="state_residual", metadata=doc("recipe name or YAML path"))
    data: DataConfig = field(default_factory=DataConfig, metadata=doc("dataset and labels"))
    model: dict[str, Any] = field(default_factory=dict, metadata=doc(
        "reward model: network, inputs, prior, prior_weight, negate_prior, prior_as_input, "
        "normalize, window and stride (the k steps a sequence network reads: t − (k−1)·stride … "
        "t), finetune_blocks (image recipes: train the encoder's last N blocks on the frames; "
        "0, the default, reads cached frozen features), and the network's own sizes (from the "
        "recipe)", keys=MODEL_RANGES))
    optim: OptimConfig = field(default_factory=OptimConfig, metadata=doc("optimizer and loss"))
    trainer: dict[str, Any] = field(default_factory=lambda: {
        "max_epochs": 20, "accelerator": "auto", "devices": 1, "deterministic": True,
        "log_every_n_steps": 10, "enable_model_summary": False,
    }, metadata=doc("pytorch_lightning.Trainer arguments", keys=TRAINER_RANGES))
    seed: int = field(default=0, metadata=doc("seed of initialization and batch order", SEED32))
    out: str | None = field(default=None, metadata=doc(
        "run directory (default runs/<recipe>-<data name>-seed<seed>)"))
    resume: bool = field(default=False, metadata=doc("continue from checkpoints/last.ckpt"))
    overwrite: bool = field(default=False, metadata=doc("replace an existing run at out"))


def make_config(overrides: list[str]) -> DictConfig:
    """Defaults, then the recipe's YAML composed with the chosen groups, then the
    command-line overrides."""
    overrides = [f"data.source={o[5:]}" if o.startswith("data=") else o for o in overrides]
    groups, overrides = split_groups(overrides)
    extra = parse_overrides(overrides)
    recipe_name = str(extra.get("recipe", Config.recipe))
    recipe = load_recipe(recipe_name, "model", groups)
    cfg = build_config(Config(), merge_configs(recipe, extra))
    cfg.recipe = recipe_name
    if cfg.out is None and cfg.data.source is not None:
        data_name = Path(str(cfg.data.source).rstrip("/")).name
        cfg.out = f"runs/{Path(recipe_name).stem}-{data_name}-seed{cfg.seed}"
    check_model(cfg.model)
    return cfg


def check_model(model: DictConfig) -> None:
    """Refuse a model config that cannot be built, before any data is read."""
    missing = [k for k in REWARD_KEYS if k not in model and k not in OPTIONAL_KEYS]
    if missing:
        raise RrmError(f"model config lacks {', '.join(missing)} (set them in the recipe)")
    prior_name(str(model.prior))
    if finetune_blocks(model):
        check_finetune(list(model.inputs), finetune_blocks(model))
    spec = reward_spec(model, {name: 1 for name in model.inputs}, None)
    with torch.device("meta"):  # shapes only: a huge model.hidden allocates nothing here
        net = build_network(spec.network, len(spec.inputs), spec.params, spec.window.length)
    size = sum(p.numel() for p in net.parameters())
    if size > MAX_PARAMETERS:
        raise RrmError(f"the reward model would have {size:,} parameters (more than "
                       f"{MAX_PARAMETERS:,}); make model.hidden, layers or members smaller")


def run(cfg: DictConfig) -> None:
    if cfg.data.source is None:
        raise RrmError("data= is required: a dataset directory or Hub id")
    out = Path(cfg.out)
    check_place(out, Kind.REWARD_RUN, inputs={"data": cfg.data.source})
    with output_lock(out):
        train(cfg, out)


def train(cfg: DictConfig, out: Path) -> None:
    """Fit the recipe's reward model into the run directory ``out`` and export it.
    Lightning is imported here, not with the module: ``--help`` and the config checks
    (``benchmark`` builds every command's config first) do not need it."""
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    from rrm_data.training import trainer as trainer_parts
    from rrm_data.training.module import RewardLearner

    dataset = open_dataset(cfg.data.source, check="skip-frames")
    blocks = finetune_blocks(cfg.model)  # > 0: frames in place of features, checked first
    tuning = finetune_inputs(dataset, list(cfg.model.inputs), blocks) if blocks else None
    ckpt = trainer_parts.resume_checkpoint(out, cfg)
    model = cfg.model if tuning is None else {**cfg.model, "inputs": tuning.inputs}
    for encoder in missing_embeddings(dataset, list(model["inputs"])):
        dataset = ensure_embeddings(dataset, encoder)  # written once, read every epoch
    encoders = embedding_records(dataset, list(model["inputs"]))
    datamodule = trainer_parts.make_datamodule(cfg, dataset, list(model["inputs"]))
    datamodule.setup("fit")
    encode = None if tuning is None else tuning.encoder  # frames count as its features
    stats = datamodule.input_stats(model["inputs"], encode) if cfg.model.normalize else None
    widths = {**datamodule.column_widths, **(tuning.widths if tuning else {})}
    network = reward_spec(model, widths, stats, None if tuning is None else tuning.record)
    learner = RewardLearner(network.to_json(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                            label_smoothing=cfg.optim.label_smoothing, seed=cfg.seed)
    if tuning is not None:
        assert learner.reward.encoder is not None  # the spec's encoder record built it
        learner.reward.encoder.start_from(tuning.encoder)  # the pretrained weights
    datamodule.order = learner.order  # the seed's stream goes on from initialization
    trainer = trainer_parts.build_trainer(cfg, out)
    if trainer.is_global_zero:
        trainer_parts.start_run(out, cfg)
    try:
        with trainer_parts.kept_metrics(out, ckpt is not None):
            # our own checkpoint, optimizer state included (not plain tensors)
            trainer.fit(learner, datamodule=datamodule, ckpt_path=ckpt, weights_only=False)
    except RuntimeError as exc:
        if ckpt is None or "state_dict" not in str(exc):
            raise
        raise RrmError(f"{ckpt} does not fit this model config ({first_line(exc)})") \
            from None
    except MisconfigurationException as exc:  # e.g. resuming past trainer.max_epochs
        raise RrmError(first_line(exc)) from None
    except SystemExit:  # Lightning exits after handling Ctrl-C
        if not trainer_parts.interrupted(trainer):
            raise
        raise Interrupted(f"interrupted in epoch {trainer.current_epoch}; the checkpoint is "
                          f"saved: continue with the same command and resume=true") from None
    trainer_parts.save_last(trainer, out)
    if trainer.is_global_zero:
        assert datamodule.train_pairs is not None  # set by setup("fit") above
        training = {"recipe": cfg.recipe, "data": str(cfg.data.source),
                    "tasks": list(dataset.info.tasks),
                    "teacher": cfg.data.teacher, "num_labels": len(datamodule.train_pairs),
                    "seed": cfg.seed, "epochs": trainer.current_epoch}
        image = tuning.image if tuning else image_spec(encoders) if encoders else None
        spec = RewardSpec.learned(out.name, network, training=training, image=image)
        export_reward(learner.reward.cpu(), spec, out / ARTIFACT_DIR)
        metrics = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items()
                   if k.endswith("agreement") or k.endswith("loss_epoch")}
        console.print(f"wrote {out}: {metrics}")


__all__ = ["Config", "make_config", "run"]
