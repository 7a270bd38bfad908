"""The Lightning side of reward training: trainer, loggers, checkpoints and resuming.

A run directory holds ``config.yaml``, ``checkpoints/last.ckpt`` (what ``resume=true``
continues from), ``metrics.csv``, TensorBoard logs and the exported ``reward/`` artifact.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import cast

import pandas as pd
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from rrm_data.config import changed_keys, config_dict, to_yaml
from rrm_data.dataset.reader import DatasetDir
from rrm_data.errors import RrmError
from rrm_data.io import MARKER, Kind, atomic_file, check_out, remove_owned, write_json
from rrm_data.reward.spec import columns_read, model_window
from rrm_data.training.datamodule import PreferenceDataModule

CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
METRICS = "metrics.csv"


# Keys of a run's config that may change when it is resumed (how long and where it trains).
RESUMABLE_CHANGES = ("trainer", "resume", "overwrite")


def resume_checkpoint(out: Path, cfg: DictConfig) -> Path | None:
    """The checkpoint to resume from (None: a fresh run), refusing to clobber anything but an
    earlier train-reward run (with overwrite=true) or to resume a run of another config."""
    last = out / CHECKPOINTS / LAST_CHECKPOINT
    if not cfg.resume:
        # DDP ranks > 0 re-run the command after rank 0 has written config.yaml.
        # Lightning sets ``rank`` on the function at import; its type does not declare it
        rank = rank_zero_only.rank  # type: ignore[attr-defined]
        if rank == 0 and check_out(out, Kind.REWARD_RUN, cfg.overwrite):
            remove_owned(out)
        return None
    if not last.is_file():
        raise RrmError(f"resume=true but there is no checkpoint at {last}")
    try:
        state = torch.load(last, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many types on a damaged file
        raise RrmError(f"{last}: corrupt checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise RrmError(f"{last}: corrupt checkpoint (no state_dict)")
    if not (out / "config.yaml").is_file():
        raise RrmError(f"out={out} has no config.yaml: it is not a train-reward run to resume")
    saved = cast(DictConfig, OmegaConf.load(out / "config.yaml"))
    changed = changed_keys(config_dict(saved), config_dict(cfg), RESUMABLE_CHANGES)
    if changed:
        raise RrmError(f"out={out} was trained with other settings ({', '.join(changed)}); "
                       "resume only with the same recipe, data and teacher, or start a new run")
    return last


def start_run(out: Path, cfg: DictConfig) -> None:
    """Mark ``out`` as a train-reward run before anything is written into it."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MARKER, {"kind": Kind.REWARD_RUN.value})
    (out / "config.yaml").write_text(to_yaml(cfg))


class CheckpointOnCtrlC(pl.callbacks.OnExceptionCheckpoint):
    """Lightning's checkpoint on an exception, written as ``last.ckpt`` where ``resume=true``
    finds it, for Ctrl-C only: a resume that fails (a checkpoint that does not fit the model)
    must not overwrite the checkpoint it failed on."""

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            trainer.save_checkpoint(self.ckpt_path,
                                    weights_only=False)  # whole: resume needs the optimizer


@contextmanager
def kept_metrics(out: Path, resume: bool) -> Iterator[None]:
    """Lightning's CSVLogger starts metrics.csv afresh: on resume, keep the earlier rows (and
    keep Lightning's notices about what this run does on purpose off the user's screen)."""
    path = out / METRICS
    before = pd.read_csv(path) if resume and path.exists() else None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
            warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
            # a fresh run (ckpt_path=None) beside an OnExceptionCheckpoint: Lightning turns it
            # into ckpt_path="last", finds none, and says both on every fresh run
            warnings.filterwarnings("ignore", message=".*ckpt_path=None.*without a model")
            warnings.filterwarnings("ignore", message=".*there is no last checkpoint available")
            yield
    finally:
        if before is not None:
            frames = [before, *([pd.read_csv(path)] if path.exists() else [])]
            with atomic_file(path) as tmp:
                pd.concat(frames, ignore_index=True).to_csv(tmp, index=False)


def save_last(trainer: pl.Trainer, out: Path) -> None:
    """The finished run's checkpoint (after its last epoch), where resume=true continues."""
    trainer.save_checkpoint(out / CHECKPOINTS / LAST_CHECKPOINT,
                            weights_only=False)  # whole: resume needs the optimizer


def interrupted(trainer: pl.Trainer) -> bool:
    """Whether Ctrl-C stopped ``trainer`` (``CheckpointOnCtrlC`` then saved its checkpoint)."""
    return trainer.interrupted


def loggers(out: Path) -> list[pl.loggers.Logger]:
    loggers: list[pl.loggers.Logger] = [pl.loggers.CSVLogger(out, name="", version="")]
    with suppress(ModuleNotFoundError):  # tensorboard is optional
        loggers.append(pl.loggers.TensorBoardLogger(out, name="tensorboard", version=""))
    return loggers


def callbacks(out: Path, stop_agreement: float | None) -> list[pl.Callback]:
    """A checkpoint after every epoch (``last.ckpt``), saving on Ctrl-C, optional early stop."""
    callbacks: list[pl.Callback] = [pl.callbacks.ModelCheckpoint(
        dirpath=out / CHECKPOINTS, filename=Path(LAST_CHECKPOINT).stem, save_top_k=1,
        every_n_epochs=1, save_on_train_epoch_end=True, enable_version_counter=False),
        CheckpointOnCtrlC(out / CHECKPOINTS, filename=Path(LAST_CHECKPOINT).stem)]
    if stop_agreement is not None:
        callbacks.append(pl.callbacks.EarlyStopping(
            monitor="train/agreement", mode="max", stopping_threshold=stop_agreement,
            patience=10**9, check_on_train_epoch_end=True))
    return callbacks


def quiet_lightning() -> None:
    """Keep Lightning's start-up banners (accelerators, tips) and its own deprecations out."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")
    # a fine-tuned image encoder's frozen part is in eval mode on purpose (vision.finetune)
    warnings.filterwarnings("ignore",
                            message=".*module\\(s\\) in eval mode at the start of training")


def build_trainer(cfg: DictConfig, out: Path) -> pl.Trainer:
    quiet_lightning()
    options = config_dict(cfg.trainer)
    try:
        return pl.Trainer(default_root_dir=out, logger=loggers(out),
                          callbacks=callbacks(out, cfg.optim.stop_agreement), **options)
    except (TypeError, ValueError, MisconfigurationException) as exc:
        raise RrmError(f"invalid trainer option: {exc}") from None


def make_datamodule(cfg: DictConfig, dataset: DatasetDir,
                    inputs: list[str] | None = None) -> PreferenceDataModule:
    """The data module of a train-reward config (``data`` section) on an opened dataset;
    ``inputs`` replaces the model's (a fine-tuned encoder's frames for its features)."""
    data = config_dict(cfg.data)
    data.pop("source")
    columns = columns_read(list(cfg.model.inputs) if inputs is None else inputs,
                           str(cfg.model.prior))
    return PreferenceDataModule(dataset, columns=columns, seed=cfg.seed,
                                window=model_window(cfg.model), **data)
