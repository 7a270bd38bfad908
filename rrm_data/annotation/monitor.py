"""The numbers a team watches during a campaign, from the stored answers.

Per annotator: labels, skips, time per label, calibration accuracy (strict: "equally good"
on a calibration item counts as wrong) and whether it passes the threshold, agreement with
the oracle (on items whose true returns differ). Per pair of annotators: items both
labelled, pairwise agreement and Cohen's κ; Fleiss' κ over the items every annotator labelled
when there are three or more.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from rrm_data.annotation.agreement import (
    category_counts,
    cohen_kappa,
    fleiss_kappa,
    pairwise_agreement,
)
from rrm_data.annotation.store import Answer, Item


def _number(value: float) -> float | None:
    """JSON-safe: NaN becomes null."""
    return None if value is None or math.isnan(value) else round(float(value), 4)


def labels_by_annotator(answers: list[Answer]) -> dict[str, dict[int, float]]:
    """``{annotator: {item id: label}}`` of every answer that is a label (not a skip)."""
    out: dict[str, dict[int, float]] = {}
    for a in answers:
        if a.label is not None:
            out.setdefault(a.annotator, {})[a.item_id] = a.label
    return out


def calibration_accuracy(labels: dict[int, float], items: dict[int, Item]) -> tuple[int, float]:
    """(calibration items labelled, share answered with the known label)."""
    known = [(label, items[i].known) for i, label in labels.items()
             if items[i].kind == "calibration"]
    return len(known), float(np.mean([a == b for a, b in known])) if known else float("nan")


def passing(n_calibration: int, accuracy: float, threshold: float, required: int) -> bool:
    """Passes when no calibration is asked (no items, or threshold 0), or once the accuracy
    on the calibration items answered so far reaches ``threshold``."""
    return required == 0 or threshold <= 0 or (n_calibration > 0 and accuracy >= threshold)


def summary(answers: list[Answer], items: dict[int, Item], annotators: list[str],
            threshold: float) -> dict[str, Any]:
    """Everything the monitoring page shows, JSON-ready."""
    labels = labels_by_annotator(answers)
    required = sum(1 for i in items.values() if i.kind == "calibration")
    people = []
    for name in annotators:
        mine = [a for a in answers if a.annotator == name]
        lab = labels.get(name, {})
        seconds = [a.seconds for a in mine if a.label is not None]
        n_cal, accuracy = calibration_accuracy(lab, items)
        truth = [(v, items[i].oracle) for i, v in lab.items()
                 if items[i].oracle is not None and items[i].oracle != 0.5]
        people.append({
            "annotator": name, "labels": len(lab),
            "skips": sum(1 for a in mine if a.label is None),
            "ties": sum(1 for v in lab.values() if v == 0.5),
            "seconds_mean": _number(float(np.mean(seconds))) if seconds else None,
            "seconds_median": _number(float(np.median(seconds))) if seconds else None,
            "calibration_labels": n_cal, "calibration_accuracy": _number(accuracy),
            "passing": passing(n_cal, accuracy, threshold, required),
            "oracle_agreement": (_number(float(np.mean([a == b for a, b in truth]))) if truth
                                 else None),
        })
    pairs = []
    for x, y in itertools.combinations(annotators, 2):
        lx, ly = labels.get(x, {}), labels.get(y, {})
        both = sorted(set(lx) & set(ly))
        a, b = [lx[i] for i in both], [ly[i] for i in both]
        pairs.append({"annotators": [x, y], "items": len(both),
                      "agreement": _number(pairwise_agreement(a, b)),
                      "cohen_kappa": _number(cohen_kappa(a, b))})
    fleiss = None
    if len(annotators) >= 3:
        common = set.intersection(*(set(labels.get(n, {})) for n in annotators))
        counts = category_counts([[labels[n][i] for n in annotators] for i in sorted(common)])
        fleiss = {"items": len(common), "kappa": _number(fleiss_kappa(counts))}
    return {"threshold": threshold, "calibration_items": required,
            "labels": sum(len(v) for v in labels.values()), "annotators": people,
            "pairs": pairs, "fleiss": fleiss}


__all__ = ["calibration_accuracy", "labels_by_annotator", "passing", "summary"]
