"""The resumable work folder every RL command shares (train-sac, train-online,
train-offline): ``.<out>.<suffix>`` next to the run directory, holding the config it was
started with and its last checkpoint, which each command writes in one step."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import cast

from omegaconf import DictConfig, OmegaConf

from rrm_data.config import changed_keys, config_dict, to_yaml
from rrm_data.errors import RrmError
from rrm_data.io import clean_leftovers, remove_owned

CHECKPOINT = "checkpoint"  # the resumable state, in a run's work folder


def find_checkpoint(workdir: Path) -> Path | None:
    """The last complete checkpoint (it is replaced in one step), after removing what a
    killed writer of the next one left."""
    path = workdir / CHECKPOINT
    clean_leftovers(path)
    return path if path.is_dir() else None


def prepare_workdir(out: Path, cfg: DictConfig, ignored: Collection[str],
                    overwrite: bool, suffix: str) -> Path:
    """The work folder ``.<out>.<suffix>`` next to ``out``. Its checkpoint is resumed when
    the run's settings (all keys but ``ignored``) are the same; with others it is refused,
    before anything changes, unless ``overwrite`` (then the run starts again)."""
    workdir = out.with_name(f".{out.name}.{suffix}")
    marker = workdir / "config.yaml"
    if marker.exists():
        differ = changed_keys(config_dict(cast(DictConfig, OmegaConf.load(marker))),
                              config_dict(cfg), ignored)
        if differ and find_checkpoint(workdir) is not None and not overwrite:
            raise RrmError(f"{workdir} holds a checkpoint of a run with other settings "
                           f"({', '.join(differ)}); run it again with those, or pass "
                           "overwrite=true to start this one from step 0")
        if differ:
            remove_owned(workdir)
    elif workdir.exists():  # killed before it was marked: nothing to resume
        remove_owned(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    marker.write_text(to_yaml(cfg))
    return workdir
