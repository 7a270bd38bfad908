"""Which policy-free measure of a reward predicts the policy it trains? Spearman's ρ between
each measure (agreement on held-out oracle pairs, EPIC, STARC, value-order) and the run's
final success, across the runs of several benchmark suites at once (online SAC and offline
IQL on one footing), with 95% bootstrap intervals over runs, from the `reward_measures` that
`rrm-data benchmark-report heldout=...` wrote into each report.json. Runs whose reward is
not one function of the data (CPL: no reward) have no measures and are left out. The same
correlations among the learned rewards alone (the controls, every registered reference reward
such as true, prior, zero and random, left out) say whether a measure tells learned rewards
apart, not only learned rewards from the controls at either end.

    python benchmarks/measures_vs_success.py benchmarks/results/quality/report.json \\
        benchmarks/results/offline/report.json benchmarks/results/offline_replay/report.json

Writes benchmarks/results/measures_vs_success.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import save_result

from rrm_data.benchmark.reward_measures import MEASURES, rank_correlations
from rrm_data.reward.resolve import is_task_agnostic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", type=Path, nargs="+", help="benchmark-report report.json")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    args = parser.parse_args()
    rows, suites = [], {}
    for path in args.reports:
        report = json.loads(path.read_text())
        measured = report.get("reward_measures")
        if not measured:
            raise SystemExit(f"{path} has no reward_measures: report it with heldout=")
        suites[report["suite"]] = len(measured["rows"])
        rows += [{**r, "suite": report["suite"]} for r in measured["rows"]]
    result = {"what": __doc__.split("\n\n")[0], "reports": [str(p) for p in args.reports],
              "runs_per_suite": suites, "runs": len(rows), "reps": args.reps,
              "better": MEASURES,
              "rank_correlation_with_success": rank_correlations(rows, args.reps, seed=0)}
    learned = [r for r in rows if not is_task_agnostic(r["reward"])]
    result["learned_rewards_alone"] = {
        "runs": len(learned),
        "rank_correlation_with_success": rank_correlations(learned, args.reps, seed=0)}
    save_result("measures_vs_success", result)


if __name__ == "__main__":
    main()
