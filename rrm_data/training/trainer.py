"""The Lightning side of reward training: trainer, loggers, checkpoints and resuming.

A run directory holds ``config.yaml``, ``checkpoints/last.ckpt`` (what ``resume=true``
continues from), ``metrics.csv``, TensorBoard logs and the exported ``reward/`` artifact.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from rrm_data.config import config_dict
from rrm_data.dataset.reader import DatasetDir
from rrm_data.errors import RrmError
from rrm_data.reward.networks import columns_read
from rrm_data.training.datamodule import PreferenceDataModule

CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
METRICS = "metrics.csv"


def resume_checkpoint(out: Path, resume: bool, overwrite: bool) -> Path | None:
    """The checkpoint to resume from, refusing to clobber an earlier run by accident."""
    last = out / CHECKPOINTS / LAST_CHECKPOINT
    if not resume:
        # DDP ranks > 0 re-run the command after rank 0 has written config.yaml.
        # Lightning sets ``rank`` on the function at import; its type does not declare it
        rank = rank_zero_only.rank  # type: ignore[attr-defined]
        if (out / "config.yaml").exists() and rank == 0:
            if not overwrite:
                raise RrmError(f"out={out} already holds a run; pass resume=true to continue "
                               "it or overwrite=true to start again")
            shutil.rmtree(out)
        return None
    if not last.is_file():
        raise RrmError(f"resume=true but there is no checkpoint at {last}")
    try:
        state = torch.load(last, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many types on a damaged file
        raise RrmError(f"{last}: corrupt checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise RrmError(f"{last}: corrupt checkpoint (no state_dict)")
    return last


@contextmanager
def kept_metrics(out: Path, resume: bool) -> Iterator[None]:
    """Lightning's CSVLogger deletes an existing metrics.csv: on resume, keep its rows."""
    path, before = out / METRICS, out / f".{METRICS}.before-resume"
    if resume and path.exists():
        os.replace(path, before)
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
    try:
        yield
    finally:
        if before.exists():
            frames = [pd.read_csv(p) for p in (before, path) if p.exists()]
            pd.concat(frames, ignore_index=True).to_csv(path, index=False)
            before.unlink()


def loggers(out: Path) -> list[pl.loggers.Logger]:
    loggers: list[pl.loggers.Logger] = [pl.loggers.CSVLogger(out, name="", version="")]
    with suppress(ModuleNotFoundError):  # tensorboard is optional
        loggers.append(pl.loggers.TensorBoardLogger(out, name="tensorboard", version=""))
    return loggers


def callbacks(out: Path, stop_agreement: float | None) -> list[pl.Callback]:
    callbacks: list[pl.Callback] = [pl.callbacks.ModelCheckpoint(
        dirpath=out / CHECKPOINTS, save_top_k=0, save_last=True)]
    if stop_agreement is not None:
        callbacks.append(pl.callbacks.EarlyStopping(
            monitor="train/agreement", mode="max", stopping_threshold=stop_agreement,
            patience=10**9, check_on_train_epoch_end=True))
    return callbacks


def quiet_lightning() -> None:
    """Keep Lightning's start-up banners (accelerators, tips) and its own deprecations out."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")


def build_trainer(cfg: DictConfig, out: Path) -> pl.Trainer:
    quiet_lightning()
    options = config_dict(cfg.trainer)
    try:
        return pl.Trainer(default_root_dir=out, logger=loggers(out),
                          callbacks=callbacks(out, cfg.optim.stop_agreement), **options)
    except (TypeError, ValueError, MisconfigurationException) as exc:
        raise RrmError(f"invalid trainer option: {exc}") from None


def make_datamodule(cfg: DictConfig, dataset: DatasetDir) -> PreferenceDataModule:
    """The data module of a train-reward config (``data`` section) on an opened dataset."""
    data = config_dict(cfg.data)
    data.pop("source")
    columns = columns_read(list(cfg.model.inputs), str(cfg.model.prior))
    return PreferenceDataModule(dataset, columns=columns, **data)
