"""Add one scripted teacher's labels to a stored dataset's pairs, as a new version.

No rollout is repeated: the teacher reads the stored steps (true rewards, and hand and
object positions for the motion teachers) of the pairs the dataset's scripted teachers
already label, in both splits. Its generator is seeded by the dataset's labelling seed,
the teacher's name and the split, as collect seeds it, so the labels are those collect
would have written with the teacher in its list, and the same on every run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from omegaconf import DictConfig

from rrm_data.collection.meta import teacher_notes
from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import positions, segment_first_steps, step_columns
from rrm_data.dataset.reader import DatasetDir, open_dataset
from rrm_data.dataset.validate import check_dataset
from rrm_data.dataset.writer import new_version, write_dataset
from rrm_data.errors import RrmError
from rrm_data.labels.motion import MOTION_COLUMNS, PairMotion, SegmentMotion
from rrm_data.labels.tables import label_counts, teacher_labels
from rrm_data.labels.teachers import (
    TEACHERS,
    PairRewards,
    Scripted,
    check_segment_length,
    make_teacher,
)
from rrm_data.progress import console


@dataclass
class Config:
    data: str | None = field(default=None, metadata={"help": "dataset directory"})
    teacher: str | None = field(default=None, metadata={
        "help": "scripted teacher to add: " + ", ".join(TEACHERS.names())})
    teacher_params: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "its parameters, e.g. teacher_params.radius=0.1 for safe"})
    replace: bool = field(default=False, metadata={
        "help": "replace the teacher's labels if the dataset has them"})
    out: str | None = field(default=None, metadata={"help": "new dataset version (default: "
                                                            "replace data in place)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a dataset at out"})


def run(cfg: DictConfig) -> None:
    if cfg.data is None:
        raise RrmError("data= is required: a dataset directory")
    if cfg.teacher is None:
        raise RrmError(f"teacher= is required: one of {', '.join(TEACHERS.names())}")
    teacher = make_teacher(str(cfg.teacher), cfg.teacher_params)
    with new_version(open_dataset(cfg.data), cfg.out, cfg.overwrite) as target:
        add_labels(teacher, bool(cfg.replace), target.dataset, target.out, target.overwrite)


def add_labels(teacher: Scripted, replace: bool, dataset: DatasetDir, out: Path,
               overwrite: bool) -> None:
    """Label every pair of ``dataset`` (read under the lock) and write the new version."""
    info, name = dataset.info, teacher.name
    if name in info.teachers and not replace:
        raise RrmError(f"{dataset.root} already has labels of teacher '{name}'; replace=true "
                       "replaces them")
    if info.seed is None:
        raise RrmError(f"{dataset.root}: meta/info.json has no seed to seed the teacher with")
    check_dataset(dataset, frames=False)  # refuse what validate refuses, before work
    segments, episodes = dataset.table("segments"), dataset.table("episodes")
    lengths = np.unique(segments.column("length").to_numpy())
    if len(lengths) != 1:
        raise RrmError(f"{dataset.root}: segments of several lengths ({lengths.tolist()}); "
                       "a teacher compares segments of one length")
    length = int(lengths[0])
    check_segment_length([name], length)

    steps = step_columns(dataset, list(MOTION_COLUMNS) if teacher.reads_motion else [fmt.REWARD])
    first = segment_first_steps(segments, episodes)
    motion = SegmentMotion.gather(steps[fmt.STATE], steps[fmt.REWARD], first, length) \
        if teacher.reads_motion else None
    seg_rewards = steps[fmt.REWARD].astype(np.float64)[first[:, None] + np.arange(length)]
    mean_return = float(info.labelling.get("mean_segment_return",
                                           seg_rewards.sum(axis=1).mean()))
    seg_ids = segments.column("segment_index").to_numpy()

    tables = dataset.tables()
    preferences = tables["preferences"]
    skipped = {split: dict(counts) for split, counts in info.counts.skipped.items()}
    for split_id, split in enumerate(fmt.SPLITS):
        if split not in preferences:
            continue
        kept = _without(preferences[split], name)
        pair_index, a, b = _pairs(kept, info.counts.pairs.get(split, 0), split)
        pa_, pb = positions(seg_ids, a), positions(seg_ids, b)
        pairs = PairRewards(seg_rewards[pa_], seg_rewards[pb], mean_return,
                            None if motion is None else PairMotion(motion, pa_, pb))
        rows, skipped.setdefault(split, {})[name] = teacher_labels(
            name, teacher, pairs, pair_index, a, b, info.seed, split_id)
        preferences[split] = pa.concat_tables([kept, _like(rows, kept.schema)])
    notes = teacher_notes([name])
    labelling = {**info.labelling, **{key: {**info.labelling.get(key, {}), **value}
                                      for key, value in notes.items()}}
    info = info.replace(
        teachers={**info.teachers, name: teacher.params()}, labelling=labelling,
        counts=dataclasses.replace(info.counts, labels=label_counts(preferences),
                                   skipped=skipped))
    write_dataset(out, tables, info, overwrite=overwrite)
    added = {split: info.counts.labels.get(split, {}).get(name, 0) for split in fmt.SPLITS
             if split in preferences}
    console.print(f"wrote {out}: teacher {name} labelled "
                  + ", ".join(f"{n} {split}" for split, n in added.items()) + " pairs")


def _without(table: pa.Table, teacher: str) -> pa.Table:
    """The split's rows of every other teacher."""
    return table.filter(pc.not_equal(table.column("teacher"), teacher))


def _pairs(table: pa.Table, count: int, split: str
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each pair of the split once, by pair index, from its scripted teachers' rows (people
    label only the pairs they were shown); all ``count`` pairs info says the split has."""
    teacher = table.column("teacher").to_numpy(zero_copy_only=False)
    scripted = np.array([not fmt.is_human_teacher(t) for t in teacher], bool)
    index = table.column("pair_index").to_numpy()[scripted]
    pair_index, at = np.unique(index, return_index=True)
    if len(pair_index) != count:
        raise RrmError(f"preferences/{split} holds {len(pair_index)} of its {count} pairs (pairs "
                       "that every teacher skipped have no rows); label needs them all")
    a = table.column("segment_a").to_numpy()[scripted][at]
    b = table.column("segment_b").to_numpy()[scripted][at]
    return pair_index, a, b


def _like(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """Scripted rows in the split's schema: null in columns only people fill (``confidence``)."""
    for column in schema:
        if column.name not in rows.column_names:
            rows = rows.append_column(column.name, pa.nulls(rows.num_rows, column.type))
    return rows.select(schema.names).cast(schema)


__all__ = ["Config", "run"]
