"""What JAX's persistent compilation cache (a grid's ``.jax-cache``,
``rrm_data.benchmark.runner.compilation_cache``) saves a run: the same short `rrm-data
train-sac` (sac_cpu, true reward, door-close-v3, 200 SAC updates after learning_starts, its
final evaluation only) started as a grid starts it (its own process, one core's thread
settings), with the cache off, with a fresh empty cache (cold: it compiles and writes), and
with that cache filled (warm: what every later run of the grid gets). Each repeat makes a
fresh cache and runs cold, warm, off in turn, so the arms share the machine's load. Times
are the command's CPU seconds (its own and its children's) and wall seconds; what the cache
saves a run is the same at any step budget, since compilation happens once per process.

    python benchmarks/compile_cache.py [--repeats 3] [--steps 1200]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import save_result

from rrm_data.benchmark.runner import ONE_CORE, compilation_cache

ARMS = ("cold", "warm", "off")


def run_once(steps: int, out: Path, cache: Path | None) -> tuple[float, float]:
    """(CPU, wall) seconds of one train-sac process with its compilation cache in ``cache``
    (None: off)."""
    cached = compilation_cache(cache) if cache else {"JAX_COMPILATION_CACHE_DIR": ""}
    env = {**os.environ, **ONE_CORE, **cached}
    command = [sys.executable, "-m", "rrm_data.cli", "train-sac", "recipe=sac_cpu",
               "task=door-close-v3", "reward=true", f"steps={steps}", "eval_every=0",
               "threads=1", "seed=0", f"out={out}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return round(cpu, 2), round(wall, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1200)
    args = parser.parse_args()
    cpu: dict[str, list[float]] = {arm: [] for arm in ARMS}
    wall: dict[str, list[float]] = {arm: [] for arm in ARMS}
    load = [os.getloadavg()[0]]
    entries, size = 0, 0
    with tempfile.TemporaryDirectory(prefix="compile-cache-") as tmp:
        for repeat in range(args.repeats):
            cache = Path(tmp) / f"cache{repeat}"
            cache.mkdir()
            for arm in ARMS:
                out = Path(tmp) / f"{arm}{repeat}"
                c, w = run_once(args.steps, out, None if arm == "off" else cache)
                cpu[arm].append(c)
                wall[arm].append(w)
                shutil.rmtree(out)
            files = [f for f in cache.iterdir() if f.name.endswith("-cache")]
            entries, size = len(files), sum(f.stat().st_size for f in files)
            load.append(os.getloadavg()[0])

    def median(table: dict[str, list[float]], arm: str) -> float:
        return round(float(np.median(table[arm])), 2)

    save_result("compile_cache", {
        "command": "train-sac recipe=sac_cpu task=door-close-v3 reward=true "
                   f"steps={args.steps} eval_every=0 threads=1",
        "repeats": args.repeats, "one_core_env": ONE_CORE,
        "cpu_seconds": cpu, "wall_seconds": wall,
        "median_cpu_seconds": {arm: median(cpu, arm) for arm in ARMS},
        "median_wall_seconds": {arm: median(wall, arm) for arm in ARMS},
        "cpu_seconds_saved_per_run": round(median(cpu, "off") - median(cpu, "warm"), 2),
        "ratio_off_over_warm_cpu": round(median(cpu, "off") / median(cpu, "warm"), 3),
        "ratio_cold_over_off_cpu": round(median(cpu, "cold") / median(cpu, "off"), 3),
        "cache_entries": entries, "cache_bytes": size,
        "load_average_1min": load,
    })


if __name__ == "__main__":
    main()
