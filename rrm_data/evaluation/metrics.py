"""Preference and return metrics: agreement with a confidence interval, calibration, correlation.

Everything works on plain numpy arrays and uses scipy's statistics, so each number can be
checked by hand. Undefined values (a constant input, a single class) come back as ``None``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import stats

Number = float | None


def _finite(value: float) -> Number:
    return float(value) if np.isfinite(value) else None


def agreement(correct: np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """Fraction correct with a Wilson score interval (exact enough for small n, never outside
    [0, 1])."""
    correct = np.asarray(correct, bool)
    n = int(correct.size)
    if n == 0:
        return {"value": None, "low": None, "high": None, "n": 0}
    k = int(correct.sum())
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return {"value": k / n, "low": float(ci.low), "high": float(ci.high), "n": n}


def episode_bootstrap(correct: np.ndarray, episode_a: np.ndarray, episode_b: np.ndarray,
                      confidence: float = 0.95, replicates: int = 2000,
                      seed: int = 0) -> dict[str, Any]:
    """Agreement interval that counts episodes, not pairs, as the independent draws.

    Pairs sharing an episode are not independent, so the Wilson interval over pairs is too
    narrow. Episodes are resampled with replacement; a pair weighs the product of its two
    episodes' multiplicities (a two-way cluster bootstrap); percentiles of the weighted
    agreement give the interval.
    """
    correct = np.asarray(correct, np.float64)
    ids, inverse = np.unique(np.concatenate([episode_a, episode_b]), return_inverse=True)
    a, b = inverse[:len(correct)], inverse[len(correct):]
    if len(correct) == 0 or len(ids) < 2:
        return {"low": None, "high": None, "episodes": int(len(ids)), "replicates": 0}
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(ids), np.full(len(ids), 1.0 / len(ids)), size=replicates)
    weights = counts[:, a] * counts[:, b]
    total = weights.sum(axis=1)
    values = (weights @ correct)[total > 0] / total[total > 0]
    tail = (1.0 - confidence) / 2 * 100
    return {"low": float(np.percentile(values, tail)),
            "high": float(np.percentile(values, 100 - tail)),
            "episodes": int(len(ids)), "replicates": int(len(values))}


def preference_probability(logit: np.ndarray) -> np.ndarray:
    """P(A ≻ B) = σ(R̂a − R̂b) (Bradley-Terry), from the return difference."""
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -700.0, 700.0)))


def log_loss(logit: np.ndarray, label: np.ndarray) -> Number:
    """Mean cross-entropy of soft labels under σ(logit), computed stably from the logit."""
    if len(logit) == 0:
        return None
    loss = label * np.logaddexp(0.0, -logit) + (1.0 - label) * np.logaddexp(0.0, logit)
    return float(np.mean(loss))


def brier(p: np.ndarray, label: np.ndarray) -> Number:
    return float(np.mean((p - label) ** 2)) if len(p) else None


def reliability(p: np.ndarray, label: np.ndarray, bins: int = 10) -> dict[str, list]:
    """Per equal-width bin of predicted probability: count, mean prediction, mean label."""
    which = np.clip((p * bins).astype(int), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(which, weights=p, minlength=bins) / count
        mean_label = np.bincount(which, weights=label, minlength=bins) / count
    return {
        "edges": np.linspace(0.0, 1.0, bins + 1).tolist(),
        "count": count.tolist(),
        "mean_p": [_finite(v) for v in mean_p],
        "mean_label": [_finite(v) for v in mean_label],
    }


def expected_calibration_error(p: np.ndarray, label: np.ndarray, bins: int = 10) -> Number:
    """ECE: count-weighted mean |mean label − mean prediction| over equal-width bins."""
    if len(p) == 0:
        return None
    table = reliability(p, label, bins)
    gaps = [c * abs(ml - mp) for c, mp, ml in
            zip(table["count"], table["mean_p"], table["mean_label"], strict=True) if c]
    return float(sum(gaps) / len(p))


def correlations(predicted: np.ndarray, true: np.ndarray) -> dict[str, Number]:
    """Pearson and Spearman correlation; ``None`` when either side is constant or too short."""
    if len(predicted) < 2 or np.ptp(predicted) == 0 or np.ptp(true) == 0:
        return {"pearson": None, "spearman": None, "n": int(len(predicted))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        pearson = stats.pearsonr(predicted, true).statistic
        spearman = stats.spearmanr(predicted, true).statistic
    return {"pearson": _finite(pearson), "spearman": _finite(spearman),
            "n": int(len(predicted))}


def auroc(score: np.ndarray, positive: np.ndarray) -> Number:
    """Area under the ROC curve = Mann-Whitney U / (n₊ n₋); ties count one half."""
    positive = np.asarray(positive, bool)
    pos, neg = score[positive], score[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return None
    u = stats.mannwhitneyu(pos, neg, alternative="two-sided").statistic
    return float(u / (len(pos) * len(neg)))


def rank_correlations(predicted: np.ndarray, true: np.ndarray) -> dict[str, Number]:
    """Spearman ρ and Kendall τ-b (ties shared); ``None`` when either side is constant or too
    short."""
    if len(predicted) < 2 or np.ptp(predicted) == 0 or np.ptp(true) == 0:
        return {"spearman": None, "kendall": None, "n": int(len(predicted))}
    return {"spearman": _finite(stats.spearmanr(predicted, true).statistic),
            "kendall": _finite(stats.kendalltau(predicted, true).statistic),
            "n": int(len(predicted))}
