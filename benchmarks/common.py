"""Helpers every benchmark shares: timing a call, steady rates of alternating runs, and
saving the JSON result.

Importing it sets the benchmark process up as the ``rrm-data`` program does (rendering
backend, quiet simulator), so it must come before any rrm_data import that loads MuJoCo.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rrm_data.process import configure_process

configure_process()
RESULTS = Path(__file__).parent / "results"
Clock = tuple[float, float]  # (CPU seconds of this process, wall seconds)


def clock() -> Clock:
    return time.process_time(), time.perf_counter()


def since(start: Clock) -> Clock:
    """(CPU, wall) seconds from ``start`` (a ``clock()``) to now."""
    end = clock()
    return end[0] - start[0], end[1] - start[1]


def timed(fn: Callable[..., int], *args: Any) -> tuple[float, float, int]:
    """(CPU seconds of this process, wall seconds, count) of ``fn(*args) -> count``."""
    start = clock()
    count = fn(*args)
    return *since(start), count


def steady(run: Callable[[int], Clock], steps: int) -> Clock:
    """(CPU, wall) steady steps/s: ``steps - steps // 4`` over the difference of a long and a
    short run's times, so start-up and final costs cancel out."""
    long, short = run(steps), run(steps // 4)
    n = steps - steps // 4
    return round(n / (long[0] - short[0]), 2), round(n / (long[1] - short[1]), 2)


def alternate(runs: dict[str, Callable[[int], Clock]], steps: int, repeats: int
              ) -> tuple[dict[str, list[float]], dict[str, list[float]], list[float]]:
    """``repeats`` rounds of each run's ``steady`` rates in turn (the machine is shared, so
    runs alternate): CPU and wall steps/s by run, and the 1-min load average before and after
    each round."""
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    wall: dict[str, list[float]] = {name: [] for name in runs}
    load = [os.getloadavg()[0]]
    for _ in range(repeats):
        for name, run in runs.items():
            c, w = steady(run, steps)
            cpu[name].append(c)
            wall[name].append(w)
        load.append(os.getloadavg()[0])
    return cpu, wall, load


def ratio(table: dict[str, list[float]], a: str, b: str) -> float:
    """Median of ``table[a]`` over median of ``table[b]``."""
    return round(float(np.median(table[a]) / np.median(table[b])), 3)


def save_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``results/<name>.json`` and print it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return path
