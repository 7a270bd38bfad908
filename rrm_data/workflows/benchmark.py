"""Run a benchmark suite: tasks × conditions × seeds declared in a YAML file.

`suite=benchmarks/suites/smoke.yaml` names the grid (see benchmarks/suites/). Every run
gets its own folder `out/<task>/<condition>/seed<seed>` with its outputs and `log.txt`;
`run.json`, written last, marks it finished. A suite's `shared:` steps (a dataset every
condition trains on) are made once per task and seed, in `out/<task>/shared/seed<seed>`,
by the first run that needs them. The whole grid is checked first (every command's config
built as the CLI would), then `workers=N` runs go at a time, each pinned to a core no other
run holds. Run the same command again after any interruption (even kill -9): finished
runs are skipped, unfinished ones go on (finished steps skipped, the interrupted one
resumed from its checkpoint, or made again if it trains in place: train-reward), a
failed run (its exit code and log tail in `failed.json`; retried from a clean folder)
does not stop the others. A live view shows runs done, running, failed and the time
left, and each run that ends gets a line (what a log of a grid started with nohup
holds). `conditions=[true,prior]` runs only those conditions, `tasks=[...]` only those
tasks (the rest later, into the same out).
`shard=i/N` runs a fixed, disjoint part of the grid (a Slurm array, several machines);
`launcher=ray` submits the runs as Ray tasks of one CPU each (`address=` of a cluster,
else a local Ray). `rrm-data benchmark-report runs=[OUT,...]` joins what they wrote.
`reported=[REPORT,...]`: the runs an earlier report of this suite records (its
runs.jsonl, from another session or machine) are not run again. `reuse=[GRID,...]`: a run
another suite's grid has finished with the same task, seed and settings (every step's config
as the CLI builds it, whatever its condition is called) is this suite's run too: not run
again, recorded in this grid as a run.json that names the other run's folder. A GRID may
also be a report of another suite (its folders gone: another session or machine), whose
records and copy of the suite say what each run was; the run.json then names the report and
the run it records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rrm_data.benchmark.report import read_results
from rrm_data.benchmark.reuse import record_reused, reusable, source
from rrm_data.benchmark.runner import (
    BUSY,
    DONE,
    FINISHED,
    RECORDS,
    RUNNING,
    SUITE_COPY,
    pending,
    run_local,
    run_ray,
)
from rrm_data.benchmark.suite import (
    Suite,
    check_commands,
    condition_name,
    load_suite,
    same_suite,
    shard,
)
from rrm_data.cli import command_config
from rrm_data.config import COUNT, build_config, doc
from rrm_data.errors import RrmError
from rrm_data.io import Kind, atomic_file, check_out, mark_folder
from rrm_data.progress import console
from rrm_data.registry import unknown_name

LAUNCHERS = ("local", "ray")


@dataclass
class Config:
    suite: str | None = field(default=None, metadata=doc("suite YAML file (benchmarks/suites/)"))
    out: str | None = field(default=None, metadata=doc(
        "folder of the runs (default runs/benchmark-<suite name>)"))
    workers: int = field(default=1, metadata=doc("runs at a time, one core each", COUNT))
    shard: str = field(default="0/1", metadata=doc("i/N: run only part i of N of the grid"))
    conditions: Any = field(default=None, metadata=doc(
        "[NAME,...]: run only these of the suite's conditions (e.g. the controls first); "
        "default all"))
    tasks: Any = field(default=None, metadata=doc(
        "[TASK,...]: run only these of the suite's tasks (e.g. the most informative cells "
        "first, with conditions=); default all"))
    reported: Any = field(default=None, metadata=doc(
        "[REPORT,...]: earlier benchmark-report folders of this suite; the runs their "
        "runs.jsonl records are not run again", strings=True))
    reuse: Any = field(default=None, metadata=doc(
        "[GRID,...]: other suites' benchmark out folders or reports; their finished runs "
        "with the same task, seed and settings as a run of this suite are not run again but "
        "reused",
        strings=True))
    launcher: str = field(default="local", metadata=doc("local (child processes) or ray"))
    address: str | None = field(default=None, metadata=doc(
        "Ray cluster address for launcher=ray (default: a local Ray instance)"))
    dry_run: bool = field(default=False, metadata=doc("check the suite, list the runs, stop"))


def parse_shard(text: str) -> tuple[int, int]:
    index, _, count = str(text).partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise RrmError(f"shard must be i/N with 0 <= i < N, got '{text}'")
    return int(index), int(count)


def make_config(overrides: list[str]) -> DictConfig:
    cfg = build_config(Config(), overrides)
    if cfg.suite is None:
        raise RrmError("suite= is required (a YAML file, e.g. benchmarks/suites/smoke.yaml)")
    if cfg.launcher not in LAUNCHERS:
        raise RrmError(f"launcher must be one of {', '.join(LAUNCHERS)}, got '{cfg.launcher}'")
    parse_shard(cfg.shard)
    if isinstance(cfg.conditions, str):
        cfg.conditions = [cfg.conditions]
    if isinstance(cfg.tasks, str):
        cfg.tasks = [cfg.tasks]
    if isinstance(cfg.reported, str):
        cfg.reported = [cfg.reported]
    if isinstance(cfg.reuse, str):
        cfg.reuse = [cfg.reuse]
    return cfg


def reported_runs(folders: list[Path], suite: Suite) -> set[str]:
    """The ids of the runs that these reports of ``suite`` record."""
    for folder in folders:
        if not (folder / RECORDS).is_file():
            raise RrmError(f"reported={folder} is no benchmark report (no {RECORDS})")
        copy = folder / SUITE_COPY
        if not copy.is_file() or not same_suite(copy.read_text(), suite.text):
            raise RrmError(f"reported={folder} reports another suite than {suite.name}'s "
                           "file as it is now; run the grid without it")
    return {f"{r.task}/{r.condition}/seed{r.seed}" for r in read_results(folders)}


def reused_grids(folders: list[Path], out: Path) -> list[Path]:
    """The ``reuse=`` folders, each checked to be another benchmark grid or its report."""
    for folder in folders:
        if not (folder / SUITE_COPY).is_file():
            raise RrmError(f"reuse={folder} is no benchmark grid or report (no {SUITE_COPY})")
        if folder.absolute() == out:
            raise RrmError(f"reuse={folder} is this grid's own out folder")
    return [f.absolute() for f in folders]


def run(cfg: DictConfig) -> None:
    suite = load_suite(cfg.suite)
    out = Path(cfg.out or f"runs/benchmark-{suite.name}").absolute()
    runs = shard(suite.runs(), *parse_shard(cfg.shard))
    if cfg.conditions is not None:
        names = [c.name for c in suite.conditions]
        chosen = [condition_name(c) for c in cfg.conditions]
        for name in chosen:
            if name not in names:
                raise RrmError(unknown_name("condition", name, names))
        runs = [r for r in runs if r.condition.name in chosen]
    if cfg.tasks is not None:
        for task in cfg.tasks:
            if task not in suite.tasks:
                raise RrmError(unknown_name("task of the suite", str(task), list(suite.tasks)))
        runs = [r for r in runs if r.task in cfg.tasks]
    reported = reported_runs([Path(str(f)) for f in cfg.reported or []], suite)
    runs = [r for r in runs if r.id not in reported]
    grids = reused_grids([Path(str(f)) for f in cfg.reuse or []], out)
    check_out(out, Kind.BENCHMARK, overwrite=False, inputs={"suite": cfg.suite}, reuse=True)
    check_commands(suite, runs, out, command_config)
    done, todo = pending(runs, out)
    for r in done:  # a reused run's results are still where its run.json says
        source(out / r.id / DONE)
    found = reusable(todo, out, grids, command_config) if grids else {}
    todo = [r for r in todo if r.id not in found]
    console.print(f"{suite.name}: {len(runs)} runs in shard {cfg.shard} "
                  + (f"beside {len(reported)} reported " if reported else "")
                  + f"({len(done)} finished, "
                  + (f"{len(found)} reused, " if grids else "")
                  + f"{len(todo)} to run) under {out}")
    if cfg.dry_run:
        for r in runs:
            if r.id in found:
                console.print(f"  {r.id} reuses {found[r.id]}")
        for r in todo:
            console.print(f"  {r.id}")
        return
    mark_folder(out, Kind.BENCHMARK)
    with atomic_file(out / SUITE_COPY) as tmp:
        tmp.write_text(suite.text)
    for r in runs:
        if r.id in found:
            record_reused(r, out, found[r.id])
    if cfg.launcher == "ray":
        results = run_ray(todo, out, cfg.workers, len(runs), len(done), cfg.address)
    else:
        results = run_local(todo, out, cfg.workers, len(runs), len(done))
    failed = [r for r in results if r["rc"] != 0]
    running = sum(r.get(BUSY) == RUNNING for r in results)
    elsewhere = sum(r.get(BUSY) == FINISHED for r in results)
    console.print(f"{len(results) - len(failed) - running - elsewhere} runs finished, "
                  + (f"{running} running in another process, " if running else "")
                  + (f"{elsewhere} finished by another process, " if elsewhere else "")
                  + f"{len(failed)} failed; report: rrm-data benchmark-report runs={out}")
    if failed:
        raise RrmError(f"{len(failed)} runs failed (failed.json and log.txt in their folders); "
                       "run the same command again to retry them")


__all__ = ["Config", "make_config", "run"]
