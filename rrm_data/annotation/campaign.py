"""What a labelling campaign shows to whom: items, calibration, overlap, each annotator's queue.

Items are the dataset's ``queries`` (best first) plus ``calibration`` pairs with a known
answer (by default the oracle's train labels, ties left out). Each annotator sees the first
``calibration_first`` calibration items first, then the queries with the remaining
calibration items mixed in at even spacing. A share ``overlap`` of the queries is shown to
every annotator (for agreement); the others are dealt out in turn. Left and right are
swapped at random per annotator and item, so a side bias does not become a label bias.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rrm_data.annotation.store import Item
from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import pair_keys
from rrm_data.dataset.format import ANNOTATOR_NAME
from rrm_data.dataset.reader import DatasetDir
from rrm_data.errors import RrmError
from rrm_data.streams import CampaignStream, stream

DEFAULT_THRESHOLD = 0.7
DEFAULT_CRITERION = "Which completes the task better?"
MAX_CRITERION = 200  # characters: one line above the clips


def campaign_criterion(settings: dict) -> str:
    """The question a campaign asks (campaigns made before criteria asked the default)."""
    return str(settings.get("criterion", DEFAULT_CRITERION))


def pass_mark(settings: dict, given: float | None) -> float:
    """The calibration pass mark given now, else the campaign's own."""
    if given is not None and not 0 <= given <= 1:
        raise RrmError(f"threshold must lie in [0, 1], got {given}")
    return float(given if given is not None else settings.get("threshold", DEFAULT_THRESHOLD))


@dataclass(frozen=True)
class CampaignSpec:
    """The settings that decide a campaign's items and queues."""

    annotators: tuple[str, ...]
    calibration: int = 10
    calibration_first: int = 5
    calibration_teacher: str = "oracle"
    overlap: float = 0.2
    threshold: float = DEFAULT_THRESHOLD
    seed: int = 0
    criterion: str = DEFAULT_CRITERION  # the question the page asks, kept with the labels

    def check(self) -> None:
        if not self.annotators:
            raise RrmError("annotators= is required: the names of the people who label, e.g. "
                           "annotators=[ana,ben]")
        for name in self.annotators:
            if not ANNOTATOR_NAME.fullmatch(name) or name == "admin":
                raise RrmError(f"annotator name '{name}' must be 1-32 letters, digits, '_', '.' "
                               "or '-' (and not 'admin')")
        if len(set(self.annotators)) != len(self.annotators):
            raise RrmError("annotators= names someone twice")
        if not 0 <= self.threshold <= 1:
            raise RrmError(f"threshold must lie in [0, 1], got {self.threshold}")
        if not 0 <= self.overlap <= 1:
            raise RrmError(f"overlap must lie in [0, 1], got {self.overlap}")
        if not self.criterion.strip() or len(self.criterion) > MAX_CRITERION \
                or "\n" in self.criterion:
            raise RrmError(f"criterion must be one non-empty line of at most {MAX_CRITERION} "
                           f"characters, e.g. criterion='Which arm moves more smoothly?'")
        if not 0 <= self.calibration_first <= self.calibration:
            raise RrmError(f"calibration_first must lie in [0, calibration={self.calibration}], "
                           f"got {self.calibration_first}")


LABELLED = ("episodes", "segments")  # what a campaign's items point into


def fingerprint(dataset: DatasetDir, tables: tuple[str, ...]) -> str:
    """SHA-256 of the content of ``tables`` (every split; "" for an absent table): the same
    for any copy or later version of the dataset that keeps these tables as they are."""
    digest = hashlib.sha256()
    for name in tables:
        for split in dataset.info.splits.get(name, []):
            table = dataset.table(name, split).replace_schema_metadata(None).combine_chunks()
            digest.update(f"{name}/{split}\0".encode())
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            digest.update(sink.getvalue())
    return digest.hexdigest()


def dataset_identity(dataset: DatasetDir) -> dict[str, str]:
    """What binds a campaign to its dataset: the segments it shows and the queries it asks."""
    return {"segments": fingerprint(dataset, LABELLED),
            "queries": fingerprint(dataset, (fmt.QUERIES,))}


def campaign_settings(dataset: DatasetDir, spec: CampaignSpec) -> dict[str, Any]:
    """What a new campaign's store records: its dataset (path and identity) and settings."""
    return {"data": str(dataset.root), "dataset": dataset_identity(dataset), **vars(spec)}


def check_same_dataset(settings: dict[str, Any], dataset: DatasetDir, campaign: Path) -> None:
    """Refuse to serve or export a campaign against a dataset it was not made from, or after
    the dataset's queries changed (its items would label the wrong pairs)."""
    recorded, now = settings.get("dataset"), dataset_identity(dataset)
    start = "start a new campaign with campaign=NEW_FOLDER"
    if not isinstance(recorded, dict):
        raise RrmError(f"the campaign at {campaign} does not record which dataset it labels "
                       f"(made by an older rrm-data); {start}")
    if recorded.get("segments") != now["segments"]:
        raise RrmError(f"the campaign at {campaign} labels another dataset "
                       f"({settings.get('data')}), not {dataset.root}: pass that one as data=, "
                       f"or {start}")
    if recorded.get("queries") != now["queries"]:
        raise RrmError(f"the queries of {dataset.root} changed since the campaign at {campaign} "
                       f"was made (rrm-data query ran again); {start}")


def oracle_labels(dataset: DatasetDir, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The oracle's label of each pair, from the segments' true returns."""
    segments = dataset.table("segments", columns=["segment_index", "return"]).to_pydict()
    returns = dict(zip(segments["segment_index"], segments["return"], strict=True))
    diff = np.array([returns[int(x)] - returns[int(y)] for x, y in zip(a, b, strict=True)])
    return np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))


def campaign_items(dataset: DatasetDir, spec: CampaignSpec) -> list[Item]:
    """Query items (new pair indices after the dataset's last), then calibration items."""
    if fmt.QUERIES not in dataset.info.splits:
        raise RrmError(f"{dataset.root} has no queries table; choose pairs first: rrm-data query "
                       f"data={dataset.root} strategy=uniform n=50")
    queries = dataset.table(fmt.QUERIES).sort_by("query_index")
    qa, qb = (queries.column(c).to_numpy() for c in ("segment_a", "segment_b"))
    last = max(int(pc.max(dataset.preferences(s).column("pair_index")).as_py())
               for s in dataset.splits("preferences"))
    oracle = oracle_labels(dataset, qa, qb)
    items = [Item(i, last + 1 + i, int(a), int(b), "query", None, float(o))
             for i, (a, b, o) in enumerate(zip(qa, qb, oracle, strict=True))]

    prefs = dataset.preferences("train")
    prefs = prefs.filter(pc.and_(pc.equal(prefs.column("teacher"), spec.calibration_teacher),
                                 pc.not_equal(prefs.column("label"), 0.5)))
    ca, cb = (prefs.column(c).to_numpy() for c in ("segment_a", "segment_b"))
    fresh = np.flatnonzero(~np.isin(pair_keys(ca, cb), pair_keys(qa, qb)))
    if len(fresh) < spec.calibration:
        raise RrmError(f"calibration={spec.calibration} but only {len(fresh)} train pairs have a "
                       f"non-tie '{spec.calibration_teacher}' label")
    pick = np.sort(stream(spec.seed, CampaignStream.CALIBRATION).choice(fresh, spec.calibration,
                                                                replace=False))
    labels = prefs.column("label").to_numpy()
    pair = prefs.column("pair_index").to_numpy()
    oracle = oracle_labels(dataset, ca[pick], cb[pick])
    items += [Item(len(qa) + k, int(pair[r]), int(ca[r]), int(cb[r]), "calibration",
                   float(labels[r]), float(oracle[k])) for k, r in enumerate(pick)]
    return items


def campaign_queues(items: list[Item], spec: CampaignSpec) -> dict[str, list[tuple[int, bool]]]:
    """Each annotator's queue: (item id, swap sides) in the order shown."""
    queries = [i.item_id for i in items if i.kind == "query"]
    calibration = [i.item_id for i in items if i.kind == "calibration"]
    shared = round(spec.overlap * len(queries))
    queues = {}
    for k, name in enumerate(spec.annotators):
        mine = queries[:shared] + queries[shared:][k::len(spec.annotators)]
        first, later = calibration[:spec.calibration_first], calibration[spec.calibration_first:]
        order = list(first)
        # later calibration items at even spacing among the queries (none at either end)
        slots = set(np.linspace(0, len(mine), num=len(later) + 2)[1:-1].round().astype(int))
        rest = iter(later)
        for position, item in enumerate(mine):
            if position in slots:
                order.append(next(rest))
            order.append(item)
        order += list(rest)
        rng = stream(spec.seed, CampaignStream.SIDES, k)
        queues[name] = [(item, bool(swap)) for item, swap in
                        zip(order, rng.random(len(order)) < 0.5, strict=True)]
    return queues


__all__ = ["DEFAULT_CRITERION", "DEFAULT_THRESHOLD", "CampaignSpec", "campaign_criterion",
           "campaign_items", "campaign_queues",
           "campaign_settings", "check_same_dataset", "dataset_identity", "fingerprint",
           "oracle_labels", "pass_mark"]
