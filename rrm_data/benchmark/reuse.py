"""Runs another grid has made, taken as this suite's own (``benchmark reuse=[GRID,…]``).

Suites overlap: the ablations' RRM on the gripper_object prior and the label-efficiency
picture's budgets are main.yaml's cells under other names. Two runs are the same run when
their tasks and seeds are equal and so is the config of every step (their shared steps'
too), as the CLI builds it from the command line (``out=`` aside, the run's own folders
written alike): a spelling of the same settings matches, other settings never do. A reused
run is not run again; this grid records it as a ``run.json`` naming the other run's folder
(``REUSED``, relative, so the two grids move together), which the report reads through.
An earlier report of the other suite serves as well once that grid's folders are gone
(another session, machine or shard): its records and its copy of the suite say what each
run was, and the ``run.json`` names the report and the run it records (``REUSED_RECORD``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from rrm_data.benchmark.runner import DONE, RECORDS, SHARED_DONE, SUITE_COPY, describe
from rrm_data.benchmark.suite import Run, parse_suite
from rrm_data.errors import RrmError
from rrm_data.io import atomic_file

REUSED = "reused"  # run.json key: the folder of the run another grid made, from this one's
# run.json key: {"report": the earlier report's folder, from this run's; "run": its run id}
REUSED_RECORD = "reused_record"
Build = Callable[[str, list[str]], DictConfig]
RunKey = tuple[str, int, str]


@dataclass(frozen=True)
class Source:
    """Where a finished run's results are: its folder, or (``run`` set, the run's id) the
    earlier report that records it, with that record (read once, where it was found)."""

    folder: Path
    run: str | None = None
    record: dict[str, Any] | None = None

    def __str__(self) -> str:
        return str(self.folder) if self.run is None else f"{self.run} of the report {self.folder}"


def run_id(record: dict[str, Any]) -> str:
    return f"{record['task']}/{record['condition']}/seed{record['seed']}"


def report_records(report: Path) -> list[dict[str, Any]]:
    """The runs a benchmark report joined, one dict each (its ``RECORDS``)."""
    return [json.loads(line) for line in (report / RECORDS).read_text().splitlines()
            if line.strip()]


def source(marker: Path) -> Source:
    """Where the results a finished run's ``run.json`` stands for are: its own folder, the
    run it reuses (followed to the run that was actually made), or an earlier report's
    record of it; refused when that is gone."""
    record = json.loads(marker.read_text())
    if REUSED_RECORD in record:
        reference = record[REUSED_RECORD]
        report = (marker.parent / reference["report"]).resolve()
        kept = [r for r in report_records(report) if run_id(r) == reference["run"]] \
            if (report / RECORDS).is_file() else []
        if not kept:
            raise RrmError(f"{marker.parent} reuses run {reference['run']} of the report "
                           f"{report}, which does not record it; remove {marker.parent} to "
                           "run it here")
        return Source(report, reference["run"], kept[0])
    if REUSED not in record:
        return Source(marker.parent)
    folder = (marker.parent / record[REUSED]).resolve()
    if not (folder / DONE).is_file():
        raise RrmError(f"{marker.parent} reuses {folder}, which holds no finished run; "
                       f"remove {marker.parent} to run it here")
    return source(folder / DONE)


def run_key(task: str, seed: int, commands: Sequence[Sequence[str]],
            shared: Sequence[Sequence[str]], build: Build) -> RunKey:
    """What makes two runs the same run: task, seed and each step's built config."""
    def configs(lines: Sequence[Sequence[str]]) -> list[Any]:
        built = []
        for argv in lines:
            words = [w.replace("{run}", "/run").replace("{shared}", "/shared")
                     for w in argv[1:]]
            config = OmegaConf.to_container(build(argv[0], words), resolve=True)
            assert isinstance(config, dict)
            config.pop("out", None)
            built.append([argv[0], config])
        return built

    return task, seed, json.dumps([configs(shared), configs(commands)], sort_keys=True)


@dataclass(frozen=True)
class Made:
    """A finished run of another suite: what it ran, and where its results are (``where``,
    called only for a run that matches: it checks a reused run's source)."""

    task: str
    seed: int
    commands: list[list[str]]
    shared: list[list[str]]
    where: Callable[[], Source]


def _made_in_grid(grid: Path) -> Iterator[Made]:
    for marker in sorted(grid.glob(f"*/*/seed*/{DONE}")):
        record = json.loads(marker.read_text())
        shared = (json.loads((grid / record["shared"] / SHARED_DONE).read_text())["commands"]
                  if record.get("shared") else [])
        yield Made(record["task"], int(record["seed"]), record["commands"], shared,
                   partial(source, marker))


def _made_in_report(report: Path) -> Iterator[Made]:
    """The runs a report records, each with the commands its copy of the suite gives it
    (every run it joined was made from that suite: ``benchmark-report`` joins one suite's)."""
    text = (report / SUITE_COPY).read_text()
    runs = {run.id: run for run in parse_suite(yaml.safe_load(text), text).runs()}
    for record in report_records(report):
        run = runs.get(run_id(record))
        if run is None:
            continue
        shared = describe(run.prerequisite, report)["commands"] if run.prerequisite else []
        yield Made(run.task, run.seed, describe(run, report)["commands"], shared,
                   partial(Source, report, run.id, record))


def reusable(todo: Sequence[Run], out: Path, sources: Sequence[Path],
             build: Build) -> dict[str, Source]:
    """Each run of ``todo`` (not started in ``out``) that a finished run of ``sources``
    (grids, or reports of them: those holding ``RECORDS``) is the same run as: its id →
    where that run's results are."""
    def outline(commands: Sequence[Sequence[str]]) -> list[str]:
        return [argv[0] for argv in commands]

    def started(folder: Path) -> bool:  # an empty folder: a marking cut short
        return folder.is_dir() and any(folder.iterdir())

    wanted = {}
    for run in todo:
        if not started(out / run.id):
            record = describe(run, out)
            shared = describe(run.prerequisite, out)["commands"] if run.prerequisite else []
            wanted[run.id] = (run.task, run.seed, record["commands"], shared)
    found: dict[str, Source] = {}
    keys: dict[str, RunKey] = {}
    for folder in sources:
        made = _made_in_report(folder) if (folder / RECORDS).is_file() else _made_in_grid(folder)
        for other in made:
            candidates = [i for i, (task, seed, commands, own_shared) in wanted.items()
                          if i not in found and task == other.task and seed == other.seed
                          and outline(commands) == outline(other.commands)
                          and outline(own_shared) == outline(other.shared)]
            if not candidates:
                continue
            key = run_key(other.task, other.seed, other.commands, other.shared, build)
            for i in candidates:
                if i not in keys:
                    keys[i] = run_key(*wanted[i], build)
                if keys[i] == key:
                    found[i] = other.where()
    return found


def record_reused(run: Run, out: Path, found: Source) -> None:
    """Mark ``run`` finished in ``out`` as the run whose results ``found`` holds."""
    folder = out / run.id
    folder.mkdir(parents=True, exist_ok=True)
    reference = (os.path.relpath(found.folder, folder) if found.run is None else
                 {"report": os.path.relpath(found.folder, folder), "run": found.run})
    key = REUSED if found.run is None else REUSED_RECORD
    with atomic_file(folder / DONE) as tmp:
        tmp.write_text(json.dumps({**describe(run, out), "rc": 0, key: reference}, indent=2)
                       + "\n")
