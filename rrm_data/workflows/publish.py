"""Upload a dataset to the Hugging Face Hub as a dataset repository, in one commit.

The dataset is validated first, then laid out as the exact tree the Hub will hold:
the card re-rendered for the repository, tables resharded so no file exceeds
`max_file_mb` and no folder holds more than `max_files_per_folder` files. The repo
is created if needed and every file goes up in ONE commit. The token comes from
HF_TOKEN or your Hub login (`hf auth login`) and is never written or printed.
`dry_run=true` writes that tree to `out=` and lists the operations, with no network.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from rrm_data.config import COUNT, POSITIVE, build_config, doc
from rrm_data.dataset import hub
from rrm_data.dataset.card import check_license, render_card
from rrm_data.dataset.reader import DatasetDir, open_dataset
from rrm_data.errors import RrmError
from rrm_data.io import Kind, atomic_directory, check_out
from rrm_data.progress import console


@dataclass
class Config:
    data: str = field(default="data/button-press",
                      metadata={"help": "dataset directory (or Hub dataset id)"})
    repo_id: str | None = field(default=None, metadata={"help": "target dataset repo, org/name"})
    private: bool = field(default=False, metadata={"help": "create the repo as private"})
    revision: str = field(default="main", metadata={"help": "branch to commit to (created "
                                                            "if missing)"})
    dry_run: bool = field(default=False, metadata={"help": "write the tree to out= and list the "
                                                           "operations; no network"})
    out: str | None = field(default=None, metadata={"help": "folder for the dry-run tree "
                                                            "(default: <org>--<name>)"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing out= folder"})
    license: str = field(default="mit", metadata={"help": "license id in the card"})
    message: str | None = field(default=None, metadata={"help": "commit message"})
    max_file_mb: float = field(default=500.0, metadata=doc("largest file to upload, MB", POSITIVE))
    max_files_per_folder: int = field(default=10_000, metadata=doc("most files per folder", COUNT))


def make_config(overrides: list[str]) -> DictConfig:
    cfg = build_config(Config(), overrides)
    if not cfg.repo_id:
        raise RrmError("repo_id is required, e.g. repo_id=my-org/button-press-prefs")
    hub.check_repo_id(cfg.repo_id)
    check_license(cfg.license)
    return cfg


def build(dataset: DatasetDir, cfg: DictConfig, out: Path) -> list[tuple[str, int]]:
    """Write the repository tree of ``dataset`` into the empty folder ``out``."""
    limits = hub.HubLimits(int(cfg.max_file_mb * hub.MB), cfg.max_files_per_folder)

    def card(splits: dict[str, list[str]]) -> str:
        return render_card(dataset.info.replace(splits=splits), repo_id=cfg.repo_id,
                           license=cfg.license)

    hub.build_tree(dataset.root, out, limits, card)
    return hub.tree_files(out)


def list_operations(files: list[tuple[str, int]], verb: str) -> None:
    for path, size in files:
        print(f"{verb} {size:>12,d}  {path}")
    console.print(f"{len(files)} files, {sum(s for _, s in files) / hub.MB:.3g} MB")


def run(cfg: DictConfig) -> None:
    token = None if cfg.dry_run else hub.upload_token()  # before any work
    dataset = open_dataset(cfg.data, check="full")
    if cfg.dry_run:
        out = Path(cfg.out or cfg.repo_id.replace("/", "--"))
        check_out(out, Kind.HUB_TREE, cfg.overwrite, inputs={"data": cfg.data})
        with atomic_directory(out, Kind.HUB_TREE, cfg.overwrite) as tmp:
            files = build(dataset, cfg, tmp)
        list_operations(files, "add")
        console.print(f"dry run: wrote the tree for {cfg.repo_id} to {out}; nothing uploaded")
        return
    assert token is not None  # read above unless dry_run
    with tempfile.TemporaryDirectory(prefix="rrm-publish-") as tmp:
        files = build(dataset, cfg, Path(tmp))
        message = cfg.message or f"Upload {dataset.info.name} with rrm-data"
        url = hub.upload_tree(Path(tmp), cfg.repo_id, token, cfg.private, cfg.revision, message)
    list_operations(files, "uploaded")
    console.print(f"published {cfg.repo_id} ({cfg.revision}): {url}")


__all__ = ["Config", "make_config", "run"]
