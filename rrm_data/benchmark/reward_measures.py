"""Does a policy-free measure of a reward predict the policy it trains?

For each finished run, the reward its policy was trained on (``report.trained_on``) is
evaluated on the held-out test pairs of a dataset of its task exactly as ``rrm-data evaluate``
does it: agreement with the oracle teacher, EPIC and STARC distances to the true reward, and
value-order and progress-order correlations. Next to the run's final success, each measure's
Spearman rank correlation with success across runs says which one to trust (issues 20 and
21). A reward shared by several
runs (``true``, ``prior:…``, ``zero``) is evaluated once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from rrm_data.dataset import format as fmt
from rrm_data.dataset.reader import DatasetDir, open_dataset
from rrm_data.errors import RrmError
from rrm_data.evaluation.coverage import split_distances
from rrm_data.evaluation.report import build_report
from rrm_data.evaluation.scoring import load_split, score_rewards
from rrm_data.reward.resolve import check_reward_tasks, resolve_reward

# Each measure, read from an evaluate report's view, and which way is better.
MEASURES = {"agreement": "higher", "epic": "lower", "starc": "lower", "value_order": "higher",
            "progress_order": "higher"}
SPLIT, TEACHER = "test", "oracle"


def _view_measures(view: Mapping[str, Any]) -> dict[str, float | None]:
    epic = view.get("epic") or {}
    return {"agreement": view["agreement"]["value"],
            "agreement_pairs": view["agreement"]["n"],
            "epic": epic.get("distance"),
            "starc": (view.get("starc") or {}).get("distance"),
            "value_order": (view.get("value_order") or {}).get("mean"),
            "progress_order": (view.get("progress_order") or {}).get("mean")}


def open_heldout(paths: Sequence[str]) -> dict[str, DatasetDir]:
    """``{task: dataset}`` of the held-out datasets, each opened and checked once; refused
    when a task has two, or a dataset no oracle test pairs."""
    by_task: dict[str, DatasetDir] = {}
    for path in paths:
        dataset = open_dataset(path, check="skip-frames", with_first_read=fmt.SIM_COLUMNS)
        if not len(load_split(dataset, SPLIT, TEACHER).pairs):
            raise RrmError(f"{path}: its {SPLIT} split has no {TEACHER} pairs to evaluate on")
        for task in dataset.info.tasks:
            if task in by_task:
                raise RrmError(f"two held-out datasets of task {task}: {by_task[task].root} "
                               f"and {path}")
            by_task[task] = dataset
    return by_task


def evaluate_rewards(dataset: DatasetDir, refs: Sequence[str], *, transitions: int = 2000,
                     coverage: int = 256, gamma: float = 0.99, seed: int = 0
                     ) -> dict[str, dict[str, float | None]]:
    """``{ref: measures}`` of each reward on the dataset's test split with oracle labels, by
    ``evaluate``'s functions (its defaults for EPIC's samples)."""
    split = load_split(dataset, SPLIT, TEACHER)
    check_reward_tasks(list(refs), dataset.info.tasks, False)
    rewards = [resolve_reward(ref) for ref in refs]
    scored = score_rewards(list(refs), split, rewards)
    report = build_report(split, scored, split_distances(split, scored, rewards, transitions,
                                                          coverage, gamma, seed))
    return {ref: _view_measures(report["views"][ref]) for ref in refs}


def rank_correlations(rows: Sequence[Mapping[str, Any]], reps: int, seed: int
                      ) -> dict[str, dict[str, Any]]:
    """Spearman's ρ across runs between each measure and final success, with a 95% bootstrap
    interval over runs and the number of runs with the measure defined. The (measure,
    success) pairs are sorted before resampling, so the same runs in any order (a report
    joined from an earlier one, or made afresh) give the same interval."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, Any]] = {}
    for measure in MEASURES:
        pairs = np.array([(r[measure], r["success"]) for r in rows
                          if r.get(measure) is not None], dtype=float).reshape(-1, 2)
        pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
        n = len(pairs)
        rho = _spearman(pairs)
        draws = [_spearman(pairs[rng.integers(0, n, n)]) for _ in range(reps)] if n else []
        finite = [d for d in draws if d is not None]
        out[measure] = {"spearman": rho, "runs": n, "better": MEASURES[measure],
                        "ci": (np.percentile(finite, [2.5, 97.5]).tolist()
                               if rho is not None and finite else None)}
    return out


def _spearman(pairs: np.ndarray) -> float | None:
    """ρ of the two columns; None when either is constant (or fewer than 3 runs)."""
    if len(pairs) < 3 or np.ptp(pairs[:, 0]) == 0 or np.ptp(pairs[:, 1]) == 0:
        return None
    return float(stats.spearmanr(pairs[:, 0], pairs[:, 1]).statistic)


def reward_measures(runs: Sequence[Mapping[str, Any]], heldout: Mapping[str, DatasetDir],
                    reps: int, seed: int) -> dict[str, Any]:
    """``runs``: dicts with task, condition, seed, success, reward (a reference or None) and
    measures (None, or those an earlier report's records kept: the reward may be gone);
    ``heldout``: a dataset per task. Every run of a task with a dataset gets its reward's
    measures; then their rank correlations with success over all those runs."""
    measured: dict[tuple[str, str], dict[str, Any]] = {}
    for task, data in heldout.items():
        refs = list(dict.fromkeys(r["reward"] for r in runs if r["task"] == task
                                  and r["reward"] is not None and not r.get("measures")))
        for ref, found in (evaluate_rewards(data, refs) if refs else {}).items():
            measured[task, ref] = {**found, "heldout": str(data.root)}
    rows = []
    for r in runs:
        kept = r.get("measures") or measured.get((r["task"], r["reward"]))
        if kept:
            rows.append({**{k: v for k, v in r.items() if k != "measures"}, **kept})
    return {"split": SPLIT, "teacher": TEACHER, "rows": rows,
            "rank_correlation_with_success": rank_correlations(rows, reps, seed)}


def row_measures(row: Mapping[str, Any]) -> dict[str, Any]:
    """The reward's own part of a ``reward_measures`` row, kept with its run's record (a
    measure added since an earlier report measured the run is None there)."""
    return {k: row.get(k) for k in (*MEASURES, "agreement_pairs", "heldout")}


def markdown(measures: Mapping[str, Any]) -> list[str]:
    """The report.md section: each measure's ρ with success, then the runs' table."""
    lines = ["", f"Reward measures on held-out {measures['teacher']} pairs "
             f"({measures['split']} split) against each run's success score, Spearman ρ "
             "across runs [95% bootstrap over runs]:", "",
             "| measure | better | ρ with success | runs |", "|---|---|---|---|"]
    for name, c in measures["rank_correlation_with_success"].items():
        rho = "–" if c["spearman"] is None else f"{c['spearman']:.2f}"
        if c["ci"]:
            rho += f" [{c['ci'][0]:.2f}, {c['ci'][1]:.2f}]"
        lines.append(f"| {name} | {c['better']} | {rho} | {c['runs']} |")
    lines += ["", "| task | condition | seed | final success | agreement (pairs) | EPIC | "
              "STARC | value-order | progress-order |", "|---|---|---|---|---|---|---|---|---|"]
    for r in measures["rows"]:
        cells = [_num(r["agreement"]) + f" ({r['agreement_pairs']})", _num(r["epic"]),
                 _num(r["starc"]), _num(r["value_order"]), _num(r.get("progress_order"))]
        lines.append(f"| {r['task']} | {r['condition']} | {r['seed']} | {r['success']:.2f} | "
                     + " | ".join(cells) + " |")
    return lines


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"
