"""Run the grid: every run in its own folder, one core each, resumable, on local processes
or Ray tasks.

A run's folder ``<out>/<task>/<condition>/seed<seed>`` holds its steps' outputs, its
``log.txt`` and, last and atomically, ``run.json``: the marker that it finished. A folder
without it is what a killed run left; it is removed and the run starts again. A failed run
writes ``failed.json`` (its exit code and log tail) and the others go on.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rrm_data.benchmark.suite import Run
from rrm_data.errors import RrmError
from rrm_data.io import atomic_file, remove_owned, write_json
from rrm_data.progress import console

DONE = "run.json"
FAILED = "failed.json"
LOG = "log.txt"
TAIL_LINES = 20
PR_SET_PDEATHSIG = 1
# One core per run: BLAS, OpenMP and XLA (sbx's JAX) each default to every core.
ONE_CORE = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}


def is_done(folder: Path) -> bool:
    return (folder / DONE).is_file()


def describe(run: Run, folder: Path) -> dict[str, Any]:
    """What ``run.json`` records besides the outcome: enough for the report alone."""
    return {"task": run.task, "condition": run.condition.name, "seed": run.seed,
            "axis": run.condition.axis, "final": run.final(folder).name,
            "commands": [[a.replace(str(folder), "{run}") for a in argv]
                         for argv in run.argvs(folder)]}


def execute(argvs: list[list[str]], folder: str, record: dict[str, Any]) -> dict[str, Any]:
    """Run one grid cell: remove what an unfinished earlier try left, run each command as
    ``python -m rrm_data.cli`` on one core, its output appended to ``log.txt``; then write
    ``run.json`` (finished) or ``failed.json``. A plain function of plain values, so a Ray
    task runs it as it is."""
    path = Path(folder)
    if path.exists():
        remove_owned(path)
    path.mkdir(parents=True)
    started = time.perf_counter()
    env = {**os.environ, **ONE_CORE}
    rc = 0
    with (path / LOG).open("a") as log:
        for argv in argvs:
            log.write(f"$ rrm-data {' '.join(argv)}\n")
            log.flush()
            rc = subprocess.call([sys.executable, "-m", "rrm_data.cli", *argv], stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                 preexec_fn=_die_with_parent)
            if rc != 0:
                break
    seconds = round(time.perf_counter() - started, 2)
    outcome = {**record, "rc": rc, "seconds": seconds}
    if rc != 0:
        lines = (path / LOG).read_text(errors="replace").splitlines()
        outcome["log_tail"] = lines[-TAIL_LINES:]
        write_json(path / FAILED, outcome)
        return outcome
    with atomic_file(path / DONE) as tmp:
        write_json(tmp, outcome)
    return outcome


def _die_with_parent() -> None:
    """In the child: be killed when the benchmark (or Ray worker) dies, even by kill -9, so
    no orphan keeps writing into a folder the next try cleans (Linux ``PR_SET_PDEATHSIG``)."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def pending(runs: Iterable[Run], out: Path) -> tuple[list[Run], list[Run]]:
    """(finished, to run): a run is finished when its ``run.json`` exists, and then it must
    have been made by the same commands (a changed suite under the same out is refused)."""
    done, todo = [], []
    for run in runs:
        folder = out / run.id
        if is_done(folder):
            recorded = json.loads((folder / DONE).read_text())["commands"]
            if recorded != describe(run, folder)["commands"]:
                raise RrmError(f"{folder} was made by other commands than the suite now says; "
                               "remove it or use another out")
            done.append(run)
        else:
            todo.append(run)
    return done, todo


def run_local(todo: list[Run], out: Path, workers: int, total: int, done: int) -> list[dict]:
    """``workers`` runs at a time, each a child process of one core."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return _watch([pool.submit(execute, r.argvs(out / r.id), str(out / r.id),
                                   describe(r, out / r.id)) for r in todo],
                      total, done, workers)


def run_ray(todo: list[Run], out: Path, workers: int, total: int, done: int,
            address: str | None) -> list[dict]:
    """The same runs as Ray tasks of one CPU each: on the cluster at ``address``, or on a
    local Ray instance of ``workers`` CPUs. Ray schedules; nothing here is a scheduler."""
    try:
        import ray
    except ImportError:
        raise RrmError("launcher=ray needs Ray: pip install 'rrm-data[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, num_cpus=None if address else workers,
                 include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    try:
        task = ray.remote(num_cpus=1)(execute)
        refs = [task.remote(r.argvs(out / r.id), str(out / r.id), describe(r, out / r.id))
                for r in todo]
        futures: list[Future[dict[str, Any]]] = [ref.future() for ref in refs]
        slots = int(ray.cluster_resources().get("CPU", workers))
        return _watch(futures, total, done, slots)
    finally:
        if started_here:
            ray.shutdown()


def _watch(futures: list[Future[dict[str, Any]]], total: int, done: int,
           slots: int) -> list[dict]:
    """The live view (runs done, running, failed, time left) until every future is in."""
    results: list[dict] = []
    failed = 0
    columns = [TextColumn("benchmark"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[state]}"), TimeElapsedColumn()]
    started = time.monotonic()
    with Progress(*columns, console=console, refresh_per_second=2) as view:
        bar = view.add_task("runs", total=total, completed=done, state="")
        remaining = set(futures)
        while remaining:
            finished, remaining = wait(remaining, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in finished:
                outcome = future.result()
                results.append(outcome)
                failed += outcome["rc"] != 0
                view.advance(bar)
                if outcome["rc"] != 0:
                    console.print(f"failed: {outcome['task']}/{outcome['condition']}/"
                                  f"seed{outcome['seed']} (rc {outcome['rc']}), log.txt there")
            view.update(bar, state=_state(len(results), len(remaining), failed, slots,
                                          time.monotonic() - started))
    return results


def _state(finished: int, left: int, failed: int, slots: int, elapsed: float) -> str:
    """running, failed and the time left: the time per finished run so far (parallel runs
    included) times the runs left."""
    running = min(left, slots)
    eta = "?"
    if finished:
        seconds = elapsed / finished * left
        eta = time.strftime("%H:%M:%S", time.gmtime(seconds))
    return f"running {running} · failed {failed} · left ~{eta}"
