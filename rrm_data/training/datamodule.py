"""Preference pairs as batches of segment pairs (B, 2, T, features), gathered in one go.

The steps columns are loaded once into tensors; a pair is two first-step indices, so a
whole batch is gathered by index arithmetic with no Python loop per pair. A reward that
reads a window of k steps (``model.window``, ``model.stride``) gets each segment with the
span − 1 steps before it, (B, 2, T + span − 1, features), the rows chosen by
``reward.window.segment_runs`` (the one window builder: padded with the episode's first
step), and scores its T windows from that run (``RewardNetwork.segment_rewards``). A model
that fine-tunes its image encoder reads camera frames: they stay uint8, and a batch holds
its distinct frames once (U, H, W, 3) with ``frame_index`` (B, 2, L) saying where each
goes, so the encoder runs once per distinct step. The data module keeps no global state
and uses an ordinary shuffled DataLoader, so Lightning's distributed sampler splits it
across DDP ranks deterministically.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import step_columns
from rrm_data.dataset.reader import DatasetDir
from rrm_data.errors import RrmError
from rrm_data.progress import console
from rrm_data.reward.spec import Normalization, Window
from rrm_data.reward.window import ONE_STEP, segment_runs
from rrm_data.streams import Stream, stream
from rrm_data.training.fit import PairOrder, input_normalization
from rrm_data.training.pairs import LabelledPairs, labelled_pairs, segment_windows, step_episodes

# {"inputs": {column: (B, 2, T, width)}, "label": (B,)}; with frames, {"inputs": {camera
# column: (U, H, W, 3)}, "frame_index": (B, 2, T)} too
Batch = dict[str, Any]


class PairBatches(Dataset):
    """Map-style dataset of pairs whose ``__getitems__`` gathers a whole batch at once:
    each segment's T steps, after the span − 1 steps its first window reads (frames: the
    batch's distinct ones and ``frame_index``)."""

    def __init__(self, steps: dict[str, Tensor], pairs: LabelledPairs, length: int,
                 window: Window = ONE_STEP, frames: dict[str, Tensor] | None = None) -> None:
        self.steps, self.frames = steps, frames or {}
        self.last = pairs.first + (length - 1)
        self.start = pairs.start
        self.label = torch.from_numpy(pairs.label.astype(np.float32))
        self.length, self.window = length, window

    def __len__(self) -> int:
        return len(self.label)

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        idx = np.asarray(indices, np.int64)
        rows = segment_runs(self.last[idx].ravel(), self.start[idx].ravel(), self.length,
                            self.window)
        rows_t = torch.from_numpy(rows.reshape(len(idx), 2, -1))  # (B, 2, L)
        inputs = {name: column[rows_t] for name, column in self.steps.items()}
        batch: Batch = {"inputs": inputs, "label": self.label[torch.from_numpy(idx)]}
        if self.frames:
            distinct, at = np.unique(rows, return_inverse=True)
            distinct_t = torch.from_numpy(distinct)
            inputs.update({name: f[distinct_t] for name, f in self.frames.items()})
            batch["frame_index"] = torch.from_numpy(at.reshape(rows_t.shape))
        return batch

    def __getitem__(self, index: int) -> Batch:
        batch = self.__getitems__([index])
        item = {"inputs": {k: v if k in self.frames else v[0]
                           for k, v in batch["inputs"].items()}, "label": batch["label"][0]}
        return item | ({"frame_index": batch["frame_index"][0]} if self.frames else {})


def already_batched(batch: Batch) -> Batch:
    """The collate function: ``__getitems__`` already built the batch."""
    return batch


VAL_SPLITS = ("episodes", "pairs", "test")


class PreferenceDataModule(pl.LightningDataModule):
    """Segment pairs of one teacher for training, and a validation set that ``val_split`` picks:

    - ``episodes`` (default): the pairs touching a held-out share (``val_fraction``) of the
      training episodes, so validation never sees the test split and shares no episode with
      training;
    - ``pairs``: the last ``val_fraction`` of the training pairs;
    - ``test``: the test split's ``val_teacher`` labels (then val numbers are test numbers).

    ``num_labels`` keeps the first N training pairs.
    """

    def __init__(self, dataset: DatasetDir, columns: Sequence[str], teacher: str = "oracle",
                 val_teacher: str = "oracle", num_labels: int | None = None,
                 val_split: str = "episodes", val_fraction: float = 0.1, batch_size: int = 128,
                 num_workers: int = 0, seed: int = 0, window: Window = ONE_STEP) -> None:
        super().__init__()
        if val_split not in VAL_SPLITS:
            raise RrmError(f"val_split must be one of {', '.join(VAL_SPLITS)}, got '{val_split}'")
        if not 0.0 <= val_fraction < 1.0:
            raise RrmError(f"val_fraction must lie in [0, 1), got {val_fraction}")
        if num_labels is not None and num_labels < 1:
            raise RrmError(f"num_labels must be at least 1, got {num_labels}")
        if batch_size < 1:
            raise RrmError(f"batch_size must be at least 1, got {batch_size}")
        self.dataset, self.columns = dataset, list(columns)
        self.teacher, self.val_teacher = teacher, val_teacher
        self.num_labels, self.val_split, self.val_fraction = num_labels, val_split, val_fraction
        self.seed, self.window = seed, window
        self.batch_size, self.num_workers = batch_size, num_workers
        self.steps: dict[str, Tensor] = {}
        self.frames: dict[str, Tensor] = {}  # camera columns, uint8 (N, H, W, 3)
        self.train_pairs: LabelledPairs | None = None
        self.val_pairs: LabelledPairs | None = None
        self.segment_length = 0
        # the generator of the training pairs' order: the learner's (RewardLearner.order)
        self.order: torch.Generator | None = None

    def setup(self, stage: str | None = None) -> None:
        """Read the dataset once (later calls are no-ops)."""
        if self.train_pairs is not None:
            return
        dataset = self.dataset
        columns = step_columns(dataset, self.columns)
        self.frames = {name: torch.from_numpy(v) for name, v in columns.items()
                       if fmt.is_image_column(name)}
        self.steps = {name: torch.tensor(v.reshape(len(v), -1), dtype=torch.float32)
                      for name, v in columns.items() if name not in self.frames}
        first, self.segment_length = segment_windows(dataset)
        pool = labelled_pairs(dataset, "train", self.teacher, first)
        if self.val_split == "test":
            self.val_pairs = labelled_pairs(dataset, "test", self.val_teacher, first)
        elif self.val_split == "pairs" and self.val_fraction > 0:
            pool, self.val_pairs = self._hold_out_pairs(pool)
        else:
            pool, self.val_pairs = self._hold_out_episodes(dataset, pool)
        if self.num_labels is not None:
            if self.num_labels > len(pool):
                raise RrmError(f"num_labels={self.num_labels} but only {len(pool)} "
                               f"'{self.teacher}' training pairs are available")
            pool = pool.take(slice(0, self.num_labels))
        self.train_pairs = pool

    def _hold_out_pairs(self, pool: LabelledPairs) -> tuple[LabelledPairs, LabelledPairs]:
        """The last ``val_fraction`` of the training pairs validate."""
        n_val = math.ceil(self.val_fraction * len(pool))
        return pool.take(slice(0, -n_val)), pool.take(slice(-n_val, None))

    def _hold_out_episodes(self, dataset: DatasetDir,
                           pool: LabelledPairs) -> tuple[LabelledPairs, LabelledPairs]:
        """Split the training pairs by episode: pairs touching a held-out episode validate."""
        episode_of_step = step_episodes(dataset)
        episodes = episode_of_step[pool.first]  # (P, 2)
        ids = np.unique(episodes)
        if len(ids) < 3 and self.val_fraction > 0:  # holding one out would leave no pair
            console.print(f"{len(ids)} training episodes are too few to hold one out; "
                          f"validating on the last {self.val_fraction:.0%} of the pairs instead")
            return self._hold_out_pairs(pool)
        n_val = int(round(self.val_fraction * len(ids)))
        if self.val_fraction > 0 and len(ids) >= 2:
            n_val = min(max(n_val, 1), len(ids) - 1)
        held = stream(self.seed, Stream.VALIDATION).permutation(ids)[:n_val]
        touches = np.isin(episodes, held).any(axis=1)
        return pool.take(np.flatnonzero(~touches)), pool.take(np.flatnonzero(touches))

    @property
    def column_widths(self) -> dict[str, int]:
        """Widths of the columns read as numbers (frames' width is their encoder's)."""
        return {name: int(t.shape[1]) for name, t in self.steps.items()}

    def input_stats(self, inputs: Sequence[str],
                    encode: Callable[[np.ndarray], np.ndarray] | None = None) -> Normalization:
        """Mean and std of the concatenated ``inputs`` over the training segments' steps;
        frames count as their features by ``encode`` (the encoder training starts from)."""
        assert self.train_pairs is not None, "call setup() first"
        firsts = np.unique(self.train_pairs.first)
        rows = torch.from_numpy((firsts[:, None] + np.arange(self.segment_length)).ravel())

        def values(name: str) -> Tensor:
            if name not in self.frames:
                return self.steps[name][rows]
            assert encode is not None, f"{name} holds frames: pass their encoder"
            return torch.from_numpy(encode(self.frames[name][rows].numpy()))

        return input_normalization({name: values(name) for name in inputs}, inputs)

    def _loader(self, pairs: LabelledPairs | None, shuffle: bool) -> DataLoader:
        assert pairs is not None, "call setup() first"
        # the online learner's order too (training.fit): one permutation per epoch
        order = None
        if shuffle:
            assert self.order is not None, "set order (the RewardLearner's) first"
            order = PairOrder(len(pairs), self.order)
        # torch types collate_fn as taking a list of items; with __getitems__ it gets the batch
        return DataLoader(PairBatches(self.steps, pairs, self.segment_length, self.window,
                                      self.frames),
                          batch_size=self.batch_size, sampler=order,
                          collate_fn=already_batched,  # type: ignore[arg-type]
                          num_workers=self.num_workers,
                          # each iteration's base seed (of the workers) from here, not
                          # from torch's global stream, which the library leaves alone
                          generator=torch.Generator().manual_seed(self.seed))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_pairs, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_pairs, shuffle=False)
