"""Run the grid: every run in its own folder, one core each, resumable, on local processes
or Ray tasks.

A run's folder ``<out>/<task>/<condition>/seed<seed>`` holds its steps' outputs, its
``log.txt`` and, last and atomically, ``run.json``: the marker that it finished. A folder
without it is what a killed run left: the run goes on there, skipping the steps whose output
exists (each command writes its output in one atomic step) and running the interrupted one
again, which resumes from its own checkpoint. A failed run writes ``failed.json`` (its exit
code and log tail) and the others go on; the next try of a failed run starts afresh. The
suite's shared steps for a task and seed (``<task>/shared/seed<seed>``, marked by
``shared.json``) are made by the first run that needs them, under a file lock, so concurrent
runs, Ray tasks and shards on one file system make them once and the others wait and read
them; a run itself is locked while it runs, and another process skips it. The runs of a grid
share JAX's compilation cache in ``<out>/.jax-cache``.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from statistics import median
from typing import IO, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rrm_data.benchmark.cores import claimed_core
from rrm_data.benchmark.suite import SHARED, Run
from rrm_data.errors import RrmError
from rrm_data.io import Kind, atomic_file, output_kind, remove_owned, write_json
from rrm_data.progress import console
from rrm_data.reward.spec import ARTIFACT_DIR, SPEC_FILE

DONE = "run.json"
SUITE_COPY = "suite.yaml"  # in a grid and in its report: the suite the runs were made from
# A report's record of every run it joined, one JSON line each: a later report reads it as it
# reads a grid, so results outlive the run folders (another session, machine or shard).
RECORDS = "runs.jsonl"
SHARED_DONE = "shared.json"  # the shared steps' marker: made once, not a result to report
BUSY = "busy"  # an outcome's key: another benchmark process is running the run (RUNNING)
RUNNING, FINISHED = "running", "finished"  # or finished it since this one listed its runs
FAILED = "failed.json"
LOG = "log.txt"
TAIL_LINES = 20
PR_SET_PDEATHSIG = 1
# One core per run: BLAS, OpenMP and XLA (sbx's JAX) each default to every core. (XLA
# ignores a token without "--", such as the often copied "intra_op_parallelism_threads=1".)
ONE_CORE = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}
COMPILE_CACHE = ".jax-cache"  # in the grid's folder: the runs' compiled JAX functions


def compilation_cache(folder: Path) -> dict[str, str]:
    """The environment of JAX's persistent compilation cache in ``folder``: every SAC run
    (sbx) compiles the same functions, 13 CPU-seconds a process on this machine, once per
    grid with the cache (``benchmarks/compile_cache.py``). Every compiled function is kept,
    up to 1 GiB (a SAC run's are about 0.5 MB); that limit turns on JAX's file lock, so
    concurrent runs never read half an entry."""
    return {"JAX_COMPILATION_CACHE_DIR": str(folder),
            "JAX_COMPILATION_CACHE_MAX_SIZE": str(2**30),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def is_done(folder: Path, marker: str = DONE) -> bool:
    return (folder / marker).is_file()


def one_try(folder: Path, commands: Sequence[Sequence[str]]) -> bool:
    """Whether a finished run's log holds one try of each command: its marker's
    ``cpu_seconds`` then time the whole run (a resumed run's, its last try only)."""
    return (folder / LOG).read_text(errors="replace").count("$ rrm-data ") == len(commands)


def marker(run: Run) -> str:
    return SHARED_DONE if run.condition.name == SHARED else DONE


def describe(run: Run, out: Path) -> dict[str, Any]:
    """What the marker records besides the outcome: enough for the report alone. Folders in
    the commands read ``{run}`` and ``{shared}``, so a grid can be moved."""
    folder = out / run.id
    shared = out / run.prerequisite.id if run.prerequisite else None

    def generic(word: str) -> str:
        word = word.replace(str(folder), "{run}")
        return word.replace(str(shared), "{shared}") if shared else word

    return {"task": run.task, "condition": run.condition.name, "seed": run.seed,
            "axis": run.condition.axis, "final": run.final(out).name,
            "shared": run.prerequisite.id if run.prerequisite else None,
            "commands": [[generic(a) for a in argv] for argv in run.argvs(out)]}


@dataclass(frozen=True)
class Job:
    """One run as plain values, what a worker thread or a Ray task executes."""

    steps: list[tuple[list[str], str]]  # each command and its output folder, which exists
    # once the command finished
    folder: str
    record: dict[str, Any]
    cache: str  # the grid's compilation cache (``COMPILE_CACHE``)
    marker: str = DONE
    before: Job | None = None  # the shared steps, made first if no run has made them


def job(run: Run, out: Path) -> Job:
    before = job(run.prerequisite, out) if run.prerequisite else None
    return Job([(argv, str(step)) for argv, step in run.commands(out)],
               str(out / run.id), describe(run, out), str(out / COMPILE_CACHE), marker(run),
               before)


def execute(work: Job) -> dict[str, Any]:
    """Run one grid cell (``_execute``), unless another benchmark process (another shard,
    another terminal) is running it: its lock beside the run's folder is held, and the run
    is left to that process (``BUSY`` in the outcome), whose files stay untouched; so is a run
    another process finished after this one listed its runs (its record, cost included, kept)."""
    with _lock(Path(work.folder), wait=False) as free:
        if not free:
            return {**work.record, "rc": 0, BUSY: RUNNING}
        if is_done(Path(work.folder), work.marker):
            return {**work.record, "rc": 0, BUSY: FINISHED}
        return _execute(work)


def _execute(work: Job) -> dict[str, Any]:
    """Make the run's shared steps if nobody has (under their lock), then each command whose
    output is not whole yet (``step_finished``) as ``python -m rrm_data.cli`` pinned to a
    core no other run holds (``cores``), its output appended to ``log.txt`` (an interrupted
    command resumes from its checkpoint, one trained in place starts again; a failed try is
    removed first); then write the marker (finished) or ``failed.json``."""
    path = Path(work.folder)
    rc = 0
    if work.before is not None:
        with _lock(Path(work.before.folder)):
            if not is_done(Path(work.before.folder), work.before.marker):
                rc = _execute(work.before)["rc"]
    if (path / FAILED).exists():
        remove_owned(path)
    path.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cpu = 0.0
    env = {**compilation_cache(Path(work.cache)), **os.environ, **ONE_CORE}  # a set cache wins
    with claimed_core() as core, (path / LOG).open("a") as log:
        if rc != 0 and work.before is not None:
            log.write(f"the shared steps failed (rc {rc}): {work.before.folder}/{LOG}\n")
        to_run = [(argv, Path(step)) for argv, step in work.steps
                  if not step_finished(Path(step))] if rc == 0 else []
        for argv, step in to_run:
            if step.exists():  # trained in place and stopped half-way: that step again
                remove_owned(step)
            log.write(f"$ rrm-data {' '.join(argv)}\n")
            log.flush()
            rc, used = _call([sys.executable, "-m", "rrm_data.cli", *argv], log, env, core)
            cpu += used
            if rc != 0:
                break
    outcome = {**work.record, "rc": rc, "seconds": round(time.perf_counter() - started, 2),
               "cpu_seconds": round(cpu, 2)}
    if rc != 0:
        lines = (path / LOG).read_text(errors="replace").splitlines()
        outcome["log_tail"] = lines[-TAIL_LINES:]
        write_json(path / FAILED, outcome)
        return outcome
    with atomic_file(path / work.marker) as tmp:
        write_json(tmp, outcome)
    return outcome


def step_finished(output: Path) -> bool:
    """Whether a step's output is whole: every command publishes its ``out`` in one step,
    except train-reward, which trains in its run folder and is whole once it has exported
    its reward there."""
    if output_kind(output) is Kind.REWARD_RUN:
        return (output / ARTIFACT_DIR / SPEC_FILE).is_file()
    return output.exists()


@contextmanager
def _lock(folder: Path, wait: bool = True) -> Iterator[bool]:
    """An exclusive lock beside ``folder`` (``.<name>.lock``): one maker, the rest wait, or
    with ``wait=False`` get False at once when another process holds it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f".{folder.name}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _call(argv: list[str], log: IO[str], env: dict[str, str],
          core: int | None) -> tuple[int, float]:
    """Run one command; its exit code and the CPU seconds it (and the children it waited
    for) used, from the kernel's accounting of that one child (``os.wait4``). Wall time
    counts a paused grid (SIGSTOP) and a shared core; this counts neither, so it is what a
    run costs."""
    child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env,
                             preexec_fn=partial(_child_setup, core))
    try:
        _, status, usage = os.wait4(child.pid, 0)
    except BaseException:  # interrupted here: the command must not outlive the benchmark
        child.kill()
        child.wait()
        raise
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_utime + usage.ru_stime


def _child_setup(core: int | None) -> None:
    """In the child: run on ``core`` alone (``cores.claimed_core``), and be killed when the
    benchmark (or Ray worker) dies, even by kill -9, so no orphan keeps writing into a
    folder the next try goes on in (Linux ``PR_SET_PDEATHSIG``)."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def pending(runs: Iterable[Run], out: Path) -> tuple[list[Run], list[Run]]:
    """(finished, to run): a run is finished when its marker exists, and then it must have
    been made by the same commands (a changed suite under the same out is refused); so must
    the shared steps a run to do will read."""
    done, todo = [], []
    for run in runs:
        if _finished(run, out):
            done.append(run)
        else:
            todo.append(run)
    for shared in {r.prerequisite for r in todo if r.prerequisite}:
        _finished(shared, out)
    return done, _interleaved(todo)


def _interleaved(todo: list[Run]) -> list[Run]:
    """The runs dealt round-robin over their shared steps, so the first runs make different
    shared steps side by side instead of waiting on one."""
    turn: Counter[Run | None] = Counter()
    ranked = []
    for run in todo:
        ranked.append((turn[run.prerequisite], run))
        turn[run.prerequisite] += 1
    return [run for _, run in sorted(ranked, key=lambda pair: pair[0])]


def _finished(run: Run, out: Path) -> bool:
    folder = out / run.id
    if not is_done(folder, marker(run)):
        return False
    recorded = json.loads((folder / marker(run)).read_text())["commands"]
    if recorded != describe(run, out)["commands"]:
        raise RrmError(f"{folder} was made by other commands than the suite now says; "
                       "remove it or use another out")
    return True


@dataclass
class Pace:
    """The wall seconds each condition's runs took, to tell the time left when conditions
    differ tenfold (a train-sac cell, a PEBBLE one): each run left at the median of its
    condition's (of every run's, before one of its own finished), over the slots."""

    seconds: dict[str, list[float]]

    @classmethod
    def of_grid(cls, out: Path) -> Pace:
        """The pace of the runs this grid finished before (a reused run took no time here)."""
        pace = cls({})
        for path in sorted(out.glob(f"*/*/seed*/{DONE}")):
            record = json.loads(path.read_text())
            if "seconds" in record:
                pace.add(record["condition"], record["seconds"])
        return pace

    def add(self, condition: str, seconds: float) -> None:
        self.seconds.setdefault(condition, []).append(seconds)

    def left(self, conditions: Iterable[str], slots: int) -> float | None:
        every = [s for found in self.seconds.values() for s in found]
        if not every:
            return None
        return sum(median(self.seconds.get(c) or every) for c in conditions) / slots


def run_local(todo: list[Run], out: Path, workers: int, total: int, done: int) -> list[dict]:
    """``workers`` runs at a time, each a child process of one core."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(execute, job(r, out)): r.condition.name for r in todo}
        return _watch(futures, total, done, workers, Pace.of_grid(out))


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
        refs = [task.remote(job(r, out)) for r in todo]  # held: a dropped ref frees its result
        futures: dict[Future[dict[str, Any]], str] = {
            ref.future(): r.condition.name for ref, r in zip(refs, todo, strict=True)}
        slots = int(ray.cluster_resources().get("CPU", workers))
        return _watch(futures, total, done, slots, Pace.of_grid(out))
    finally:
        if started_here:
            ray.shutdown()


def _watch(futures: Mapping[Future[dict[str, Any]], str], total: int, done: int,
           slots: int, pace: Pace) -> list[dict]:
    """The live view (runs done, running, failed, time left) until every future (→ its run's
    condition) is in, and a line per run as it ends: the bar alone is only drawn at exit
    where stderr is not a terminal, as in the log of a grid started with nohup."""
    results: list[dict] = []
    failed = 0
    columns = [TextColumn("benchmark"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[state]}"), TimeElapsedColumn()]
    with Progress(*columns, console=console, refresh_per_second=2) as view:
        remaining = set(futures)

        def state() -> str:
            return progress_state(len(remaining), failed, slots,
                                  pace.left([futures[f] for f in remaining], slots))

        bar = view.add_task("runs", total=total, completed=done, state=state())
        while remaining:
            finished, remaining = wait(remaining, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in finished:
                outcome = future.result()
                results.append(outcome)
                failed += outcome["rc"] != 0
                if outcome["rc"] == 0 and "seconds" in outcome:
                    pace.add(futures[future], outcome["seconds"])
                done += 1
                now = state()
                view.update(bar, advance=1, state=now)
                console.print(f"[{done}/{total}] {run_ended(outcome)} · {now}")
    return results


def run_ended(outcome: Mapping[str, Any]) -> str:
    """How one run ended, for its line in the grid's log."""
    name = f"{outcome['task']}/{outcome['condition']}/seed{outcome['seed']}"
    if outcome.get(BUSY) == RUNNING:
        return f"left to the benchmark process running it: {name}"
    if outcome.get(BUSY) == FINISHED:
        return f"finished by another benchmark process: {name}"
    took = hours(outcome.get("seconds", 0.0))
    if outcome["rc"] != 0:
        return f"failed: {name} (rc {outcome['rc']}) after {took}, log.txt there"
    return f"done: {name} in {took}"


def hours(seconds: float) -> str:
    """Seconds as HH:MM:SS, as the log's lines show times."""
    return time.strftime("%H:%M:%S", time.gmtime(seconds))


def progress_state(left: int, failed: int, slots: int, seconds: float | None) -> str:
    """running, failed and the time left (``Pace.left``; ? before any run's time is known)."""
    eta = "?" if seconds is None else hours(seconds)
    return f"running {min(left, slots)} · failed {failed} · left ~{eta}"
