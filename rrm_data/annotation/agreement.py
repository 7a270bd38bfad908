"""Agreement between annotators on labels 0, 0.5 ("equally good") and 1, as teams track it.

Pairwise agreement (share of identical labels), Cohen's κ for two annotators (as
scikit-learn's ``cohen_kappa_score``: chance agreement from each one's own label
frequencies) and Fleiss' κ for items that several annotators all labelled. κ is NaN where
chance agreement is already 1 (every label the same), as scikit-learn returns it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CATEGORIES = (0.0, 0.5, 1.0)


def pairwise_agreement(x: Sequence[float], y: Sequence[float]) -> float:
    """Share of items on which two annotators gave the same label (NaN without items)."""
    a, b = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return float(np.mean(a == b)) if len(a) else float("nan")


def cohen_kappa(x: Sequence[float], y: Sequence[float]) -> float:
    """Cohen's κ = (p_o − p_e) / (1 − p_e) of two annotators' labels of the same items."""
    a, b = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(a) == 0:
        return float("nan")
    p_o = np.mean(a == b)
    p_e = sum(np.mean(a == c) * np.mean(b == c) for c in CATEGORIES)
    return float((p_o - p_e) / (1 - p_e)) if p_e < 1 else float("nan")


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' κ of an (items, categories) matrix of how many raters chose each category;
    every item has the same number of raters (at least two)."""
    counts = np.asarray(counts, np.float64)
    if counts.shape[0] == 0:
        return float("nan")
    raters = counts.sum(axis=1)
    if np.any(raters != raters[0]) or raters[0] < 2:
        raise ValueError("Fleiss' κ needs the same number (≥ 2) of raters on every item")
    n = raters[0]
    p_item = ((counts * (counts - 1)).sum(axis=1)) / (n * (n - 1))
    p_category = counts.sum(axis=0) / counts.sum()
    p_e = float(np.sum(p_category ** 2))
    return float((p_item.mean() - p_e) / (1 - p_e)) if p_e < 1 else float("nan")


def category_counts(labels: Sequence[Sequence[float]]) -> np.ndarray:
    """(items, 3) counts of labels 0, 0.5, 1 per item, from each item's list of labels."""
    return np.array([[sum(1 for v in item if v == c) for c in CATEGORIES] for item in labels],
                    np.float64).reshape(len(labels), len(CATEGORIES))


def majority(labels: Sequence[float]) -> float:
    """The most frequent label; a tie between labels counts as "equally good" (0.5)."""
    counts = category_counts([labels])[0]
    best = np.flatnonzero(counts == counts.max())
    return CATEGORIES[int(best[0])] if len(best) == 1 else 0.5


__all__ = ["CATEGORIES", "category_counts", "cohen_kappa", "fleiss_kappa", "majority",
           "pairwise_agreement"]
