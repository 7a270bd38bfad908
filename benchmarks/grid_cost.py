"""What a benchmark suite costs on this machine: each condition's measured core-seconds per
run (the `cpu_seconds` of its finished runs: the CPU time of its commands, one pinned core
each, which a paused grid or a shared core does not inflate as it does wall time), runs per
core-hour, and the whole suite's projected core-hours (tasks × seeds × each condition's
median run, plus its shared steps). Runs that were interrupted and resumed are left out
(their run.json times the last try only), and so are runs recorded before run.json held
`cpu_seconds`; conditions with no measured run are listed as such. The runs are read from
grids or from their reports (whose records keep each run's time once the grid is gone);
the shared steps' time from grids alone.

    python benchmarks/grid_cost.py benchmarks/suites/main.yaml \\
        runs/benchmark-main benchmarks/results/main

Writes benchmarks/results/cost_<suite>.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from common import save_result

from rrm_data.benchmark.report import read_results
from rrm_data.benchmark.runner import SHARED_DONE, one_try
from rrm_data.benchmark.suite import SHARED, load_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", type=Path, help="suite YAML (benchmarks/suites/)")
    parser.add_argument("runs", type=Path, nargs="+",
                        help="rrm-data benchmark out folders or benchmark-report folders")
    args = parser.parse_args()
    suite = load_suite(args.suite)
    seconds: dict[str, list[float]] = {c.name: [] for c in suite.conditions}
    untimed = 0
    for result in read_results(args.runs):
        if result.condition not in seconds:
            continue
        if result.cpu_seconds is None:
            untimed += 1
        else:
            seconds[result.condition].append(result.cpu_seconds)
    shared = []
    for grid in args.runs:
        for marker in sorted(grid.glob(f"*/{SHARED}/seed*/{SHARED_DONE}")):
            record = json.loads(marker.read_text())
            if one_try(marker.parent, record["commands"]) and "cpu_seconds" in record:
                shared.append(record["cpu_seconds"])
    cells = len(suite.tasks) * len(suite.seeds)
    conditions, total, unmeasured = {}, 0.0, []
    for name, found in seconds.items():
        if not found:
            unmeasured.append(name)
            continue
        median = float(np.median(found))
        total += median * cells
        conditions[name] = {"runs_measured": len(found), "median_core_minutes":
                            round(median / 60, 1), "range_core_minutes":
                            [round(min(found) / 60, 1), round(max(found) / 60, 1)],
                            "runs_per_core_hour": round(3600 / median, 2)}
    if suite.shared is not None and shared:
        total += float(np.median(shared)) * cells
    result = {"what": __doc__.split("\n\n")[0], "suite": str(args.suite),
              "runs": [str(g) for g in args.runs], "tasks": len(suite.tasks),
              "seeds": len(suite.seeds), "runs_in_suite": cells * len(suite.conditions),
              "conditions": conditions,
              "runs_resumed_or_without_cpu_time_left_out": untimed,
              "unmeasured_conditions": unmeasured,
              "projected_core_hours_of_measured_conditions": round(total / 3600, 1),
              "projected_hours_on_2_cores": round(total / 3600 / 2, 1)}
    save_result(f"cost_{suite.name}", result)


if __name__ == "__main__":
    main()
