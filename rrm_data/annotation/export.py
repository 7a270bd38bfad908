"""Turn a campaign's stored labels into preference rows of the dataset (train split).

Each label becomes a row of teacher ``human:<annotator>`` with its confidence; each labelled
item also gets one row of teacher ``human``: the majority label of the annotators who pass
calibration (a tie between labels gives 0.5), with their mean confidence. Skips are not
labels. The ``confidence`` column appears only here: scripted rows get null, so datasets
without human labels keep their exact former layout. Exporting a campaign again replaces
the human rows of its pairs rather than adding to them.

Criteria: every campaign asks one question (``criterion``), and all campaigns' rows share
the teacher names ``human:<annotator>`` and ``human``; meta/info.json's ``annotation``
says which question each human row answered: ``pairs_by_criterion`` maps each question to
the pair indices of its rows (kept across exports of several campaigns), and
``criterion`` is the last exported campaign's. Select one criterion's labels by
``pair_index``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rrm_data.annotation.agreement import majority
from rrm_data.annotation.campaign import campaign_criterion
from rrm_data.annotation.monitor import summary
from rrm_data.annotation.store import Store
from rrm_data.dataset.format import HUMAN, human_teacher, is_human_teacher
from rrm_data.dataset.info import DatasetInfo
from rrm_data.dataset.reader import DatasetDir
from rrm_data.dataset.writer import write_dataset
from rrm_data.labels.tables import label_counts

CONFIDENCE = "confidence"


def human_rows(store: Store, threshold: float) -> tuple[pa.Table, dict[str, Any]]:
    """The preference rows of every stored label plus the aggregate, and what info records."""
    items, report = store.items(), summary(store.answers(), store.items(), store.annotators(),
                                           threshold)
    passing = {a["annotator"] for a in report["annotators"] if a["passing"]}
    rows: list[tuple[int, int, int, float, str, float]] = []
    per_item: dict[int, list[tuple[float, int]]] = {}
    for answer in store.answers():
        if answer.label is None:
            continue
        item = items[answer.item_id]
        assert answer.confidence is not None  # every label is stored with its confidence
        rows.append((item.pair_index, item.segment_a, item.segment_b, answer.label,
                     human_teacher(answer.annotator), float(answer.confidence)))
        if answer.annotator in passing:
            per_item.setdefault(answer.item_id, []).append((answer.label, answer.confidence))
    for item_id, labels in per_item.items():
        item = items[item_id]
        rows.append((item.pair_index, item.segment_a, item.segment_b,
                     majority([label for label, _ in labels]), HUMAN,
                     float(np.mean([c for _, c in labels]))))
    rows.sort(key=lambda r: (r[0], r[4]))
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[]] * 6
    table = pa.table({
        "pair_index": pa.array(columns[0], pa.int64()),
        "segment_a": pa.array(columns[1], pa.int64()),
        "segment_b": pa.array(columns[2], pa.int64()),
        "label": pa.array(columns[3], pa.float32()),
        "teacher": pa.array(columns[4], pa.string()),
        CONFIDENCE: pa.array(columns[5], pa.float32()),
    })
    annotators = {a["annotator"]: {k: a[k] for k in ("labels", "skips", "calibration_accuracy",
                                                     "passing", "oracle_agreement")}
                  for a in report["annotators"]}
    return table, {"criterion": campaign_criterion(store.settings),
                   "threshold": threshold, "annotators": annotators,
                   "aggregate": "majority of passing annotators, ties 0.5"}


def with_confidence(table: pa.Table) -> pa.Table:
    """A preferences table with a ``confidence`` column (null where it had none)."""
    if CONFIDENCE in table.column_names:
        return table
    return table.append_column(CONFIDENCE, pa.nulls(table.num_rows, pa.float32()))


def export_tables(dataset: DatasetDir, human: pa.Table, pairs: list[int],
                  annotation: dict[str, Any]) -> tuple[dict[str, dict[str, pa.Table]],
                                                       DatasetInfo]:
    """The dataset's tables and info with ``human`` added to the train split, in place of any
    human rows on the campaign's ``pairs`` (an earlier export of it); other campaigns' stay."""
    tables = dataset.tables()
    prefs = tables["preferences"]
    for split, table in prefs.items():
        teacher = table.column("teacher").to_numpy(zero_copy_only=False)
        is_human = np.isin(teacher, [t for t in np.unique(teacher) if is_human_teacher(t)])
        earlier = is_human & np.isin(table.column("pair_index").to_numpy(), pairs)
        prefs[split] = with_confidence(table.filter(pa.array(~earlier)))
    prefs["train"] = pa.concat_tables([prefs["train"], human.select(prefs["train"].column_names)])
    earlier = dataset.info.extra.get("annotation", {}).get("pairs_by_criterion", {})
    ours, criterion = set(pairs), annotation["criterion"]
    by_criterion = {c: [p for p in ps if p not in ours] for c, ps in earlier.items()}
    by_criterion[criterion] = sorted({*by_criterion.get(criterion, []),
                                      *human.column("pair_index").to_pylist()})
    info = dataset.info.replace(
        counts=dataclasses.replace(dataset.info.counts, labels=label_counts(prefs)),
        extra={**dataset.info.extra, "annotation": {
            **annotation, "pairs_by_criterion": {c: ps for c, ps in by_criterion.items() if ps}}})
    return tables, info


def export_campaign(dataset: DatasetDir, store: Store, out: Path, overwrite: bool,
                    threshold: float) -> tuple[int, int]:
    """Write the dataset with the campaign's labels as a new version at ``out``; return the
    numbers of annotator rows and of aggregate rows written."""
    human, annotation = human_rows(store, threshold)
    pairs = sorted({item.pair_index for item in store.items().values()})
    tables, info = export_tables(dataset, human, pairs, annotation)
    write_dataset(out, tables, info, overwrite=overwrite)
    per_annotator = int(pc.sum(pc.starts_with(human.column("teacher"), "human:")).as_py() or 0)
    return per_annotator, human.num_rows - per_annotator


__all__ = ["CONFIDENCE", "export_campaign", "export_tables", "human_rows", "with_confidence"]
