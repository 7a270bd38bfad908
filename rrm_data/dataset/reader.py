"""Read a dataset directory of format rrm-data/1 (tables as Arrow, meta as a DatasetInfo).

A :class:`DatasetDir` is one version of a dataset, each column read from disk once (see
``dataset/snapshot.py``); ``open_dataset(ref, check=...)`` opens and checks it in one step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rrm_data.dataset.snapshot import DatasetFiles
from rrm_data.errors import RrmError
from rrm_data.io import check_write_access, in_hf_cache

if TYPE_CHECKING:
    from rrm_data.dataset.hub import HubRef

# What open_dataset checks before a command works: every value ("full", camera frames decoded
# too) or every value but the frames, for commands that never read them.
Check = Literal["full", "skip-frames"]


@dataclass(frozen=True)
class DatasetDir(DatasetFiles):
    """A dataset on local disk, possibly a Hub dataset's snapshot in the Hugging Face cache."""

    hub: HubRef | None = None  # set when ``root`` is a snapshot in the Hugging Face cache

    def check_writable(self) -> None:
        """Refuse to change a Hub dataset in place: its files are the shared HF cache (also
        when it is reached through its snapshot path); or one whose folder is not writable."""
        if self.hub is not None or in_hf_cache(self.root):
            repo = self.hub.repo_id if self.hub else "ORG/NAME"
            raise RrmError(f"{self.hub or self.root} is a Hub dataset read from the Hugging Face "
                           "cache, which rrm-data never modifies; copy it first (hf download "
                           f"{repo} --repo-type dataset --local-dir DIR) and pass data=DIR")
        check_write_access(self.root, "data")  # the new version is built next to it


def open_dataset(ref: str | Path, check: Check | None = None,
                 with_first_read: Iterable[str] = ()) -> DatasetDir:
    """Open a dataset from a local directory or, failing that, a Hub id (``org/name[@rev]``,
    ``hf://datasets/org/name``) through its local snapshot in the Hugging Face cache.

    ``check`` refuses, before any work, what ``rrm-data validate`` refuses (``"skip-frames"``:
    without decoding camera frames); the tables it reads stay with the dataset for the command.
    ``with_first_read`` names columns otherwise read on request that the command will need.
    """
    path, hub_ref = Path(ref).expanduser(), None
    if not path.is_dir():
        from rrm_data.dataset import hub  # imported only for Hub ids: keeps local reads light

        hub_ref = hub.parse_hub_ref(str(ref))
        if hub_ref is None:
            raise RrmError(f"no dataset at '{ref}' (not a directory)")
        try:
            path = hub.snapshot(hub_ref)
        except RrmError as exc:
            if str(ref).startswith(hub.HF_PREFIX):
                raise
            raise RrmError(f"no dataset at '{ref}': not a local directory; as a Hub id: "
                           f"{exc}") from None
    dataset = DatasetDir(path, hub_ref)
    dataset.read_with_first(with_first_read)
    _ = dataset.info
    if check is not None:
        from rrm_data.dataset.validate import check_dataset  # jsonschema only when checking

        check_dataset(dataset, frames=check == "full")
    return dataset
