"""Runs another grid has made, taken as this suite's own (``benchmark reuse=[GRID,…]``).

Suites overlap: the ablations' RRM on the gripper_object prior and the label-efficiency
picture's budgets are main.yaml's cells under other names. Two runs are the same run when
their tasks and seeds are equal and so is the config of every step (their shared steps'
too), as the CLI builds it from the command line (``out=`` aside, the run's own folders
written alike): a spelling of the same settings matches, other settings never do. A reused
run is not run again; this grid records it as a ``run.json`` naming the other run's folder
(``REUSED``, relative, so the two grids move together), which the report reads through.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rrm_data.benchmark.runner import DONE, SHARED_DONE, describe
from rrm_data.benchmark.suite import Run
from rrm_data.errors import RrmError
from rrm_data.io import atomic_file

REUSED = "reused"  # run.json key: the folder of the run another grid made, from this one's
Build = Callable[[str, list[str]], DictConfig]
RunKey = tuple[str, int, str]


def origin(marker: Path) -> Path:
    """The folder whose outputs a finished run's ``run.json`` stands for: its own, or the
    run it reuses (followed to the run that was actually made)."""
    record = json.loads(marker.read_text())
    if REUSED not in record:
        return marker.parent
    source = (marker.parent / record[REUSED]).resolve()
    if not (source / DONE).is_file():
        raise RrmError(f"{marker.parent} reuses {source}, which holds no finished run; "
                       f"remove {marker.parent} to run it here")
    return origin(source / DONE)


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


def _shared_commands(grid: Path, record: dict[str, Any]) -> list[list[str]]:
    if not record.get("shared"):
        return []
    return json.loads((grid / record["shared"] / SHARED_DONE).read_text())["commands"]


def reusable(todo: Sequence[Run], out: Path, grids: Sequence[Path],
             build: Build) -> dict[str, Path]:
    """Each run of ``todo`` (not started in ``out``) that a finished run of ``grids`` is the
    same run as: its id → that run's folder."""
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
    found: dict[str, Path] = {}
    keys: dict[str, RunKey] = {}
    for grid in grids:
        for marker in sorted(grid.glob(f"*/*/seed*/{DONE}")):
            record = json.loads(marker.read_text())
            shared = _shared_commands(grid, record)
            candidates = [i for i, (task, seed, commands, own_shared) in wanted.items()
                          if i not in found and task == record["task"]
                          and seed == int(record["seed"])
                          and outline(commands) == outline(record["commands"])
                          and outline(own_shared) == outline(shared)]
            if not candidates:
                continue
            key = run_key(record["task"], int(record["seed"]), record["commands"], shared,
                          build)
            for i in candidates:
                if i not in keys:
                    keys[i] = run_key(*wanted[i], build)
                if keys[i] == key:
                    found[i] = origin(marker)
    return found


def record_reused(run: Run, out: Path, source: Path) -> None:
    """Mark ``run`` finished in ``out`` as the run made in ``source``."""
    folder = out / run.id
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_file(folder / DONE) as tmp:
        tmp.write_text(json.dumps({**describe(run, out), "rc": 0,
                                   REUSED: os.path.relpath(source, folder)}, indent=2) + "\n")
