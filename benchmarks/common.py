"""Helpers every benchmark shares: timing a call and saving its JSON result.

Importing it sets the benchmark process up as the ``rrm-data`` program does (rendering
backend, quiet simulator), so it must come before any rrm_data import that loads MuJoCo.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rrm_data.process import configure_process

configure_process()
RESULTS = Path(__file__).parent / "results"


def timed(fn: Callable[..., int], *args: Any) -> tuple[float, float, int]:
    """(CPU seconds of this process, wall seconds, count) of ``fn(*args) -> count``."""
    cpu, wall = time.process_time(), time.perf_counter()
    count = fn(*args)
    return time.process_time() - cpu, time.perf_counter() - wall, count


def save_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``results/<name>.json`` and print it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return path
