"""Grid throughput with and without pinning each run to a core of its own
(``rrm_data.benchmark.cores``): `rrm-data benchmark workers=N` on N SAC runs side by side,
and what N runs side by side make of the machine against one run by itself (`alone`).

The arms run the real command on the same tiny suite (`train-sac` on the true reward,
`sac=cpu`, drawer-close-v3, N seeds) in fresh folders, alternating: `pinned` as a user runs
it; `unpinned` with this script holding every core's lock, so the runner finds no free core
and pins nothing (its children then see every core, as before the runner pinned). Each run's
steady env steps/s comes from its `progress.csv` (wall time between the first row after
`learning_starts` and the last). Needs the machine to itself: it measures contention.

    python benchmarks/pinning.py [--workers 2] [--steps 5000] [--repeats 2] [--arms pinned,alone]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import yaml
from common import save_result

from rrm_data.benchmark.cores import LOCKS, claimed_core

LEARNING_STARTS = 1000  # sac=cpu's


def steady_rate(progress: Path) -> float:
    """Env steps/s between the first logged row past learning_starts and the last."""
    rows = [r for r in csv.DictReader(progress.open())
            if int(r["time/total_timesteps"]) > LEARNING_STARTS]
    first, last = rows[0], rows[-1]
    steps = int(last["time/total_timesteps"]) - int(first["time/total_timesteps"])
    return steps / (float(last["time/time_elapsed"]) - float(first["time/time_elapsed"]))


def grid(folder: Path, workers: int, steps: int, pinned: bool) -> list[float]:
    """One `rrm-data benchmark` of ``workers`` runs at once; each run's steady steps/s."""
    suite = folder / "suite.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "pinning", "tasks": ["drawer-close-v3"], "seeds": workers,
        "defaults": {"train-sac": ["sac=cpu", f"steps={steps}", "eval_every=0",
                                   "eval_episodes=1", "checkpoint_every=0"]},
        "conditions": {"true": "train-sac reward=true"}}))
    locks = folder / "tmp"  # the runner's core locks live in its TMPDIR
    locks.mkdir()
    with ExitStack() as held:
        if not pinned:
            for _ in os.sched_getaffinity(0):
                held.enter_context(claimed_core(locks / LOCKS.name))
        subprocess.run([sys.executable, "-m", "rrm_data.cli", "benchmark", f"suite={suite}",
                        f"out={folder / 'runs'}", f"workers={workers}"], check=True,
                       env={**os.environ, "TMPDIR": str(locks)}, stdout=subprocess.DEVNULL)
    return [round(steady_rate(p), 1) for p in
            sorted((folder / "runs").glob("*/true/seed*/0-train-sac/progress.csv"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--arms", default="unpinned,pinned,alone",
                        help="which of unpinned, pinned, alone (one run by itself) to run")
    args = parser.parse_args()
    arms = args.arms.split(",")
    rates: dict[str, list[list[float]]] = {arm: [] for arm in arms}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for arm in arms:
                folder = Path(tmp) / f"{arm}{i}"
                folder.mkdir()
                workers = 1 if arm == "alone" else args.workers
                rates[arm].append(grid(folder, workers, args.steps, arm != "unpinned"))
            load.append(os.getloadavg()[0])
    total = {arm: [float(np.sum(r)) for r in runs] for arm, runs in rates.items()}

    def over(a: str, b: str) -> float | None:
        if a not in total or b not in total:
            return None
        return round(float(np.median(total[a]) / np.median(total[b])), 3)

    save_result(f"pinning_{'_'.join(arms)}" if args.arms != parser.get_default("arms")
                else "pinning", {
        "what": f"{args.workers} train-sac runs (sac=cpu, drawer-close-v3, {args.steps} env "
                "steps) side by side under rrm-data benchmark, and one by itself (alone): "
                "steady env steps/s of each run",
        "cores": len(os.sched_getaffinity(0)), "workers": args.workers,
        "steps_per_second": rates, "total_steps_per_second": total,
        "pinned_over_unpinned": over("pinned", "unpinned"),
        "pinned_side_by_side_over_alone": over("pinned", "alone"),
        "load_average_1min": load})


if __name__ == "__main__":
    main()
