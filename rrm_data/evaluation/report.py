"""The evaluation report of one or more rewards on a split: numbers, JSON, Markdown, rich table.

Each reward is shown as one or two *views* (see :meth:`Scored.views`): its total r̂ and,
for a residual model, its prior part alone, so that what the residual adds is visible.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from rrm_data.evaluation import metrics
from rrm_data.evaluation.coverage import (
    EPIC_RULE,
    PROGRESS_ORDER_RULE,
    STARC_RULE,
    VALUE_ORDER_RULE,
)
from rrm_data.evaluation.ranking import SUCCESS_RULE
from rrm_data.evaluation.scoring import TIE, Scored, SplitData, pair_frame

TIE_RULE = ("agreement is strict accuracy on pairs whose label is not a tie (0.5); a predicted "
            "tie counts as wrong. Tie-labelled pairs are left out of agreement and reported "
            "apart, with the mean |p_a - 0.5| the reward gives them; log-loss, Brier and ECE "
            "use every pair with its label as a soft target")
BUCKET_RULE = ("a pair's task (policy) bucket is the task (policy spec) of its two segments' "
               "episodes: 'x' when both are x, else 'x vs y' in sorted order")
CI_RULE = ("95% Wilson score interval over pairs; next to it a 95% bootstrap interval over "
           "episodes (pairs sharing an episode are not independent)")
ECE_BINS = 10


def _bucket(a: pd.Series, b: pd.Series) -> list[str]:
    return [x if x == y else " vs ".join(sorted((x, y))) for x, y in zip(a, b, strict=True)]


def view_metrics(data: SplitData, segment: np.ndarray, episode: np.ndarray) -> dict[str, Any]:
    """Every number of the report for one view (its predicted segment and episode returns)."""
    frame = pair_frame(data, segment)
    label = frame["label"].to_numpy(np.float64)
    logit = (frame["score_a"] - frame["score_b"]).to_numpy()
    p = frame["p_a"].to_numpy()
    tie = label == TIE
    correct = frame["correct"].to_numpy(dtype=bool, na_value=False)
    segs = data.segments
    buckets = {
        "task": _bucket(segs["task"].iloc[data.pairs["seg_a"]],
                        segs["task"].iloc[data.pairs["seg_b"]]),
        "policy": _bucket(segs["policy"].iloc[data.pairs["seg_a"]],
                          segs["policy"].iloc[data.pairs["seg_b"]]),
    }
    by = {}
    for kind, bucket in buckets.items():
        names = np.asarray(bucket)
        by[kind] = {name: metrics.agreement(correct[(names == name) & ~tie])
                    for name in sorted(set(names))}
    episodes = data.episodes
    return {
        "pairs": int(len(label)),
        "ties": int(tie.sum()),
        "agreement": {**metrics.agreement(correct[~tie]),
                      "bootstrap": metrics.episode_bootstrap(
                          correct[~tie], *(segs["episode_index"].to_numpy()[
                              data.pairs[side].to_numpy()][~tie] for side in ("seg_a", "seg_b")))},
        "tie_mean_abs_p_minus_half": (float(np.mean(np.abs(p[tie] - 0.5))) if tie.any()
                                      else None),
        "log_loss": metrics.log_loss(logit, label),
        "brier": metrics.brier(p, label),
        "ece": metrics.expected_calibration_error(p, label, ECE_BINS),
        "reliability": metrics.reliability(p, label, ECE_BINS),
        "segment_returns": metrics.correlations(segment, segs["return"].to_numpy(np.float64)),
        "episode_returns": metrics.correlations(episode,
                                                episodes["return"].to_numpy(np.float64)),
        "success_auroc": metrics.auroc(episode, episodes["success"].to_numpy(bool)),
        "by_task": by["task"],
        "by_policy": by["policy"],
    }


def build_report(data: SplitData, scored: list[Scored],
                 distances: dict[str, dict[str, Any]] | None = None,
                 successful: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole report as a JSON-ready dict; ``distances`` adds each view's EPIC and STARC
    distances and value-order correlation (``coverage.split_distances``), ``successful`` its ranking
    among successful episodes per teacher (``ranking.success_ranking``)."""
    views = {}
    for s in scored:
        for view, part in s.views().items():
            views[view] = {"reward": s.ref, "name": s.steps.reward, "part": part,
                           **view_metrics(data, getattr(s.segment, part),
                                          getattr(s.episode, part)),
                           **(distances or {}).get(view, {}),
                           **({"successful": successful[view]} if successful else {})}
    return {
        "dataset": str(data.dataset.root),
        "split": data.split,
        "teacher": data.teacher,
        "counts": {"pairs": int(len(data.pairs)), "segments": int(len(data.segments)),
                   "episodes": int(len(data.episodes)),
                   "successes": int(data.episodes["success"].sum())},
        "rules": {"ties": TIE_RULE, "buckets": BUCKET_RULE, "interval": CI_RULE,
                  "ece_bins": ECE_BINS, "p_a": "sigmoid(predicted return A - predicted return B)",
                  "epic": EPIC_RULE, "starc": STARC_RULE, "value_order": VALUE_ORDER_RULE,
                  "progress_order": PROGRESS_ORDER_RULE,
                  "successful": SUCCESS_RULE},
        "views": views,
    }


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _agreement(a: dict[str, Any]) -> str:
    if a["value"] is None:
        return "– (n=0)"
    return f"{a['value']:.3f} [{a['low']:.3f}, {a['high']:.3f}] n={a['n']}"


def _distance(measure: str) -> Any:
    def cell(v: dict[str, Any]) -> str:
        d = v.get(measure)
        if d is None:
            return "–"
        return "– (see note)" if d["note"] else _num(d["distance"])
    return cell


def _epic_count(v: dict[str, Any]) -> str:
    epic = v.get("epic")
    return "–" if epic is None or epic["note"] else f"{epic['transitions']} / {epic['coverage']}"


def _order(measure: str) -> Any:
    def cell(v: dict[str, Any]) -> str:
        order = v.get(measure)
        return "–" if order is None else _num(order["mean"])
    return cell


def _interval(a: dict[str, Any]) -> str:
    return "–" if a["low"] is None else f"{a['low']:.3f}–{a['high']:.3f}"


SUMMARY_ROWS: list[tuple[str, Any]] = [
    ("agreement", lambda v: _num(v["agreement"]["value"])),
    ("  95% CI (Wilson, pairs)", lambda v: _interval(v["agreement"])),
    ("  95% CI (bootstrap, episodes)", lambda v: _interval(v["agreement"]["bootstrap"])),
    ("  non-tie pairs", lambda v: str(v["agreement"]["n"])),
    ("  episodes they come from", lambda v: str(v["agreement"]["bootstrap"]["episodes"])),
    ("EPIC distance to true (0 same, 1 opposite)", _distance("epic")),
    ("STARC distance to true (0 same, 1 opposite)", _distance("starc")),
    ("  transitions / coverage samples", _epic_count),
    ("value-order ρ (successful episodes)", _order("value_order")),
    ("  episodes it is defined on", lambda v: (str(v["value_order"]["episodes"])
                                               if "value_order" in v else "–")),
    ("progress-order ρ (successful episodes)", _order("progress_order")),
    ("  episodes it is defined on", lambda v: (str(v["progress_order"]["episodes"])
                                               if "progress_order" in v else "–")),
    ("tie pairs", lambda v: str(v["ties"])),
    ("ties: mean |p_a − 0.5|", lambda v: _num(v["tie_mean_abs_p_minus_half"])),
    ("log-loss", lambda v: _num(v["log_loss"])),
    ("Brier", lambda v: _num(v["brier"])),
    ("ECE (10 bins)", lambda v: _num(v["ece"])),
    ("segment return Pearson", lambda v: _num(v["segment_returns"]["pearson"])),
    ("segment return Spearman", lambda v: _num(v["segment_returns"]["spearman"])),
    ("episode return Pearson", lambda v: _num(v["episode_returns"]["pearson"])),
    ("episode return Spearman", lambda v: _num(v["episode_returns"]["spearman"])),
    ("success AUROC (episode return)", lambda v: _num(v["success_auroc"])),
]


def summary_rows(report: dict[str, Any]) -> list[list[str]]:
    views = report["views"].values()
    return [[name, *(cell(v) for v in views)] for name, cell in SUMMARY_ROWS]


def success_rows(report: dict[str, Any]) -> list[list[str]]:
    """Per teacher: agreement among successful episodes with its two intervals, and the rank
    correlations with the teacher's quality."""
    views = [v for v in report["views"].values() if "successful" in v]
    if not views:
        return []
    rows = []
    for teacher in views[0]["successful"]:
        cells = [v["successful"][teacher] for v in views]
        rows += [[f"{teacher}: agreement", *(_agreement(c["agreement"]) for c in cells)],
                 [f"{teacher}:   bootstrap (episodes)",
                  *(_interval(c["agreement"]["bootstrap"]) for c in cells)],
                 [f"{teacher}: Spearman ρ / Kendall τ",
                  *("– (no quantity)" if c["rank"] is None else
                    f"{_num(c['rank']['spearman'])} / {_num(c['rank']['kendall'])} "
                    f"n={c['rank']['n']}" for c in cells)]]
    return rows


def bucket_rows(report: dict[str, Any], kind: str) -> list[list[str]]:
    views = list(report["views"].values())
    names = sorted({b for v in views for b in v[f"by_{kind}"]})
    return [[name, *(_agreement(v[f"by_{kind}"][name]) for v in views)] for name in names]


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(report: dict[str, Any], figures: list[str]) -> str:
    views = list(report["views"])
    counts = report["counts"]
    parts = [
        f"# Reward evaluation: {', '.join(views)}",
        "",
        f"Dataset `{report['dataset']}`, split `{report['split']}`, teacher "
        f"`{report['teacher']}`: {counts['pairs']} pairs over {counts['segments']} segments "
        f"of {counts['episodes']} episodes ({counts['successes']} successful).",
        "",
        _markdown_table(["metric", *views], summary_rows(report)),
        "",
        "## Among successful episodes, per teacher",
        "",
        _markdown_table(["teacher", *views], success_rows(report)),
        "",
        "## Agreement per task",
        "",
        _markdown_table(["task", *views], bucket_rows(report, "task")),
        "",
        "## Agreement per policy bucket",
        "",
        _markdown_table(["policies", *views], bucket_rows(report, "policy")),
        "",
        "## Rules",
        "",
        *(f"- {report['rules'][k]}." for k in ("ties", "buckets", "epic", "starc",
                                                "value_order", "progress_order",
                                                "successful")),
        *(f"- EPIC and STARC of {view}: not computed: {v['epic']['note']}."
          for view, v in report["views"].items() if v.get("epic", {}).get("note")),
        f"- Intervals: {report['rules']['interval']}; P(A ≻ B) = {report['rules']['p_a']}.",
        "",
        "## Figures",
        "",
        *(f"![{name}]({name})" for name in figures),
        "",
    ]
    return "\n".join(parts)


def rich_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"{report['split']} split, teacher {report['teacher']}: "
                        f"{report['counts']['pairs']} pairs")
    table.add_column("metric")
    for view in report["views"]:
        table.add_column(view, justify="right")
    for row in summary_rows(report):
        table.add_row(*row)
    rows = success_rows(report)
    if rows:
        table.add_section()
        table.add_row("among successful episodes", *([""] * len(report["views"])))
        for row in rows:
            table.add_row(*row)
    return table
